"""Mask images: one lossless PNG per frame whose pixels are class ids or instance numbers, frame-sized.

``--output mask:masks_%05d.png``. A semantic model's pixel is the class id of that frame pixel (0 for
background and for frame area the model did not see); an instance model's pixel is the instance's
number in the frame's JSON record plus one (0: no instance), the first (best-scoring) instance winning
where masks overlap. The PNG is 8-bit when every value fits, else 16-bit; a semantic model with more
than 256 labels always writes 16 bits, so that one run's files share a depth. Read them back with
``cv2.imread(path, cv2.IMREAD_UNCHANGED)``.
"""

from typing import Any, Dict, Optional, Tuple

import numpy as np

from edge.errors import EdgeError
from edge.results import Classification, Detections, Embeddings, Frame, Keypoints, Segmentation
from edge.sinks.base import PathLike
from edge.sinks.files import ImageSink

MASK_PREFIX = "mask:"
MASK_TASKS = ("segment",)
_WRONG_TASK = "this output writes segmentation masks, but the model's task is '{task}'"
_FIX_TASK = "drop the mask output, or give a segmentation model (task 'segment')"
_TASK_OF = ((Detections, "detect"), (Classification, "classify"), (Keypoints, "keypoints"), (Embeddings, "embed"))


def is_mask_spec(spec: str) -> bool:
    """Whether an --output spec asks for mask images (``mask:...``)."""
    return spec.strip().lower().startswith(MASK_PREFIX)


def mask_path(spec: str) -> str:
    """The file pattern of a ``mask:`` spec."""
    return spec.strip()[len(MASK_PREFIX):].strip()


def check_outputs_for_task(outputs: Any, task: str) -> None:
    """Refuse outputs that cannot hold this model's results (mask images of a detector), before any frame.

    outputs: the --output specs; task: the model's task ("detect", "segment", ...).
    """
    for spec in outputs:
        if is_mask_spec(spec) and task not in MASK_TASKS:
            raise EdgeError(_WRONG_TASK.format(task=task), _FIX_TASK, spec.strip())


def class_image(result: Segmentation, where: Optional[str] = None) -> np.ndarray:
    """(H, W) uint8 or uint16 image of a segmentation: class ids, or instance number + 1 (0: background).

    where: the output, for errors (values that do not fit 16 bits).
    """
    if result.instances is not None:
        masks = result.masks
        assert masks is not None
        count = len(masks)
        dtype = np.uint8 if count <= 0xFF else np.uint16
        if count > 0xFFFF:
            raise EdgeError(f"{count} instances do not fit a 16-bit mask image", "raise the score threshold",
                            where)
        image = np.zeros(masks.shape[1:], dtype)
        for number in range(count, 0, -1):  # the best instance last: it wins where masks overlap
            mask = masks[number - 1]
            rows = np.flatnonzero(mask.any(axis=1))
            if len(rows):  # only the mask's bounding box is written: 3x faster than the whole frame
                band = mask[rows[0]:rows[-1] + 1]
                columns = np.flatnonzero(band.any(axis=0))
                window = np.s_[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
                np.putmask(image[window], band[:, columns[0]:columns[-1] + 1], number)
        return image
    class_map = result.class_map
    assert class_map is not None
    low, high = (int(class_map.min()), int(class_map.max())) if class_map.size else (0, 0)
    if low < 0 or high > 0xFFFF:
        raise EdgeError(f"class ids {low}..{high} do not fit a 16-bit mask image",
                        "write the results as JSON lines instead (--output results.jsonl)", where)
    wide = high > 0xFF or (result.labels is not None and len(result.labels) > 0x100)
    return class_map.astype(np.uint16 if wide else np.uint8)


class MaskImageSink(ImageSink):
    """Writes each frame's segmentation as a class-id PNG, lossless and frame-sized.

    pattern: as :class:`~edge.sinks.ImageSink` (``masks_%05d.png``, a folder ``masks/`` with
    ``frame_000042.png`` inside, or one file), but PNG only. One file (no ``%`` field) holds one frame:
    a source that gives a second frame is an error before any output gets it. Results other than
    :class:`~edge.results.Segmentation` are refused before the first frame is written anywhere.
    """

    needs_annotated = False
    needs_record = False
    what = "mask image"
    example = MASK_PREFIX + "masks_%05d.png"
    exts: Tuple[str, ...] = (".png",)
    folder_name = "frame_%06d.png"

    def __init__(self, pattern: PathLike) -> None:
        super().__init__(pattern)
        self.spec = MASK_PREFIX + self.pattern

    def _extension_error(self, ext: str) -> Tuple[str, str]:
        return (f"mask images are lossless PNG (8 or 16 bits a pixel), not '{ext or '(none)'}'",
                f"write it like {self.example}")

    def preflight(self) -> None:
        """As ImageSink, and a single file refuses a second frame (it would silently keep only the last)."""
        if self.images_written and "%" not in self.pattern:
            raise EdgeError("a single mask file holds one frame, but the source gives more",
                            f"write a pattern like {self.example}, one file per frame", self.spec)
        super().preflight()

    def check_result(self, result: Any) -> None:
        """Only segmentation results make mask images."""
        if result is None:  # a plain dict, not the pipeline's FrameRecord: a bug in the caller
            raise TypeError("mask images need the result object: pass a FrameRecord(result, ...) as the record")
        if not isinstance(result, Segmentation):
            task = next((name for kind, name in _TASK_OF if isinstance(result, kind)), type(result).__name__)
            raise EdgeError(_WRONG_TASK.format(task=task), _FIX_TASK, self.spec)

    def _image(self, frame: Frame, annotated: Optional[np.ndarray], record: Dict[str, Any]) -> np.ndarray:
        result = getattr(record, "result", None)
        self.check_result(result)
        image = class_image(result, self.spec)
        if image.shape != frame.image.shape[:2]:
            raise ValueError(f"the masks cover {image.shape[1]}x{image.shape[0]} pixels but the frame is "
                             f"{frame.size_wh[0]}x{frame.size_wh[1]}")
        return image
