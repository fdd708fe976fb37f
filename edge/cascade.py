"""Two-stage pipelines: a detector, then a second model on a crop of each detection, results in frame pixels.

The crop follows MediaPipe's rect transformation: a square (or the second model's aspect) around the
detection box, scaled, shifted, and optionally rotated so that the line from one detected keypoint
to another points a fixed way (palm: wrist to middle-finger base, straight up). The crop is cut with
one ``cv2.warpAffine`` straight to the second model's input size, and the second model's result
(keypoints, or an embedding) is mapped back through the same affine, so it lands in frame pixels
whatever the rotation, letterbox or crop.

    with Cascade(load_model("palm_detection_lite"), load_model("hand_landmark_lite"), CropSpec(
            scale=2.6, shift_xy=(0.0, -0.5), rotation_keypoints=(0, 2), rotation_deg=90.0)) as hands:
        keypoints = hands(frame)          # Keypoints, one instance per hand

A cascade has the three stages of a :class:`~edge.model.Model` (preprocess, infer, decode) so the
camera pipeline times it the same way; the second stage runs inside ``decode`` and its own time is
in ``last_timings_ms["second_stage"]``.
"""

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from edge.cv import require_cv2
from edge.errors import EdgeError
from edge.results import Detections, Embeddings, Keypoints
from edge.transform import Transform

#: tasks a second stage may have: what a crop of one detection turns into
SECOND_TASKS = ("keypoints", "embed")


@dataclasses.dataclass(frozen=True)
class CropSpec:
    """How a detection becomes the second model's input.

    scale: crop size as a multiple of the box (of its longest side when ``square``).
    square: a square crop (the longest side); else the box's own aspect, scaled.
    shift_xy: centre shift in box widths / heights, in the rotated frame (MediaPipe hand: (0, -0.5)).
    rotation_keypoints: (i, j) detector keypoints; the crop is rotated so that i -> j points at ``rotation_deg``
        (counter-clockwise from the +x axis, 90 = up). None: no rotation.
    max_objects: second-stage runs per frame (the highest-scoring detections first).
    """

    scale: float = 1.3
    square: bool = True
    shift_xy: Tuple[float, float] = (0.0, 0.0)
    rotation_keypoints: Optional[Tuple[int, int]] = None
    rotation_deg: float = 90.0
    max_objects: int = 4

    FIELDS = ("scale", "square", "shift_xy", "rotation_keypoints", "rotation_deg", "max_objects")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "crop") -> "CropSpec":
        """From a pipeline file's "crop" object, every field checked."""
        if not isinstance(data, Mapping):
            raise EdgeError(f"'{where}' must be an object", fix="write it like {\"scale\": 1.3}", where=where)
        unknown = sorted(set(data) - set(cls.FIELDS))
        if unknown:
            raise EdgeError(f"unknown field '{where}.{unknown[0]}' (valid: {', '.join(cls.FIELDS)})",
                            fix="fix the spelling or remove the field", where=where)
        values = dict(data)
        for name in ("shift_xy", "rotation_keypoints"):
            if values.get(name) is not None:
                values[name] = tuple(values[name]) if isinstance(values[name], (list, tuple)) else values[name]
        spec = cls(**values)
        spec.check(where)
        return spec

    def check(self, where: str = "crop") -> None:
        """Raise EdgeError for a field out of range."""
        def bad(name: str, expected: str) -> EdgeError:
            return EdgeError(f"'{where}.{name}' must be {expected}, got {getattr(self, name)!r}",
                             fix=f"correct {where}.{name}", where=where)

        if not (_number(self.scale) and 0.05 <= self.scale <= 20):
            raise bad("scale", "a number in [0.05, 20]")
        if not isinstance(self.square, bool):
            raise bad("square", "true or false")
        if not (isinstance(self.shift_xy, tuple) and len(self.shift_xy) == 2 and all(map(_number, self.shift_xy))
                and all(abs(v) <= 5 for v in self.shift_xy)):
            raise bad("shift_xy", "two numbers in [-5, 5]")
        pair = self.rotation_keypoints
        if pair is not None and not (isinstance(pair, tuple) and len(pair) == 2
                                     and all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in pair)
                                     and pair[0] != pair[1]):
            raise bad("rotation_keypoints", "two different keypoint indices [i, j], or null")
        if not (_number(self.rotation_deg) and math.isfinite(self.rotation_deg)):
            raise bad("rotation_deg", "a number of degrees")
        if not (isinstance(self.max_objects, int) and not isinstance(self.max_objects, bool)
                and 1 <= self.max_objects <= 64):
            raise bad("max_objects", "an integer in [1, 64]")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def crop_affine(box_xyxy: Sequence[float], crop: CropSpec, out_wh: Tuple[int, int],
                keypoints_xy: Optional[np.ndarray] = None) -> np.ndarray:
    """The 2x3 affine from crop pixels (u, v) to frame pixels (x, y) for one detection.

    box_xyxy: the detection in frame pixels. out_wh: crop size (the second model's input).
    keypoints_xy: the detection's (K, 2) keypoints in frame pixels, needed for ``rotation_keypoints``.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    width, height = max(x2 - x1, 1e-3), max(y2 - y1, 1e-3)
    rotation = 0.0
    if crop.rotation_keypoints is not None:
        i, j = crop.rotation_keypoints
        if keypoints_xy is None or max(i, j) >= len(keypoints_xy):
            count = 0 if keypoints_xy is None else len(keypoints_xy)
            raise EdgeError(f"crop.rotation_keypoints names keypoints {i} and {j}, but the detector gives {count}",
                            fix="use keypoint indices the detector has, or drop rotation_keypoints", where="crop")
        dx, dy = (keypoints_xy[j] - keypoints_xy[i]).astype(np.float64)
        # image y points down: the on-screen angle of i -> j is atan2(-dy, dx)
        rotation = math.radians(crop.rotation_deg) - math.atan2(-dy, dx)
    cos, sin = math.cos(rotation), math.sin(rotation)
    turn = np.array([[cos, -sin], [sin, cos]])  # crop axes -> frame axes (clockwise on screen by `rotation`)
    centre = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0]) + turn @ np.array(
        [crop.shift_xy[0] * width, crop.shift_xy[1] * height])
    out_w, out_h = out_wh
    if crop.square:
        side = max(width, height) * crop.scale
        region = (side, side * out_h / out_w) if out_w >= out_h else (side * out_w / out_h, side)
    else:
        region = (width * crop.scale, height * crop.scale)
    linear = turn @ np.diag([region[0] / out_w, region[1] / out_h])
    offset = centre - linear @ np.array([out_w / 2.0, out_h / 2.0])
    return np.hstack([linear, offset[:, None]])


def map_points(affine: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (..., 2) points (float32)."""
    points = np.asarray(points_xy, dtype=np.float64)
    return (points @ affine[:, :2].T + affine[:, 2]).astype(np.float32)


def _inside(affine: np.ndarray, out_wh: Tuple[int, int], frame_wh: Tuple[int, int]) -> bool:
    """Whether any part of the crop lies inside the frame."""
    w, h = out_wh
    corners = map_points(affine, np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))
    return bool(corners[:, 0].max() > 0 and corners[:, 0].min() < frame_wh[0]
                and corners[:, 1].max() > 0 and corners[:, 1].min() < frame_wh[1])


class Cascade:
    """A detector, then ``model`` on a crop of each of its detections (best first, at most ``crop.max_objects``).

    detector: a detect Model. model: a keypoints or embed Model. The result is the second model's result
    type with one instance per detection whose crop lay (at least partly) in the frame, in frame pixels,
    with the detection's box. For face recognition wrap it in an :class:`edge.gallery.Recognizer`.
    """

    def __init__(self, detector: Any, model: Any, crop: Optional[CropSpec] = None) -> None:
        if detector.task != "detect":
            raise EdgeError(f"the first stage of a cascade must be a detector, this model's task is '{detector.task}'",
                            fix="give a detection model first (e.g. palm_detection_lite)", where="--model")
        if model.task not in SECOND_TASKS:
            raise EdgeError(f"a cascade's second model must give {' or '.join(SECOND_TASKS)} results, this one "
                            f"gives {model.task}", fix="give a landmark or embedding model as the second stage",
                            where="--then")
        self.detector, self.model = detector, model
        self.crop = crop or CropSpec()
        self.crop.check()
        self.cv2 = require_cv2("cutting crops for a two-stage pipeline")
        self.out_wh = model.config.input.size_wh
        self.last_timings_ms: Dict[str, float] = {}
        self.skipped_crops = 0  # detections whose crop fell wholly outside the frame
        self._frame: Optional[np.ndarray] = None

    @property
    def task(self) -> str:
        """The second model's task: what the cascade's results are."""
        return self.model.task

    @property
    def config(self) -> Any:
        """The detector's config (the pipeline's input side)."""
        return self.detector.config

    def describe(self) -> str:
        """One line: both models and the crop."""
        rotation = (f", rotated so keypoints {self.crop.rotation_keypoints[0]}->{self.crop.rotation_keypoints[1]} "
                    f"point at {self.crop.rotation_deg:g} deg" if self.crop.rotation_keypoints else "")
        return (f"{self.detector.describe()}, then on each detection (up to {self.crop.max_objects}, crop x"
                f"{self.crop.scale:g}{rotation}) {self.model.describe()}")

    # The three stages of a Model, for the camera pipeline.
    def preprocess(self, image_bgr: np.ndarray) -> Tuple[np.ndarray, Transform]:
        """The detector's preprocessing; the frame is kept for the crops cut in ``decode``."""
        self._frame = image_bgr
        return self.detector.preprocess(image_bgr)

    def infer(self, tensor: np.ndarray) -> Dict[str, np.ndarray]:
        """The detector's inference."""
        return self.detector.infer(tensor)

    def decode(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Any:
        """Detections, then the second model on each crop; its results mapped to frame pixels."""
        frame, self._frame = self._frame, None
        if frame is None:
            raise RuntimeError("Cascade.decode needs the frame given to preprocess")
        detections = self.detector.decode(outputs, transform)
        start = time.perf_counter()
        result = self.second_stage(frame, detections)
        self.last_timings_ms = {"second_stage": (time.perf_counter() - start) * 1e3}
        return result

    def __call__(self, image_bgr: np.ndarray) -> Any:
        """All stages on one frame."""
        tensor, transform = self.preprocess(image_bgr)
        return self.decode(self.infer(tensor), transform)

    def crops(self, frame: np.ndarray, detections: Detections) -> List[Tuple[int, np.ndarray, np.ndarray]]:
        """(detection index, crop affine crop->frame, crop image) for the detections the second stage sees."""
        order = np.argsort(-detections.scores, kind="stable")[: self.crop.max_objects]
        frame_wh = (frame.shape[1], frame.shape[0])
        out = []
        for index in order:
            keypoints = detections.keypoints_xy[index] if detections.keypoints_xy is not None else None
            affine = crop_affine(detections.boxes_xyxy[index], self.crop, self.out_wh, keypoints)
            if not _inside(affine, self.out_wh, frame_wh):
                self.skipped_crops += 1
                continue
            image = self.cv2.warpAffine(frame, affine, self.out_wh, flags=self.cv2.INTER_LINEAR
                                        | self.cv2.WARP_INVERSE_MAP, borderMode=self.cv2.BORDER_CONSTANT,
                                        borderValue=(0, 0, 0))
            out.append((int(index), affine, image))
        return out

    def second_stage(self, frame: np.ndarray, detections: Detections) -> Any:
        """The second model on each crop, merged into one result in frame pixels."""
        parts = [(index, affine, self.model(image)) for index, affine, image in self.crops(frame, detections)]
        if self.model.task == "embed":
            return self._embeddings(detections, parts)
        return self._keypoints(detections, parts)

    def _embeddings(self, detections: Detections, parts: List[Tuple[int, np.ndarray, Any]]) -> Embeddings:
        if not parts:
            size = getattr(self.model.decoder, "size", None) or 0
            result = Embeddings.empty(size)
        else:
            indices = [index for index, _, _ in parts]
            result = Embeddings(np.concatenate([r.vectors for _, _, r in parts]),
                                np.concatenate([r.norms for _, _, r in parts]),
                                boxes_xyxy=detections.boxes_xyxy[indices], scores=detections.scores[indices])
        return result

    def _keypoints(self, detections: Detections, parts: List[Tuple[int, np.ndarray, Any]]) -> Keypoints:
        instances = []
        for index, affine, result in parts:
            for k in range(len(result)):
                instances.append((index, affine, result, k))
        template = parts[0][2] if parts else None
        count = template.points_xy.shape[1] if template is not None else 0
        points = np.zeros((len(instances), count, 2), np.float32)
        point_scores = None if template is None or template.point_scores is None else \
            np.zeros((len(instances), count), np.float32)
        points_z = None if template is None or template.points_z is None else \
            np.zeros((len(instances), count), np.float32)
        scores = np.zeros(len(instances), np.float32)
        boxes = np.zeros((len(instances), 4), np.float32)
        for row, (index, affine, result, k) in enumerate(instances):
            points[row] = map_points(affine, result.points_xy[k])
            scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))  # z is scaled like x and y
            if point_scores is not None:
                point_scores[row] = result.point_scores[k]
            if points_z is not None:
                points_z[row] = result.points_z[k] * scale
            scores[row] = result.scores[k]
            boxes[row] = detections.boxes_xyxy[index]
        model_kp = template
        return Keypoints(points_xy=points, point_scores=point_scores, points_z=points_z, scores=scores,
                         boxes_xyxy=boxes, class_ids=np.zeros(len(instances), np.int64),
                         labels=getattr(model_kp, "labels", None),
                         keypoint_names=getattr(model_kp, "keypoint_names", None),
                         skeleton=getattr(model_kp, "skeleton", None))

    def close(self) -> None:
        """Close both models."""
        try:
            self.detector.close()
        finally:
            self.model.close()

    def __enter__(self) -> "Cascade":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


#: fields of a pipeline file (or a zoo pipeline in models/manifest.json)
PIPELINE_FIELDS = ("model", "then", "crop", "gallery", "match_threshold", "summary")


def read_pipeline(spec: str) -> Dict[str, Any]:
    """A two-stage pipeline: a JSON file or the name of one shipped in the zoo (``--pipeline hands``).

    Returns {"model", "then", "crop": CropSpec, "gallery": path or None, "match_threshold": float or None}.
    Relative paths (models, gallery) are relative to the file's folder (the zoo's folder for zoo pipelines)::

        {"model": "palm_detection_lite", "then": "hand_landmark_lite",
         "crop": {"scale": 2.6, "shift_xy": [0, -0.5], "rotation_keypoints": [0, 2], "rotation_deg": 90}}
    """
    from edge.config import load_json
    from edge.zoo import pipelines, zoo_dir

    path = Path(spec)
    if path.suffix.lower() == ".json" or path.is_file():
        data, base, where = load_json(path, where="--pipeline"), path.resolve().parent, str(path)
    else:
        known = pipelines()
        if spec not in known:
            names = ", ".join(sorted(known)) or "none"
            raise EdgeError(f"'{spec}' is neither a pipeline file nor a pipeline shipped with edge",
                            fix=f"give a .json pipeline file, or one of: {names}", where="--pipeline")
        data, base, where = known[spec], zoo_dir(), f"--pipeline {spec}"
    if not isinstance(data, Mapping):
        raise EdgeError("a pipeline file holds one JSON object", fix='write it like {"model": ..., "then": ...}',
                        where=where)
    unknown = sorted(set(data) - set(PIPELINE_FIELDS))
    if unknown:
        raise EdgeError(f"unknown pipeline field '{unknown[0]}' (valid: {', '.join(PIPELINE_FIELDS)})",
                        fix="fix the spelling or remove the field", where=where)
    for name in ("model", "then"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise EdgeError(f"the pipeline needs '{name}': a model file or zoo name", fix=f"add \"{name}\": ...",
                            where=where)
    threshold = data.get("match_threshold")
    if threshold is not None and not (_number(threshold) and -1 <= threshold <= 1):
        raise EdgeError(f"'match_threshold' must be a cosine similarity in [-1, 1], got {threshold!r}",
                        fix="give e.g. 0.5", where=where)
    gallery = data.get("gallery")
    if gallery is not None and not isinstance(gallery, str):
        raise EdgeError(f"'gallery' must be a folder path, got {gallery!r}", fix="give a folder", where=where)

    def beside(text: str) -> str:
        candidate = base / text
        return str(candidate) if candidate.is_file() else text  # otherwise a zoo name, or a path from here

    return {"model": beside(data["model"]), "then": beside(data["then"]),
            "crop": CropSpec.from_dict(data.get("crop", {}), where="crop"),
            "gallery": None if gallery is None else str(base / gallery), "match_threshold": threshold}


def open_pipeline(model: Optional[str], load: Any, *, then: Optional[str] = None, pipeline: Optional[str] = None,
                  gallery: Optional[str] = None, match_threshold: Optional[float] = None,
                  crop: Optional[Mapping[str, Any]] = None) -> Any:
    """What a run uses: one model, or a detector + second-model :class:`Cascade`, matched to a gallery when one is
    given (:class:`edge.gallery.Recognizer`). Flags win over a pipeline's fields.

    load(name, first): opens a Model (first: the model the user's config flags and --threshold apply to).
    crop: CropSpec fields that override the pipeline's (e.g. {"scale": 2.0}).
    """
    from edge.gallery import Gallery, Recognizer

    crop_spec = CropSpec()
    if pipeline is not None:
        spec = read_pipeline(pipeline)
        model = model or spec["model"]
        then = then or spec["then"]
        crop_spec = spec["crop"]
        gallery = gallery or spec["gallery"]
        match_threshold = spec["match_threshold"] if match_threshold is None else match_threshold
    if crop:
        if then is None:
            raise EdgeError("--crop-scale and --max-objects shape the crops of a two-stage run",
                            fix="add --then MODEL (or --pipeline), or drop them", where="--crop-scale")
        crop_spec = dataclasses.replace(crop_spec, **crop)
        crop_spec.check("crop")
    if match_threshold is not None and gallery is None:
        raise EdgeError("--match-threshold applies to gallery matching", fix="add --gallery FOLDER, or drop it",
                        where="--match-threshold")
    opened: List[Any] = []
    try:
        built = load(model, True)
        opened.append(built)
        if then is not None:
            second = load(then, False)
            opened.append(second)
            built = Cascade(built, second, crop_spec)
        if gallery is not None:
            embedder = built.model if isinstance(built, Cascade) else built
            if match_threshold is None:
                match_threshold = getattr(getattr(embedder, "decoder", None), "match_threshold", 0.5)
            if built.task != "embed":
                raise EdgeError(f"--gallery matches embeddings, but this model gives {built.task} results",
                                fix="use an embedding model, alone or as --then after a detector", where="--gallery")
            built = Recognizer(built, Gallery.from_folder(gallery, built, match_threshold))
        return built
    except BaseException:
        for item in reversed(opened):
            item.close()
        raise
