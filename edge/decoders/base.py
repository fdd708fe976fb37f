"""The decoder interface: raw model outputs in, one result (Detections, Classification, Segmentation,
Keypoints) out.

A decoder is built once from the "decoder" object of the model's edge config, checked once against
the model's output shapes (:meth:`Decoder.check_outputs`), then called on every frame.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edge.errors import EdgeError
from edge.results import Classification, Detections, Keypoints, Segmentation
from edge.transform import Transform

Dim = Union[int, str, None]
FIX_NAMES = "set the decoder's output names to the model's outputs"
FIX_LAYOUT = "export the model with the standard output layout, or fix the decoder config"


class Decoder:
    """Base class: subclasses set ``kind`` and implement ``__call__`` and ``check_outputs``.

    output_names: the model outputs this decoder reads.
    score_threshold: results scoring below it are dropped; may be changed after construction.
    """

    kind: str = ""
    # The edge config task whose result this decoder produces; an instance attribute where the params
    # decide it (a yolo head with kpt_shape gives keypoints, with masks a segmentation).
    task: str = "detect"

    def __init__(self, *, output_names: Tuple[str, ...], score_threshold: float, labels: Optional[List[str]],
                 input_wh: Tuple[int, int], where: str = "") -> None:
        self.output_names = tuple(output_names)
        self.labels = None if labels is None else list(labels)
        self.input_wh = (int(input_wh[0]), int(input_wh[1]))
        self.where = where
        self.score_threshold = score_threshold

    @property
    def score_threshold(self) -> float:
        """Minimum score in [0, 1] a result needs to be reported."""
        return self._score_threshold

    @score_threshold.setter
    def score_threshold(self, value: float) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0
        if not ok:
            raise self.error(f"score threshold must be a number in [0, 1], found {value!r}",
                             "pass a threshold such as 0.5 (--threshold 0.5)")
        self._score_threshold = float(value)

    def __call__(
        self, outputs: Dict[str, np.ndarray], transform: Transform
    ) -> Union[Detections, Classification, Segmentation, Keypoints]:
        """Decode batch item 0 of ``outputs`` (name -> array) into a result in source-frame pixels."""
        raise NotImplementedError

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError if the model's output shapes (name -> dims; str/None: dynamic) cannot feed this."""
        raise NotImplementedError

    # Helpers for subclasses ------------------------------------------------------------------------

    def error(self, what: str, fix: str) -> EdgeError:
        """A user error from this decoder, prefixed with its ``where``."""
        return EdgeError(what, fix=fix, where=self.where or None)

    def shape_error(self, name: str, expected: str, found: Any, fix: str) -> EdgeError:
        """The error for a model output whose shape does not fit the decoder."""
        what = f"model output '{name}' has shape {found}, but the {self.kind} decoder expects {expected}"
        return self.error(what, fix)

    def output_shape(self, shapes: Dict[str, Sequence[Dim]], name: str, ndim: int) -> Tuple[Dim, ...]:
        """The shape of output ``name`` from ``shapes``, checked for presence, rank and a batch of 1."""
        if name not in shapes:
            found = ", ".join(shapes) or "none"
            raise self.error(f"the model has no output '{name}' (outputs: {found})", FIX_NAMES)
        shape = tuple(shapes[name])
        if len(shape) != ndim:
            raise self.shape_error(name, f"{ndim} dimensions (batch first)", list(shape), FIX_LAYOUT)
        if isinstance(shape[0], int) and shape[0] != 1:
            raise self.batch_error(name, shape[0])
        return shape

    def batch_item(self, outputs: Dict[str, np.ndarray], name: str, ndim: int) -> np.ndarray:
        """Item 0 of output ``name``; EdgeError if it is missing, of the wrong rank or batched."""
        if name not in outputs:
            found = ", ".join(outputs) or "none"
            raise self.error(f"the model returned no output '{name}' (returned: {found})", FIX_NAMES)
        array = np.asarray(outputs[name])
        if array.ndim != ndim:
            raise self.shape_error(name, f"{ndim} dimensions (batch first)", list(array.shape), FIX_LAYOUT)
        if array.shape[0] != 1:
            raise self.batch_error(name, array.shape[0])
        return array[0]

    def batch_error(self, name: str, batch: int) -> EdgeError:
        """The error for an output with a batch of more than one frame."""
        return self.error(f"model output '{name}' has a batch of {batch}; edge decodes one frame at a time",
                          "export the model with batch size 1 (or a dynamic batch)")
