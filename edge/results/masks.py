"""Segmentation (segment): a semantic class map or instance masks, in source-frame pixels."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.results.boxes import Detections, label_of
from edge.results.rle import rle_encode


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
            label = label_of(self.labels, class_id)
            if label is not None:
                item["label"] = label
            item["rle"] = rle_encode(self.class_map == class_id)
            classes.append(item)
        data["classes"] = classes
        return data
