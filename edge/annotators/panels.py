"""Text panels: the top-k classes of a Classification, and the app's status line."""

from typing import Dict, Iterable, Optional

import numpy as np

from edge.annotators.draw import CORNERS, check_scene, class_name, panel, scale_for, wrap
from edge.results import Classification


class ClassificationAnnotator:
    """The top-k classes, best first, as ``cat 87.1%`` lines on a dark panel in a corner.

    top_k: how many classes to list. corner: one of CORNERS. text_scale: None scales with the image.
    """

    def __init__(self, top_k: int = 5, corner: str = "top-right", text_scale: Optional[float] = None) -> None:
        if corner not in CORNERS:
            raise ValueError(f"corner must be one of {', '.join(CORNERS)}, got {corner!r}")
        self.top_k = int(top_k)
        self.corner = corner
        self.text_scale = text_scale

    def annotate(self, scene: np.ndarray, classification: Classification) -> np.ndarray:
        """Draw the panel (nothing when there are no classes); return ``scene``."""
        check_scene(scene)
        if not isinstance(classification, Classification):
            raise TypeError(f"ClassificationAnnotator draws Classification, got {type(classification).__name__}")
        count = min(len(classification), self.top_k)
        lines = [f"{class_name(classification.labels, int(c))} {100.0 * float(s):.1f}%"
                 for c, s in zip(classification.class_ids[:count], classification.scores[:count])]
        panel(scene, lines, self.corner, scale_for(scene, self.text_scale))
        return scene


class StatusAnnotator:
    """The status panel, top-left: ``12.3 FPS | capture 1.2 ms | infer 9.1 ms`` and extra lines."""

    def __init__(self, text_scale: Optional[float] = None) -> None:
        self.text_scale = text_scale

    def annotate(self, scene: np.ndarray, fps: Optional[float], stage_ms: Dict[str, float],
                 text_lines: Iterable[str] = ()) -> np.ndarray:
        """Draw the panel; return ``scene``.

        fps: frames per second, or None while unknown (shown as ``-- FPS``).
        stage_ms: stage name -> milliseconds, drawn in the given order.
        text_lines: more lines under the timings (backend, model, ...).
        """
        check_scene(scene)
        parts = [f"{fps:.1f} FPS" if fps is not None and np.isfinite(fps) else "-- FPS"]
        parts += [f"{name} {ms:.1f} ms" for name, ms in stage_ms.items()]
        scale = scale_for(scene, self.text_scale)
        lines = wrap(parts, scene.shape[1], scale) + [str(line) for line in text_lines]
        panel(scene, lines, "top-left", scale)
        return scene
