"""Frame: one image from a source, with its index, capture time and (for demo://) ground truth."""

from dataclasses import dataclass, field
from typing import Any, Dict

import numpy as np


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
