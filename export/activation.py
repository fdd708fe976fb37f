"""Which activation the classify decoder applies: none when the graph already ends in Softmax/Sigmoid.

A classifier exported with its final softmax (Keras ``Dense(..., activation="softmax")``, a
PyTorch ``nn.Softmax`` head) outputs probabilities; applying softmax again squashes them towards
uniform (a real 0.25 among 1000 classes reads 0.0013). ``edge-export onnx`` looks at the op
that produces the scores output, through ops that do not change values (Reshape, Flatten,
Identity, Squeeze, Unsqueeze, Cast), and records ``decoder.activation: none`` when it is a Softmax
or a Sigmoid. ``--activation`` overrides; an activation in a config file that would apply a second
softmax/sigmoid is an error.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from edge.errors import EdgeError

PASS_THROUGH = ("Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze", "Cast")
ENDINGS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}


def trailing_activation(graph: Any, output_name: str) -> Optional[str]:
    """'softmax' or 'sigmoid' when ``output_name`` is produced by that op (looking through
    value-preserving ops), else None. ``graph``: an onnx GraphProto."""
    producers = {out: node for node in graph.node for out in node.output}
    name = output_name
    for _ in range(len(graph.node) + 1):
        node = producers.get(name)
        if node is None:
            return None  # a graph input or an initializer: nothing was applied
        if node.op_type in ENDINGS:
            return ENDINGS[node.op_type]
        if node.op_type not in PASS_THROUGH or not node.input:
            return None
        name = node.input[0]
    return None


def resolve_activation(data: Dict[str, Any], graph: Any, flag: Optional[str], where: str) -> List[str]:
    """Set ``decoder.activation`` of a classify config in ``data`` (in place); returns report lines.

    flag: --activation (always wins). Otherwise an activation already in the config is kept unless
    it would apply a second softmax/sigmoid (EdgeError), and an absent one is "none" when the graph
    ends in Softmax/Sigmoid (the decoder's default, softmax, otherwise).
    """
    if data.get("task") != "classify":
        if flag:
            raise EdgeError("--activation applies to classifiers (task classify)", fix="drop --activation",
                            where="--activation")
        return []
    decoder = dict(data.get("decoder") or {"type": "classify"})
    if decoder.get("type") != "classify":
        return []
    outputs = data.get("outputs") or []
    output = decoder.get("output") or (outputs[0] if len(outputs) == 1 else None)
    found = trailing_activation(graph, output) if output else None
    configured = decoder.get("activation")
    lines: List[str] = []
    if flag:
        decoder["activation"] = flag
        lines.append(f"activation: {flag} (--activation)")
    elif configured in ("softmax", "sigmoid") and found:
        raise EdgeError(f"the config asks the classify decoder to apply {configured}, but output '{output}' "
                        f"already ends in {found.capitalize()}: the scores would be squashed twice",
                        fix="set decoder.activation to none, or pass --activation to override", where=where)
    elif configured is None and found:
        decoder["activation"] = "none"
        lines.append(f"activation: none (output '{output}' already ends in {found.capitalize()}: the scores are "
                     "probabilities; --activation overrides)")
    data["decoder"] = decoder
    return lines
