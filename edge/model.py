"""A model ready to run on frames: edge config + preprocessing + backend + decoder.

``Model(path)(frame_bgr)`` returns a result (Detections, Classification, Segmentation or Keypoints,
by the model's task) in source-frame pixels. The three stages are also exposed one by one
(``preprocess``, ``infer``, ``decode``) so that the camera pipeline and the benchmarks can time and overlap them.
"""

import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from edge.autoconfig import check_input_size, ultralytics_config
from edge.backends import create_backend
from edge.backends.base import check_threads
from edge.backends.tensorrt import PLAN_SUFFIXES, plan_sidecar
from edge.config import (
    LAYOUTS,
    METADATA_KEY,
    EdgeConfig,
    load_config_file,
    load_json,
    merge,
    missing_config_error,
    missing_fields,
    sidecar_path,
)
from edge.decoders import build_decoder
from edge.errors import EdgeError
from edge.onnxfile import OnnxInfo, read_onnx
from edge.precision import RunFile, file_to_run, report_run_notes
from edge.preprocess import Preprocessor
from edge.transform import Transform
from edge.zoo import resolve_model

Result = Any  # Detections | Classification | Segmentation | Keypoints | Embeddings


def resolve_config(info: OnnxInfo, overrides: Optional[Mapping[str, Any]] = None,
                   config_file: Optional[Union[str, Path]] = None, use_sidecar: bool = True) -> EdgeConfig:
    """The model's edge config: embedded < sidecar JSON < --config file < overrides, completed from the graph.

    A model without an embedded config but with another tool's metadata (an Ultralytics export) starts
    from the config :mod:`edge.autoconfig` derives from it.
    """
    where = str(info.path)
    sidecar = sidecar_path(info.path)
    layers = [load_json(sidecar)] if use_sidecar and sidecar.is_file() else []
    if config_file is not None:
        layers.append(load_config_file(Path(config_file)))
    layers.append(dict(overrides or {}))
    data: Dict[str, Any] = info.embedded_config() or {}
    if not data:  # e.g. an Ultralytics export: the config comes from its own metadata
        given = {key for layer in layers for key, value in layer.items() if value is not None}
        data = ultralytics_config(info, given) or {}
    for layer in layers:
        data = _merge_layer(data, layer)
    check_input_size(info, data)  # a dynamic Ultralytics head needs sides that are multiples of its stride
    data = complete_from_graph(data, info)
    missing = missing_fields(data)
    if missing:
        raise missing_config_error(missing, where)
    config = EdgeConfig.from_dict(data, where)
    check_against_graph(config, info)
    return config


def _merge_layer(data: Dict[str, Any], layer: Mapping[str, Any]) -> Dict[str, Any]:
    """Merge one config layer; a decoder of another type replaces the decoder rather than mixing fields."""
    decoder = layer.get("decoder")
    if isinstance(decoder, Mapping) and isinstance(data.get("decoder"), Mapping) \
            and decoder.get("type") not in (None, data["decoder"].get("type")):
        data = {key: value for key, value in data.items() if key != "decoder"}
    return merge(data, layer)


def complete_from_graph(data: Dict[str, Any], info: OnnxInfo) -> Dict[str, Any]:
    """Fill what the graph itself tells: input name and shape, layout, outputs, default decoder."""
    data = dict(data)
    data.setdefault("edge_config", 1)
    inputs = {i.name: i for i in info.inputs}
    section = dict(data.get("input") or {})
    if "name" not in section and len(info.inputs) == 1:
        section["name"] = info.inputs[0].name
    spec = inputs.get(section.get("name", ""))
    if spec is not None:
        section.setdefault("shape", [d if isinstance(d, int) else None for d in spec.shape])
        section.setdefault("dtype", spec.dtype.name)
        if "layout" not in section and len(spec.shape) == 4:
            section["layout"] = "NHWC" if spec.shape[-1] in (1, 3) and spec.shape[1] not in (1, 3) else "NCHW"
    if section:
        data["input"] = section
    data.setdefault("outputs", [o.name for o in info.outputs])
    return data


def check_against_graph(config: EdgeConfig, info: OnnxInfo) -> None:
    """The config must describe this graph: input name, static dims and dtype, output names."""
    where = str(info.path)
    inputs = {i.name: i for i in info.inputs}
    spec = inputs.get(config.input.name)
    if spec is None:
        raise EdgeError(f"the edge config names input '{config.input.name}' but the model's inputs are "
                        f"{', '.join(inputs) or 'none'}", fix="set input.name in the config", where=where)
    for declared, configured in zip(spec.shape, config.input.shape):
        if isinstance(declared, int) and isinstance(configured, int) and declared != configured:
            raise EdgeError(
                f"input '{spec.name}' is {list(spec.shape)} in the model but the edge config says "
                f"{list(config.input.shape)} ({config.input.layout})",
                fix=f"correct input.shape/layout ({' or '.join(LAYOUTS)}) in the config", where=where)
    if len(spec.shape) != 4:
        raise EdgeError(f"input '{spec.name}' has shape {list(spec.shape)}; an image model needs 4 dimensions",
                        fix="export the model with a batch dimension (N, C, H, W) or (N, H, W, C)", where=where)
    names = [o.name for o in info.outputs]
    unknown = [o for o in config.outputs if o not in names]
    if unknown:
        raise EdgeError(f"the edge config lists output '{unknown[0]}' but the model's outputs are {', '.join(names)}",
                        fix="correct 'outputs' in the config", where=where)


class Model:
    """A model file ready to run on BGR frames. Close it (or use ``with``) to free the backend."""

    def __init__(self, model: Optional[Union[str, Path]] = None, *, backend: str = "auto",
                 threads: Optional[int] = None, config: Optional[Mapping[str, Any]] = None,
                 config_file: Optional[Union[str, Path]] = None, score_threshold: Optional[float] = None,
                 backend_options: Optional[Dict[str, Any]] = None,
                 report: Optional[Callable[[str], None]] = None) -> None:
        threads = check_threads(threads)  # before anything slow: a bad count fails at once
        self.path = resolve_model(model)
        if backend == "triton":  # a Triton repository entry: its ONNX file and edge_config.json
            from edge.backends.triton import triton_entry  # http.client and ssl: only for a Triton server

            self.path, config_file = triton_entry(self.path, config_file)
        plan = self.path.suffix.lower() in PLAN_SUFFIXES
        if plan:  # a TensorRT plan: only TensorRT reads its I/O, and its sidecar holds the config
            if backend not in ("auto", "tensorrt"):
                raise EdgeError(f"a TensorRT plan runs on the tensorrt backend, not '{backend}'",
                                fix="use --backend tensorrt, or give the .onnx it was built from", where=str(self.path))
            self.backend = create_backend(self.path, "tensorrt", threads=threads, options=backend_options,
                                          report=report)
            embedded = _plan_config(self.path)
            info = OnnxInfo(self.path, self.backend.inputs, self.backend.outputs,
                            {METADATA_KEY: json.dumps(embedded)} if embedded else {}, 0)
        else:
            info = read_onnx(self.path)
        self.info = info
        try:
            self._configure(info, config, config_file, score_threshold, use_sidecar=not plan)
        except BaseException:
            if plan:
                self.backend.close()
            raise
        #: on a CPU backend asked for a precision: the (reduced) file that runs instead of self.path
        self.running: Optional[RunFile] = None
        if not plan:  # after the config checks: a bad config fails before a slow session or engine build
            options = dict(backend_options or {}, edge_config=self.config)  # e.g. int8 calibration preprocessing
            self.running = file_to_run(self.path, backend, options, self.config, report)
            runs = self.running.path if self.running is not None else self.path
            self.backend = create_backend(runs, backend, threads=threads, options=options, report=report)
            report_run_notes(self.running, self.backend.name, report)
        self.last_timings_ms: Dict[str, float] = {}

    def _configure(self, info: OnnxInfo, config: Optional[Mapping[str, Any]],
                   config_file: Optional[Union[str, Path]], score_threshold: Optional[float],
                   use_sidecar: bool) -> None:
        self.config = resolve_config(info, config, config_file, use_sidecar=use_sidecar)
        labels = list(self.config.labels) if self.config.labels is not None else None
        self.decoder = build_decoder(self.config.decoder, labels=labels, input_wh=self.config.input.size_wh,
                                     where=str(self.path))
        if self.decoder.task != self.config.task:
            raise EdgeError(f"the edge config says task '{self.config.task}' but its '{self.decoder.kind}' decoder "
                            f"gives {self.decoder.task} results",
                            fix=f"drop --task (the model's decoder decides), or give a {self.config.task} decoder "
                                "(--config decoder.json)", where=str(self.path))
        self.decoder.check_outputs({o.name: o.shape for o in info.outputs})
        if score_threshold is not None:
            if not 0.0 <= score_threshold <= 1.0:
                raise EdgeError(f"threshold {score_threshold} is outside 0..1", fix="pass e.g. --threshold 0.5",
                                where="--threshold")
            self.decoder.score_threshold = float(score_threshold)
        self.preprocessor = Preprocessor.from_config(self.config)
        self._input_name = self.config.input.name

    # The three stages, for pipelines that time or overlap them.
    def preprocess(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, Transform]:
        """BGR uint8 frame -> (input tensor, Transform back to the frame). The tensor buffer is reused."""
        return self.preprocessor(image_bgr)

    def infer(self, tensor: np.ndarray) -> Dict[str, np.ndarray]:
        """Run the backend on a prepared input tensor; raw outputs by name."""
        return self.backend.infer({self._input_name: tensor})

    def decode(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Result:
        """Raw outputs -> the task's result (Detections, Classification, Segmentation, Keypoints) in frame pixels."""
        return self.decoder(outputs, transform)

    # Batches of frames (several streams through one inference call).
    @property
    def batch_limit(self) -> Optional[int]:
        """Most frames one inference call takes: 1 for a fixed batch, None for any number (a dynamic batch).

        A dynamic batch needs a symbolic first dimension on the input and on every output the decoder reads
        (an output without a batch axis, like a per-image box list, cannot be split by frame); a TensorRT
        engine is bounded by its optimization profile's largest batch.
        """
        spec = next((i for i in self.backend.inputs if i.name == self._input_name), None)
        if spec is None or not spec.shape or isinstance(spec.shape[0], int):
            return 1
        read = set(self.decoder.output_names) or {o.name for o in self.backend.outputs}
        if any(not o.shape or isinstance(o.shape[0], int) for o in self.backend.outputs if o.name in read):
            return 1
        return _engine_batch_limit(self.backend, self._input_name)

    def preprocess_batch(self, images_bgr: Sequence[np.ndarray]) -> Tuple[np.ndarray, List[Transform]]:
        """BGR frames -> (one input tensor of len(images_bgr) items, a Transform per frame)."""
        batch: Optional[np.ndarray] = None
        transforms = []
        for index, image in enumerate(images_bgr):
            tensor, transform = self.preprocessor(image)  # a reused buffer: copied into the batch at once
            if batch is None:
                batch = np.empty((len(images_bgr),) + tensor.shape[1:], tensor.dtype)
            batch[index] = tensor[0]
            transforms.append(transform)
        if batch is None:
            raise ValueError("preprocess_batch needs at least one frame")
        return batch, transforms

    def decode_batch(self, outputs: Dict[str, np.ndarray], transforms: Sequence[Transform]) -> List[Result]:
        """Raw outputs of a batch -> one result per frame (the decoders read one batch item at a time)."""
        if len(transforms) == 1:
            return [self.decoder(outputs, transforms[0])]
        return [self.decoder({name: array[index:index + 1] for name, array in outputs.items()}, transform)
                for index, transform in enumerate(transforms)]

    def __call__(self, image_bgr: np.ndarray) -> Result:
        """Preprocess, infer and decode one frame; stage times in ``last_timings_ms``."""
        t0 = time.perf_counter()
        tensor, transform = self.preprocessor(image_bgr)
        t1 = time.perf_counter()
        outputs = self.backend.infer({self._input_name: tensor})
        t2 = time.perf_counter()
        result = self.decoder(outputs, transform)
        t3 = time.perf_counter()
        self.last_timings_ms = {"preprocess": (t1 - t0) * 1e3, "infer": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3}
        return result

    @property
    def task(self) -> str:
        """The edge config task: 'detect', 'classify', 'segment' or 'keypoints'."""
        return self.config.task

    def describe(self) -> str:
        """One line: model, input, backend (and the file that runs, when a precision was asked of a CPU backend)."""
        w, h = self.config.input.size_wh
        running = f", running {self.running.describe()}" if self.running is not None else ""
        return (f"{self.config.name or self.path.stem} ({self.config.task}, {w}x{h} {self.config.preprocess.resize}) "
                f"on {self.backend.describe()}{running}")

    def close(self) -> None:
        """Release the backend."""
        self.backend.close()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def load_model(model: Optional[Union[str, Path]] = None, **kwargs: Any) -> Model:
    """Load a model (None: the built-in face detector; a zoo name; or a .onnx path). See :class:`Model`."""
    return Model(model, **kwargs)


def _engine_batch_limit(backend: Any, input_name: str) -> Optional[int]:
    """The largest batch the backend takes for ``input_name``: a TensorRT engine's optimization profile, a Triton
    model's max_batch_size (0: the model's own dims decide); None when nothing bounds it."""
    served = getattr(backend, "max_batch_size", None)
    if served:
        return int(served)
    runner = getattr(backend, "_runner", None)
    for tensor in getattr(runner, "inputs", None) or ():
        profile = getattr(tensor, "profile", None)
        if getattr(tensor, "name", None) == input_name and profile:
            return int(profile[2][0])
    return None


def _plan_config(plan: Path) -> Optional[Dict[str, Any]]:
    """The edge config stored in a plan's sidecar ({"edge_config": ..., "provenance": ...}), or None."""
    sidecar = plan_sidecar(plan)
    if sidecar is None:
        return None
    config = load_json(sidecar).get("edge_config")
    return dict(config) if isinstance(config, Mapping) else None
