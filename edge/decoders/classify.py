"""The "classify" decoder: one score vector -> the top-k classes, best first.

Params (the "decoder" object; defaults in brackets)::

    type: "classify"
    output: model output name [the model's only output]
    activation: "softmax" | "sigmoid" | "none" ["softmax"; "none" when the model outputs probabilities]
    top_k [5], score_threshold [0.0]

The output is (1, C) or (1, C, 1, 1)-like: every dimension after the batch but one must be 1.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.activations import sigmoid, softmax
from edge.decoders.base import Decoder, Dim
from edge.decoders.params import ParamReader
from edge.results import Classification
from edge.transform import Transform

FIELDS = ("type", "output", "activation", "top_k", "score_threshold")
ACTIVATIONS = ("softmax", "sigmoid", "none")
FIX_SCORES = "use the model's class-score output"


class ClassifyDecoder(Decoder):
    """Class scores -> Classification (top_k best, ties broken by the lower class id).

    ``output_names`` is empty when the config names no output; :meth:`check_outputs` then adopts the
    model's single output.
    """

    kind = "classify"
    task = "classify"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        output: Optional[str] = read.string("output", None)
        self.activation = read.choice("activation", ACTIVATIONS, "softmax")
        self.top_k = read.integer("top_k", 5, low=1)
        super().__init__(output_names=() if output is None else (output,),
                         score_threshold=read.number("score_threshold", 0.0, low=0.0, high=1.0),
                         labels=labels, input_wh=input_wh, where=where)

    def _resolve_output(self, names: Sequence[str]) -> str:
        if self.output_names:
            return self.output_names[0]
        if len(names) != 1:
            found = ", ".join(names) or "none"
            raise self.error(f"the model has {len(names)} outputs ({found}) and the classify decoder "
                             "does not say which one holds the class scores",
                             "set decoder.output to the name of the scores output")
        self.output_names = (names[0],)
        return names[0]

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the output is one score per class (and per label, when labels are given)."""
        name = self._resolve_output(list(shapes))
        if name not in shapes:
            self.output_shape(shapes, name, 2)  # raises: names the missing output
        shape = tuple(shapes[name])
        if len(shape) < 2:
            raise self.shape_error(name, "(1, classes)", list(shape), FIX_SCORES)
        self.output_shape(shapes, name, len(shape))
        self._check_classes(name, shape[1:])

    def _check_classes(self, name: str, dims: Sequence[Dim]) -> None:
        """``dims`` (after the batch) must hold one class axis; with labels, one score per label."""
        known = [d for d in dims if isinstance(d, int)]
        wide = [d for d in known if d != 1]
        if len(wide) > 1:
            raise self.shape_error(name, "one class axis (1, classes) after the batch", [1] + list(dims),
                                   "use the model's class-score output, not a feature map")
        if self.labels is None or len(known) != len(dims):
            return
        classes = int(np.prod(known)) if known else 1
        if classes != len(self.labels):
            what = f"the model has {len(self.labels)} labels but output '{name}' scores {classes} classes"
            raise self.error(what,
                             f"give exactly {classes} labels, one per class, in class-id order")

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Classification:
        """Top-k classes of batch item 0, best first; ``transform`` is unused (no geometry)."""
        name = self._resolve_output(list(outputs))
        if name not in outputs:
            self.batch_item(outputs, name, 2)  # raises: names the missing output
        array = np.asarray(outputs[name])
        if array.ndim < 2:
            raise self.shape_error(name, "(1, classes)", list(array.shape), FIX_SCORES)
        self._check_classes(name, array.shape[1:])
        raw = self.batch_item(outputs, name, array.ndim).reshape(-1)
        scores = self._activate(raw)
        class_ids = np.flatnonzero(scores >= self.score_threshold)
        order = np.lexsort((class_ids, -scores[class_ids]))[: self.top_k]
        best = class_ids[order]
        return Classification(best, scores[best], self.labels)

    def _activate(self, raw: np.ndarray) -> np.ndarray:
        if self.activation == "softmax":
            return softmax(raw)
        if self.activation == "sigmoid":
            return sigmoid(raw)
        return np.asarray(raw, dtype=np.float64)
