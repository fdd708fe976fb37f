"""Result types: one per task, understood by every stage after the decoder.

Arrays carry units and layouts in their names: ``boxes_xyxy`` is in source-frame pixels,
``keypoints_xy``, ``points_xy``, ``class_map`` and ``masks`` too. Every result turns into plain JSON
with :meth:`to_json`; masks go out as COCO run-length encodings (:func:`rle_encode`), which
``pycocotools.mask.decode`` reads.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np


def _label(labels: Optional[Sequence[str]], class_id: int) -> Optional[str]:
    if labels is None or not 0 <= class_id < len(labels):
        return None
    return labels[class_id]


@dataclass
class Detections:
    """Boxes found in one frame, in source-frame pixels.

    boxes_xyxy: (N, 4) float32, x1 y1 x2 y2 in pixels of the frame given to the model.
    scores: (N,) float32 in [0, 1].
    class_ids: (N,) int64.
    keypoints_xy: (N, K, 2) float32 pixels, or None when the model has no keypoints.
    labels: class names indexed by class id, or None.
    track_ids: (N,) int64 ids that persist across frames (from :class:`edge.Tracker`), or None
        when the detections are not tracked.
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    keypoints_xy: Optional[np.ndarray] = None
    labels: Optional[List[str]] = None
    track_ids: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes_xyxy)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(n)
        if self.keypoints_xy is not None:
            keypoints = np.asarray(self.keypoints_xy, dtype=np.float32)
            count = keypoints.shape[1] if keypoints.ndim == 3 else keypoints.size // max(1, 2 * n)
            self.keypoints_xy = keypoints.reshape(n, count, 2)
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(n)

    @classmethod
    def empty(cls, num_keypoints: int = 0, labels: Optional[List[str]] = None) -> "Detections":
        """No detections, with the keypoint layout of the model that produced them."""
        keypoints = np.zeros((0, num_keypoints, 2), np.float32) if num_keypoints else None
        return cls(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0), keypoints, labels)

    def __len__(self) -> int:
        return len(self.boxes_xyxy)

    def __getitem__(self, index: Any) -> "Detections":
        """Select detections by index, slice or boolean mask; always returns Detections."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        keypoints = None if self.keypoints_xy is None else self.keypoints_xy[index]
        track_ids = None if self.track_ids is None else self.track_ids[index]
        return Detections(
            self.boxes_xyxy[index], self.scores[index], self.class_ids[index], keypoints, self.labels, track_ids
        )

    def with_track_ids(self, track_ids: Any) -> "Detections":
        """A copy of these detections (arrays shared) with the given (N,) track ids."""
        return Detections(self.boxes_xyxy, self.scores, self.class_ids, self.keypoints_xy, self.labels, track_ids)

    @property
    def area_px(self) -> np.ndarray:
        """Box areas in square pixels."""
        wh = np.clip(self.boxes_xyxy[:, 2:] - self.boxes_xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per detection."""
        items = []
        for i in range(len(self)):
            item: Dict[str, Any] = {
                "box_xyxy": [round(float(v), 2) for v in self.boxes_xyxy[i]],
                "score": round(float(self.scores[i]), 4),
                "class_id": int(self.class_ids[i]),
            }
            label = _label(self.labels, int(self.class_ids[i]))
            if label is not None:
                item["label"] = label
            if self.track_ids is not None:
                item["track_id"] = int(self.track_ids[i])
            if self.keypoints_xy is not None:
                item["keypoints_xy"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.keypoints_xy[i]]
            items.append(item)
        return {"task": "detect", "detections": items}


@dataclass
class Classification:
    """Top-k classes for one frame, best first.

    class_ids: (k,) int64; scores: (k,) float32 probabilities; labels: names by class id.
    """

    class_ids: np.ndarray
    scores: np.ndarray
    labels: Optional[List[str]] = None

    def __post_init__(self) -> None:
        self.class_ids = np.asarray(self.class_ids, dtype=np.int64).reshape(-1)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(len(self.class_ids))

    def __len__(self) -> int:
        return len(self.class_ids)

    @property
    def top_label(self) -> Optional[str]:
        """Name of the best class, or None without labels or classes."""
        return _label(self.labels, int(self.class_ids[0])) if len(self) else None

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per class, best first."""
        items = []
        for class_id, score in zip(self.class_ids, self.scores):
            item: Dict[str, Any] = {"class_id": int(class_id), "score": round(float(score), 4)}
            label = _label(self.labels, int(class_id))
            if label is not None:
                item["label"] = label
            items.append(item)
        return {"task": "classify", "classes": items}


def rle_encode(mask: np.ndarray) -> Dict[str, Any]:
    """COCO run-length encoding of a 2-D mask, as ``pycocotools.mask.encode`` writes it.

    Runs are counted down the columns (column-major), starting with a run of zeros (empty when the
    first pixel is set); ``counts`` is the compressed string form. Returns {"size": [h, w], "counts": str}.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"rle_encode needs a 2-D mask, got shape {mask.shape}")
    height, width = mask.shape
    return {"size": [int(height), int(width)], "counts": _rle_string(rle_counts(mask))}


def rle_counts(mask: np.ndarray) -> np.ndarray:
    """Column-major run lengths of a 2-D mask, zeros first: the uncompressed COCO RLE counts (int64).

    Only the columns from the first to the last with a set pixel are scanned (an instance mask covers a
    small part of the frame); the empty columns either side join the first and last runs of zeros.
    """
    mask = np.asarray(mask).astype(bool, copy=False)
    height, width = mask.shape
    columns = np.flatnonzero(mask.any(axis=0)) if mask.size else np.zeros(0, np.int64)
    if not len(columns):
        return np.array([height * width] if mask.size else [], np.int64)
    first, last = int(columns[0]), int(columns[-1]) + 1
    flat = mask[:, first:last].T.ravel()
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], starts, [flat.size]))).astype(np.int64)
    if flat[0]:
        counts = np.concatenate(([0], counts))
    counts[0] += first * height
    after = (width - last) * height
    if len(counts) % 2:  # ends with a run of zeros (runs alternate, zeros first)
        counts[-1] += after
    elif after:
        counts = np.concatenate((counts, [after]))
    return counts


def _rle_string(counts: np.ndarray) -> str:
    """pycocotools' compressed counts: each count (from the fourth on, minus the count two back) in
    5-bit groups, low first, 0x20 marking "more follows", offset by 48 into printable ASCII."""
    values = np.asarray(counts, np.int64).copy()
    values[3:] -= np.asarray(counts, np.int64)[1:-2]  # pycocotools: i > 2
    shifts = 5 * np.arange(8, dtype=np.int64)  # 8 groups of 5 bits cover any count of an int32 image size
    chunks = (values[:, None] >> shifts) & 0x1F
    after = values[:, None] >> (shifts + 5)
    more = np.where(chunks & 0x10, after != -1, after != 0)
    used = np.arange(8)[None, :] <= np.argmin(more, axis=1)[:, None]  # up to the first group without "more"
    codes = chunks + 48 + np.where(more, 0x20, 0)
    return codes[used].astype(np.uint8).tobytes().decode("ascii")


@dataclass
class Segmentation:
    """Pixel masks for one frame, in source-frame pixels: a semantic class map or instance masks.

    class_map: (H, W) int32 class id per frame pixel (semantic models; a binary model gives 0 for
        background and 1 for foreground; frame area the model did not see is 0), or None.
    labels: class names by class id, or None.
    instances: Detections, one per instance mask (YOLO-style instance segmentation), or None.
    masks: (N, H, W) bool, one frame-sized mask per instance, or None.

    Exactly one of ``class_map`` and ``instances`` (with ``masks``) is given. Run-length encodings are
    computed only by :meth:`to_json`.
    """

    class_map: Optional[np.ndarray] = None
    labels: Optional[List[str]] = None
    instances: Optional[Detections] = None
    masks: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if (self.class_map is None) == (self.instances is None):
            raise ValueError("Segmentation needs either class_map or instances (with masks), not both or neither")
        self._fractions: Optional[Dict[int, float]] = None
        if self.class_map is not None:
            self.class_map = np.asarray(self.class_map).astype(np.int32, copy=False)
            if self.class_map.ndim != 2:
                raise ValueError(f"class_map must be (H, W), got shape {self.class_map.shape}")
            return
        if not isinstance(self.instances, Detections) or self.masks is None:
            raise ValueError("instance segmentation needs instances (Detections) and masks (N, H, W)")
        self.masks = np.asarray(self.masks).astype(bool, copy=False)
        if self.masks.ndim != 3 or len(self.masks) != len(self.instances):
            raise ValueError(f"masks must be (N, H, W) with N = {len(self.instances)} instances, "
                             f"got shape {self.masks.shape}")
        if self.labels is None:
            self.labels = self.instances.labels

    @property
    def size_wh(self) -> Tuple[int, int]:
        """(width, height) of the frame the masks cover, in pixels."""
        shape = self.class_map.shape if self.class_map is not None else self.masks.shape[1:]  # type: ignore[union-attr]
        return int(shape[1]), int(shape[0])

    def class_fractions(self) -> Dict[int, float]:
        """{class id: fraction of the frame's pixels} for the classes present (semantic), or of the
        pixels covered by each class's instances (instances; overlaps count once per class)."""
        if self._fractions is None:
            width, height = self.size_wh
            total = float(max(1, width * height))
            if self.class_map is not None:
                counts = np.bincount(self.class_map.ravel())
                self._fractions = {int(c): float(counts[c]) / total for c in np.flatnonzero(counts)}
            else:
                self._fractions = {}
                for class_id in np.unique(self.instances.class_ids):  # type: ignore[union-attr]
                    union = self.masks[self.instances.class_ids == class_id].any(axis=0)  # type: ignore[index,union-attr]
                    self._fractions[int(class_id)] = float(np.count_nonzero(union)) / total
        return self._fractions

    def __len__(self) -> int:
        """Instances, or (semantic) the classes present other than background 0."""
        if self.instances is not None:
            return len(self.instances)
        return sum(1 for class_id in self.class_fractions() if class_id != 0)

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: per class (semantic) or per instance, each with a COCO RLE mask."""
        width, height = self.size_wh
        data: Dict[str, Any] = {"task": "segment", "size_wh": [width, height]}
        if self.instances is not None:
            items = self.instances.to_json()["detections"]
            for item, mask in zip(items, self.masks):  # type: ignore[arg-type]
                item["rle"] = rle_encode(mask)
            data["instances"] = items
            return data
        classes = []
        for class_id, fraction in sorted(self.class_fractions().items()):
            item: Dict[str, Any] = {"class_id": class_id, "fraction": round(fraction, 6)}
            label = _label(self.labels, class_id)
            if label is not None:
                item["label"] = label
            item["rle"] = rle_encode(self.class_map == class_id)
            classes.append(item)
        data["classes"] = classes
        return data


@dataclass
class Keypoints:
    """Points (landmarks, pose keypoints) of N instances in one frame, in source-frame pixels.

    points_xy: (N, K, 2) float32 pixels.
    scores: (N,) float32 instance scores (presence, or the box score of a pose detector).
    point_scores: (N, K) float32 per-point visibility or confidence in [0, 1], or None.
    points_z: (N, K) float32 relative depth as the model gives it, scaled like x (pixels), or None.
    boxes_xyxy: (N, 4) float32 pixels (pose detectors), or None.
    class_ids: (N,) int64 (zeros when not given); labels: class names by class id, or None.
    keypoint_names: K names, or None; skeleton: (i, j) index pairs to join with lines, or None.
    """

    points_xy: np.ndarray
    scores: np.ndarray
    point_scores: Optional[np.ndarray] = None
    points_z: Optional[np.ndarray] = None
    boxes_xyxy: Optional[np.ndarray] = None
    class_ids: Optional[np.ndarray] = None
    labels: Optional[List[str]] = None
    keypoint_names: Optional[List[str]] = None
    skeleton: Optional[List[Tuple[int, int]]] = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points_xy, dtype=np.float32)
        if points.ndim != 3 or points.shape[2] != 2:
            raise ValueError(f"points_xy must be (N, K, 2), got shape {points.shape}")
        self.points_xy = points
        n, k = points.shape[:2]
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        if self.point_scores is not None:
            self.point_scores = np.asarray(self.point_scores, dtype=np.float32).reshape(n, k)
        if self.points_z is not None:
            self.points_z = np.asarray(self.points_z, dtype=np.float32).reshape(n, k)
        if self.boxes_xyxy is not None:
            self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(n, 4)
        class_ids = np.zeros(n) if self.class_ids is None else self.class_ids
        self.class_ids = np.asarray(class_ids, dtype=np.int64).reshape(n)
        if self.keypoint_names is not None and len(self.keypoint_names) != k:
            raise ValueError(f"keypoint_names has {len(self.keypoint_names)} names for {k} keypoints")
        if self.skeleton is not None:
            self.skeleton = [(int(i), int(j)) for i, j in self.skeleton]
            bad = [pair for pair in self.skeleton if not (0 <= pair[0] < k and 0 <= pair[1] < k)]
            if bad:
                raise ValueError(f"skeleton pair {bad[0]} names a keypoint outside 0..{k - 1}")

    @property
    def num_keypoints(self) -> int:
        """K, the points per instance."""
        return int(self.points_xy.shape[1])

    def __len__(self) -> int:
        return len(self.points_xy)

    def __getitem__(self, index: Any) -> "Keypoints":
        """Select instances by index, slice or boolean mask; always returns Keypoints."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]

        def pick(array: Optional[np.ndarray]) -> Optional[np.ndarray]:
            return None if array is None else array[index]

        return Keypoints(self.points_xy[index], self.scores[index], pick(self.point_scores), pick(self.points_z),
                         pick(self.boxes_xyxy), pick(self.class_ids), self.labels, self.keypoint_names, self.skeleton)

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per instance, points in pixels."""
        items = []
        for i in range(len(self)):
            item: Dict[str, Any] = {"score": round(float(self.scores[i]), 4),
                                    "class_id": int(self.class_ids[i])}  # type: ignore[index]
            label = _label(self.labels, int(self.class_ids[i]))  # type: ignore[index]
            if label is not None:
                item["label"] = label
            if self.boxes_xyxy is not None:
                item["box_xyxy"] = [round(float(v), 2) for v in self.boxes_xyxy[i]]
            item["points_xy"] = [[round(float(x), 2), round(float(y), 2)] for x, y in self.points_xy[i]]
            if self.point_scores is not None:
                item["point_scores"] = [round(float(v), 4) for v in self.point_scores[i]]
            if self.points_z is not None:
                item["points_z"] = [round(float(v), 2) for v in self.points_z[i]]
            items.append(item)
        return {"task": "keypoints", "instances": items}


@dataclass
class Embeddings:
    """Embedding vectors for one frame: one for the whole frame (an embedder alone) or one per detection
    (a detector + embedder cascade, see :mod:`edge.cascade`), each optionally matched to a gallery.

    vectors: (N, D) float32, unit length when normalised (a zero or non-finite model output stays all
        zeros: it matches nothing). norms: (N,) float32, each vector's length before normalisation.
    boxes_xyxy: (N, 4) float32 source-frame pixels of the object each vector describes, or None (the
        whole frame). scores: (N,) detection scores, or None.
    identities: the gallery name each vector matched (None: unknown, below the match threshold), or
        None when no gallery was asked. similarities: (N,) cosine similarity to that best identity.
    """

    vectors: np.ndarray
    norms: np.ndarray
    boxes_xyxy: Optional[np.ndarray] = None
    scores: Optional[np.ndarray] = None
    identities: Optional[List[Optional[str]]] = None
    similarities: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2:
            self.vectors = self.vectors.reshape(-1, self.vectors.shape[-1] if self.vectors.ndim else 0)
        n = len(self.vectors)
        self.norms = np.asarray(self.norms, dtype=np.float32).reshape(n)
        if self.boxes_xyxy is not None:
            self.boxes_xyxy = np.asarray(self.boxes_xyxy, dtype=np.float32).reshape(n, 4)
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        if self.similarities is not None:
            self.similarities = np.asarray(self.similarities, dtype=np.float32).reshape(n)
        if self.identities is not None and len(self.identities) != n:
            raise ValueError(f"{len(self.identities)} identities for {n} vectors")

    @classmethod
    def from_raw(cls, vectors: np.ndarray, normalize: bool = True, **fields: Any) -> "Embeddings":
        """Wrap raw model vectors (N, D): non-finite ones become zeros, then each is L2-normalised."""
        raw = np.asarray(vectors, dtype=np.float32)
        raw = np.where(np.isfinite(raw).all(axis=1, keepdims=True), raw, np.float32(0))
        norms = np.linalg.norm(raw, axis=1).astype(np.float32)
        if normalize:
            raw = raw / np.maximum(norms, np.float32(1e-12))[:, None]
        return cls(raw, norms, **fields)

    @classmethod
    def empty(cls, size: int) -> "Embeddings":
        """No vectors of length ``size`` (a cascade whose detector found nothing)."""
        return cls(np.zeros((0, size), np.float32), np.zeros(0, np.float32), boxes_xyxy=np.zeros((0, 4), np.float32),
                   scores=np.zeros(0, np.float32))

    def __len__(self) -> int:
        return len(self.vectors)

    def to_json(self) -> Dict[str, Any]:
        """Plain-JSON form: one dict per vector (the vector to 6 decimals, with box, identity when known)."""
        items = []
        for i in range(len(self)):
            item: Dict[str, Any] = {"vector": [round(float(v), 6) for v in self.vectors[i]],
                                    "norm": round(float(self.norms[i]), 4)}
            if self.boxes_xyxy is not None:
                item["box_xyxy"] = [round(float(v), 2) for v in self.boxes_xyxy[i]]
            if self.scores is not None:
                item["score"] = round(float(self.scores[i]), 4)
            if self.identities is not None:
                item["identity"] = self.identities[i]
                item["similarity"] = round(float(self.similarities[i]), 4) if self.similarities is not None else None
            items.append(item)
        return {"task": "embed", "embeddings": items}


@dataclass
class Frame:
    """One image from a source.

    image: (H, W, 3) uint8 BGR, the layout OpenCV uses everywhere.
    index: 0-based position in the stream (counts frames delivered, live drops excluded).
    timestamp_s: capture time on the ``time.perf_counter`` clock, seconds.
    source: the URI it came from.
    truth: ground truth a synthetic source knows (``demo://``), else empty.
    """

    image: np.ndarray
    index: int
    timestamp_s: float
    source: str = ""
    truth: Dict[str, Any] = field(default_factory=dict)

    @property
    def size_wh(self) -> tuple:
        """(width, height) in pixels."""
        return (int(self.image.shape[1]), int(self.image.shape[0]))
