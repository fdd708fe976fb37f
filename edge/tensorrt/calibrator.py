"""INT8 entropy calibration from a folder of images, through the model's own preprocessing.

``make_calibrator(trt, cuda, folder, config, cache_dir)`` returns an ``IInt8EntropyCalibrator2``
(TensorRT <= 10.x; TensorRT 11 has no calibrators) that feeds TensorRT batches made by
:class:`edge.preprocess.Preprocessor` — the same code the camera app runs — from device memory of
the CUDA layer. The calibration cache file is named by :func:`calibration_cache_key` (images,
preprocessing and batch size), so a stale cache is never read.
"""

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any, Iterator, List, Optional, Sequence, Union

import numpy as np

from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.files import write_atomic


def calibration_cache_key(image_paths: Sequence[Union[str, Path]], config: EdgeConfig, batch_size: int) -> str:
    """sha256 over each image's bytes (hashed, in order), the input/preprocessing config and the batch size."""
    digest = hashlib.sha256()
    for path in image_paths:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    data = config.to_dict()
    digest.update(json.dumps({"input": data["input"], "preprocess": data["preprocess"]}, sort_keys=True).encode())
    digest.update(f"batch={int(batch_size)}".encode())
    return digest.hexdigest()


def calibration_images(folder: Union[str, Path], max_images: int = 500) -> List[Path]:
    """The images used for calibration: the folder's images in natural order, at most ``max_images``."""
    from edge.sources.images import image_files
    from edge.sources.uri import IMAGE_EXTENSIONS

    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeError("calibration images folder not found", fix="give a folder of images like the ones the model "
                        "will see (a few hundred)", where=str(folder))
    paths = image_files(folder)[:max_images]
    if not paths:
        raise EdgeError("no images in the calibration folder", fix=f"put {', '.join(IMAGE_EXTENSIONS)} files in it "
                        "(a few hundred like the ones the model will see)", where=str(folder))
    return paths


class _Batches:
    """Batches of preprocessed images, written into one reusable host array."""

    def __init__(self, folder: Path, count: int, config: EdgeConfig, batch_size: int) -> None:
        from edge.preprocess import Preprocessor

        self.preprocess = Preprocessor.from_config(config)
        self.folder, self.count, self.batch_size = folder, count, batch_size
        self._frames: Optional[Iterator[Any]] = None
        self._source: Any = None
        self.used = 0

    def fill(self, out: np.ndarray) -> bool:
        """Write the next full batch into ``out``; False when fewer than batch_size images are left."""
        from edge.sources import open_source

        if self._source is None:
            self._source = open_source(str(self.folder))
            self._frames = iter(self._source)
        if self.used + self.batch_size > self.count:
            return False
        for i in range(self.batch_size):
            frame = next(self._frames)
            tensor, _ = self.preprocess(frame.image)
            out[i] = tensor[0]
            self.used += 1
        return True

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None


def make_calibrator(trt: Any, cuda_layer: Any, images: Union[str, Path], config: EdgeConfig,
                    cache_path: Union[str, Path], batch_size: int = 1, max_images: int = 500) -> Any:
    """An ``trt.IInt8EntropyCalibrator2`` over the images in ``images`` (a folder), preprocessed for ``config``.

    cuda_layer: an ``edge.cuda.base.CudaLayer`` (the batch's device buffer lives there);
    cache_path: folder of the calibration cache, file ``int8-calibration-<key>.cache``.
    A failure inside a TensorRT callback is kept in ``.error`` (TensorRT cannot carry Python
    exceptions): the builder raises it after the build.
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise EdgeError(f"TensorRT {trt.__version__} has no INT8 calibrators (removed in TensorRT 11)",
                        fix="build from an explicitly quantized (Q/DQ) ONNX: edge-export quantize MODEL.onnx "
                        "--precision int8 --calib-images DIR")
    paths = calibration_images(images, max_images)
    if len(paths) < batch_size:
        raise EdgeError(f"{len(paths)} calibration images, fewer than one batch of {batch_size}",
                        fix="add images or calibrate with a smaller batch", where=str(images))
    key = calibration_cache_key(paths, config, batch_size)
    cache_file = Path(cache_path) / f"int8-calibration-{key}.cache"
    batches = _Batches(Path(images), len(paths), config, batch_size)
    width, height = config.input.size_wh
    channels = config.input.channels
    per_image = (channels, height, width) if config.input.layout == "NCHW" else (height, width, channels)
    batch_shape = (batch_size,) + per_image
    dtype = np.dtype(config.input.dtype)

    class EdgeEntropyCalibrator(trt.IInt8EntropyCalibrator2):
        """Feeds preprocessed image batches to TensorRT's entropy calibration."""

        def __init__(self) -> None:
            with warnings.catch_warnings():  # deprecated since 10.1, and still 10.x's calibration path
                warnings.simplefilter("ignore", DeprecationWarning)
                trt.IInt8EntropyCalibrator2.__init__(self)  # mandatory for the binding's trampoline
            self.cache_file, self.key, self.batch_shape = cache_file, key, batch_shape
            self.images = paths
            self.error: Optional[BaseException] = None
            self._host: Any = None
            self._device: Any = None
            self._stream: Any = None

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: List[str], p_str: Any = None) -> Optional[List[int]]:
            try:
                if len(names) != 1:
                    raise EdgeError(f"int8 calibration from images feeds one input, the model has {list(names)}",
                                    fix="pass a calibrator factory for multi-input models")
                with cuda_layer.activate():
                    if self._device is None:
                        self._host = cuda_layer.alloc_host(batch_shape, dtype)
                        self._device = cuda_layer.alloc_device(self._host.array.nbytes)
                        self._stream = cuda_layer.stream()
                    if not batches.fill(self._host.array):
                        return None
                    cuda_layer.copy_to_device(self._device.ptr, self._host.array, self._stream)
                    self._stream.synchronize()  # TensorRT reads the buffer as soon as we return
                    return [int(self._device.ptr)]
            except Exception as exc:  # noqa: BLE001 - kept for the builder; raising into TensorRT aborts badly
                self.error = exc
                return None

        def read_calibration_cache(self) -> Optional[bytes]:
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            try:
                write_atomic(cache_file, bytes(cache))
            except OSError as exc:
                self.error = EdgeError(f"cannot write the calibration cache ({exc})", fix="check the folder's "
                                       "permissions and free space", where=str(cache_file))

        def close(self) -> None:
            """Free the batch buffers and close the image source."""
            batches.close()
            for buffer in (self._host, self._device):
                if buffer is not None:
                    with cuda_layer.activate():
                        buffer.free()
            self._host = self._device = None

    return EdgeEntropyCalibrator()
