"""The "embed" decoder: one embedding output -> an L2-normalised vector (face recognition's building block).

Params (the "decoder" object; defaults in brackets)::

    type: "embed"
    output: model output name [the model's only output]
    normalize [true]: divide by the L2 norm (cosine similarity is then a dot product)
    match_threshold [0.5]: cosine similarity from which a gallery match counts (edge.gallery);
        below it a face (or any object) is "unknown"

The output is (1, D) or (1, D, 1, 1)-like: one vector of D >= 2 numbers per image.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.base import Decoder, Dim
from edge.decoders.params import ParamReader
from edge.results import Embeddings
from edge.transform import Transform

FIELDS = ("type", "output", "normalize", "match_threshold")
FIX_EMBEDDING = "use the model's embedding output (one vector per image), not a feature map or class scores"


class EmbedDecoder(Decoder):
    """Embedding output -> :class:`~edge.results.Embeddings` with one vector (the whole input)."""

    kind = "embed"
    task = "embed"

    def __init__(self, params: Dict[str, Any], *, labels: Optional[List[str]], input_wh: Tuple[int, int],
                 where: str = "") -> None:
        read = ParamReader(params, "decoder", FIELDS, where)
        output: Optional[str] = read.string("output", None)
        self.normalize = read.boolean("normalize", True)
        self.match_threshold = read.number("match_threshold", 0.5, low=-1.0, high=1.0)
        self.size: Optional[int] = None
        super().__init__(output_names=() if output is None else (output,), score_threshold=0.0,
                         labels=labels, input_wh=input_wh, where=where)

    def check_outputs(self, shapes: Dict[str, Sequence[Dim]]) -> None:
        """Raise EdgeError unless the output holds one vector of a fixed size per image."""
        if not self.output_names:
            if len(shapes) != 1:
                found = ", ".join(shapes) or "none"
                raise self.error(f"the model has {len(shapes)} outputs ({found}) and the embed decoder does not "
                                 "say which one is the embedding", "set decoder.output to the embedding output's name")
            self.output_names = (next(iter(shapes)),)
        name = self.output_names[0]
        shape = tuple(self.output_shape(shapes, name, len(shapes.get(name, ())) or 2))
        dims = shape[1:]
        if not dims or not all(isinstance(d, int) for d in dims):
            raise self.shape_error(name, "(1, D) with a fixed D", list(shape), FIX_EMBEDDING)
        wide = [d for d in dims if d != 1]
        if len(wide) != 1 or wide[0] < 2:
            raise self.shape_error(name, "one vector (1, D) after the batch", list(shape), FIX_EMBEDDING)
        self.size = int(wide[0])

    def __call__(self, outputs: Dict[str, np.ndarray], transform: Transform) -> Embeddings:
        vector = np.asarray(outputs[self.output_names[0]][0], dtype=np.float32).reshape(1, -1)
        return Embeddings.from_raw(vector, normalize=self.normalize)
