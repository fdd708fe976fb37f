"""Lower an ONNX model's default-domain opset to a target where every node means the same there.

JetPack 4.6 boards run ONNX Runtime 1.10 (reads opsets up to 15) and TensorRT 8.2 (its ONNX parser
documents opsets up to 13), so a model exported at opset 17 must come down to 13 to run there.

Two ways down, in this order:

1. ``onnx.version_converter``: it rewrites nodes where an operator really changed (e.g. ReduceMean-18's
   axes input back into an attribute), but it has no down-adapter for many operators whose newer
   versions only added types (``No Adapter From Version $14 for Relu``).
2. A checked relabel: the opset number changes and the nodes stay as they are, allowed only where every
   operator version between the target and the source changed nothing the node uses. What changed is
   read from the operator schemas (``onnx.defs.get_schema``): attributes added, removed or given another
   default, inputs and outputs, and the tensor types each accepts. A new attribute the node sets to the
   value that means the old behaviour is dropped; any other use of something the target lacks is refused
   in one line naming the operator and the version that brought it (Reshape allowzero=1: Reshape-14;
   Shape start=: Shape-15; BatchNormalization training_mode=1: BatchNormalization-14). A version whose
   schema shows no difference changed the meaning (see onnx's Changelog.md) and is refused unless
   :data:`HIDDEN` says what changed and how to tell a node untouched by it.

The caller then runs onnx.checker (full), strict shape inference and a parity run against the original
through ONNX Runtime (export/commands/onnx.py does all three).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

import numpy as np

from edge.errors import EdgeError

DEFAULT_TARGET = 13  # JetPack 4.6: TensorRT 8.2's ONNX parser documents opsets up to 13
DEFAULT_DOMAINS = ("", "ai.onnx")
#: the oldest operator version whose changes were reviewed for :data:`HIDDEN` (opsets 14 to 28, onnx 1.23);
#: older ones hid changes their schemas do not show (opset 13's Softmax, opset 11's negative axes)
CHECKED_SINCE = 14


@dataclass(frozen=True)
class Hidden:
    """A change in one operator version that its schema does not show (from onnx's Changelog.md).

    ``attribute`` and ``values``: the node is untouched by the change unless it sets ``attribute`` to one
    of ``values``; ``attribute`` None: every node is touched (always refused)."""

    change: str
    attribute: Optional[str] = None
    values: Tuple[Any, ...] = ()


#: (operator, version) -> what changed there besides its schema's attributes, inputs, outputs and types
HIDDEN: Dict[Tuple[str, int], Hidden] = {
    ("Pad", 19): Hidden("mode 'wrap' added", "mode", (b"wrap",)),
    ("Resize", 19): Hidden("coordinate_transformation_mode 'half_pixel_symmetric' added",
                           "coordinate_transformation_mode", (b"half_pixel_symmetric",)),
    ("ScatterElements", 18): Hidden("reduction 'max' and 'min' added", "reduction", (b"max", b"min")),
    ("ScatterND", 18): Hidden("reduction 'max' and 'min' added", "reduction", (b"max", b"min")),
    ("GridSample", 20): Hidden("modes renamed (bilinear -> linear, bicubic -> cubic) and N-D grids added"),
    ("GroupNormalization", 21): Hidden("scale and bias are per channel, no longer per group"),
    ("MaxPool", 22): Hidden("with ceil_mode=1, windows that start in the right padding are ignored", "ceil_mode",
                            (1,)),
    ("AveragePool", 22): Hidden("with ceil_mode=1, windows that start in the right padding are ignored",
                                "ceil_mode", (1,)),
}

#: a new attribute whose default is not the old behaviour: the value that is (the node must set it)
OLD_BEHAVIOUR: Dict[Tuple[str, int, str], Any] = {
    # RoiAlign-10 worked as output_half_pixel; RoiAlign-16's default is half_pixel
    ("RoiAlign", 16, "coordinate_transformation_mode"): b"output_half_pixel",
}


def default_opset(model: Any) -> int:
    """The model's default-domain (ai.onnx) opset; 0 when it imports none."""
    return max((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), default=0)


def lower_opset(model: Any, target: int = DEFAULT_TARGET, where: str = "model") -> Tuple[Any, List[str]]:
    """``model`` at default-domain opset ``target``: (new model, report lines); the model itself when it is
    already at or below ``target``. EdgeError (one line, the operator and version named) when neither
    onnx.version_converter nor a checked relabel can lower it without changing what it computes."""
    import onnx

    source = default_opset(model)
    if source <= target:
        return model, [f"opset: kept {source} (already at or below {target})"]
    if any(_imports_default(f.opset_import) for f in model.functions):
        raise EdgeError(f"the model has local functions using ai.onnx ops; lowering them from opset {source} is not "
                        "supported", fix="inline the functions (onnx.inliner.inline_local_functions) first",
                        where=where)
    converted = _version_converter(model, target)
    if converted is not None:
        return converted, [f"opset: {source} -> {target} (onnx.version_converter)"] + _lower_ir(converted, target)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = _tensor_types(inferred.graph)
    lowered = onnx.ModelProto()
    lowered.CopyFrom(model)
    changed: Set[str] = set()
    for node in _nodes(lowered.graph):
        if node.domain in DEFAULT_DOMAINS:
            changed |= _relabel_node(node, source, target, types, where)
    for entry in lowered.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            entry.version = target
    steps = ", ".join(sorted(changed)) or "none"
    lines = [f"opset: {source} -> {target} (relabel: no node uses what changed in {steps})"]
    return lowered, lines + _lower_ir(lowered, target)


def _lower_ir(model: Any, target: int) -> List[str]:
    """Set the IR version to the one ONNX's release of opset ``target`` wrote (opset 13: IR 7, ONNX 1.8; what
    torch writes at opset 13) where the model uses nothing that came with a newer IR (IR 8: optional types,
    local functions). Only from opset 13 (IR 7) on: older IRs lack more (sparse tensors before IR 6)."""
    from onnx import helper

    releases = [ir for _, ir, opset, *_ in helper.VERSION_TABLE if opset == target]
    if not releases or min(releases) < 7 or model.ir_version <= min(releases):
        return []
    if model.functions or any(_has_optional(v.type) for g in _graphs(model.graph)
                              for v in list(g.input) + list(g.output) + list(g.value_info)):
        return []
    before, model.ir_version = model.ir_version, min(releases)
    return [f"IR version: {before} -> {model.ir_version} (the one of opset {target}'s ONNX release)"]


def _has_optional(type_proto: Any) -> bool:
    kind = type_proto.WhichOneof("value")
    if kind == "optional_type":
        return True
    return kind == "sequence_type" and _has_optional(type_proto.sequence_type.elem_type)


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and its subgraphs (If, Loop, Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _graphs(sub)


def _imports_default(opset_import: Any) -> bool:
    return any(o.domain in DEFAULT_DOMAINS for o in opset_import)


def _version_converter(model: Any, target: int) -> Optional[Any]:
    """onnx.version_converter's result when it has an adapter for every node and the result checks; else None."""
    import onnx
    from onnx import version_converter

    try:
        converted = version_converter.convert_version(model, target)
        onnx.checker.check_model(converted, full_check=True)
    except (RuntimeError, ValueError, IndexError, onnx.checker.ValidationError,
            onnx.shape_inference.InferenceError):
        return None  # no adapter ("No Adapter From Version $14 for Relu"), or a result the checker rejects
    return converted


def _nodes(graph: Any) -> Iterator[Any]:
    """Every node of ``graph`` and of its subgraphs."""
    for sub in _graphs(graph):
        yield from sub.node


def _tensor_types(graph: Any) -> Dict[str, str]:
    """Tensor name -> schema type string ('tensor(float)'), over the graph and its subgraphs."""
    import onnx

    found: Dict[str, str] = {}
    for sub in _graphs(graph):
        for init in sub.initializer:
            found[init.name] = f"tensor({onnx.TensorProto.DataType.Name(init.data_type).lower()})"
        for value in list(sub.input) + list(sub.output) + list(sub.value_info):
            text = _type_string(value.type)
            if text:
                found[value.name] = text
    return found


def _type_string(type_proto: Any) -> Optional[str]:
    import onnx

    kind = type_proto.WhichOneof("value")
    if kind == "tensor_type" and type_proto.tensor_type.elem_type:
        return f"tensor({onnx.TensorProto.DataType.Name(type_proto.tensor_type.elem_type).lower()})"
    if kind in ("sequence_type", "optional_type"):
        inner = _type_string(getattr(type_proto, kind).elem_type)
        return f"{'seq' if kind == 'sequence_type' else 'optional'}({inner})" if inner else None
    return None


def _schema(op: str, version: int) -> Optional[Any]:
    import onnx.defs

    try:
        return onnx.defs.get_schema(op, version, "")
    except onnx.defs.SchemaError:
        return None


def _relabel_node(node: Any, source: int, target: int, types: Dict[str, str], where: str) -> Set[str]:
    """Check that ``node`` means the same at ``target`` as at ``source``; drops new attributes it sets to
    their old-behaviour value. Returns the operator versions crossed ('Relu-14'); EdgeError if it cannot."""
    op = node.op_type
    newest, oldest = _schema(op, source), _schema(op, target)
    label = f"{op} node '{node.name}'" if node.name else f"{op} node"
    if newest is None:
        raise EdgeError(f"{label}: no ONNX schema for {op} at opset {source}", fix="check the model with "
                        "onnx.checker", where=where)
    if oldest is None:
        raise EdgeError(f"{label}: {op} does not exist at opset {target} (added in opset {newest.since_version})",
                        fix=f"replace the {op} node, or keep opset {source}", where=where)
    crossed = set()
    version = newest.since_version
    while version > oldest.since_version:
        if version < CHECKED_SINCE:
            raise EdgeError(f"{label}: {op}-{version} (opset {version}) is older than the changes a relabel checks "
                            f"(opset {CHECKED_SINCE} on)", fix=f"lower to opset {CHECKED_SINCE - 1} or newer, or "
                            "re-export from the training framework at the opset you need", where=where)
        before = _schema(op, version - 1)
        _check_step(node, before, _schema(op, version), types, f"{label}", target, where)
        crossed.add(f"{op}-{version}")
        version = before.since_version
    return crossed


def _check_step(node: Any, before: Any, after: Any, types: Dict[str, str], label: str, target: int,
                where: str) -> None:
    """One operator version (``after``) against the one before it, for this node."""
    op, version = after.name, after.since_version
    stop = f"{op}-{version} (opset {version})"
    fix = f"keep opset {version} or newer for this model, or change the {op} node"

    def refuse(what: str) -> EdgeError:
        return EdgeError(f"{label}: {what}; opset {target} cannot express it", fix=fix, where=where)

    visible = _attribute_step(node, before, after, stop, refuse)
    visible |= _signature_step(node, before, after, types, stop, refuse)
    hidden = HIDDEN.get((op, version))
    if hidden is not None:
        value = _node_attribute(node, hidden.attribute) if hidden.attribute else None
        if hidden.attribute is None or value in hidden.values:
            shown = "" if value is None else f" ({hidden.attribute}={_show(value)})"
            raise refuse(f"{stop} changed it: {hidden.change}{shown}")
    elif not visible:
        raise refuse(f"{stop} changed {op} in a way its schema does not show (onnx Changelog.md), so a relabel "
                     "cannot be checked")


def _attribute_step(node: Any, before: Any, after: Any, stop: str, refuse: Any) -> bool:
    """Attributes added, removed or changed at ``after``; drops a new one set to its old-behaviour value."""
    old, new = before.attributes, after.attributes
    for name in sorted(set(new) - set(old)):
        value = _node_attribute(node, name)
        key = (after.name, after.since_version, name)
        if value is None and key in OLD_BEHAVIOUR:
            raise refuse(f"{name} unset means {_show(_default(new[name]))} since {stop}, not the older "
                         f"{_show(OLD_BEHAVIOUR[key])}")
        if value is None:
            continue
        meaning_old = OLD_BEHAVIOUR.get(key, _default(new[name]))
        if value != meaning_old:
            raise refuse(f"{name}={_show(value)} needs {stop}")
        _drop_attribute(node, name)
    for name in sorted(set(old) - set(new)):
        raise refuse(f"{stop} removed attribute {name} (what the older version does without it is not checked)")
    for name in sorted(set(old) & set(new)):
        if int(old[name].type) != int(new[name].type):
            raise refuse(f"{stop} changed the type of attribute {name}")
        if _default(old[name]) != _default(new[name]) and _node_attribute(node, name) is None:
            raise refuse(f"{stop} changed the default of {name} to {_show(_default(new[name]))}")
    return set(old) != set(new) or any(_default(old[n]) != _default(new[n]) for n in set(old) & set(new))


def _signature_step(node: Any, before: Any, after: Any, types: Dict[str, str], stop: str, refuse: Any) -> bool:
    """Inputs, outputs and their types at ``before`` must take what the node passes; returns whether the
    schemas differ there (the step is explained)."""
    differs = False
    bound: Dict[str, str] = {}  # type parameter -> the node's type for it (one per node, inputs and outputs)
    for kind, used, old_params, new_params, limits in (
            ("input", list(node.input), before.inputs, after.inputs, (before.min_input, before.max_input)),
            ("output", list(node.output), before.outputs, after.outputs, (before.min_output, before.max_output))):
        count = len(used)
        while count and not used[count - 1]:
            count -= 1
        if not limits[0] <= count <= limits[1]:
            raise refuse(f"{count} {kind}s need {stop}")
        for index in range(count):
            if not used[index]:
                continue
            old_param, new_param = _param(old_params, index), _param(new_params, index)
            if old_param is None or new_param is None or old_param.name != new_param.name:
                raise refuse(f"{kind} {index} ('{used[index]}') needs {stop}")
            allowed = _allowed(before, old_param.type_str)
            actual = types.get(used[index])
            if actual is not None and actual not in allowed:
                raise refuse(f"{kind} '{used[index]}' of type {actual} needs {stop}")
            if actual is not None and (old_param.is_homogeneous or index < len(old_params) - 1):
                if bound.setdefault(old_param.type_str, actual) != actual:
                    raise refuse(f"{kind}s of different types ({bound[old_param.type_str]}, {actual}) need {stop}")
    for old_params, new_params in ((before.inputs, after.inputs), (before.outputs, after.outputs)):
        if [(p.name, p.type_str, p.option) for p in old_params] != [(p.name, p.type_str, p.option) for p in new_params]:
            differs = True
        if any(_allowed(before, o.type_str) != _allowed(after, n.type_str) for o, n in zip(old_params, new_params)):
            differs = True
    return differs or (before.min_input, before.max_input, before.min_output, before.max_output) != (
        after.min_input, after.max_input, after.min_output, after.max_output)


def _param(params: Any, index: int) -> Optional[Any]:
    """The formal parameter at position ``index`` (a variadic last one covers the rest)."""
    import onnx.defs

    if index < len(params):
        return params[index]
    last = params[-1] if params else None
    variadic = last is not None and last.option == onnx.defs.OpSchema.FormalParameterOption.Variadic
    return last if variadic else None


def _allowed(schema: Any, type_str: str) -> Set[str]:
    for constraint in schema.type_constraints:
        if constraint.type_param_str == type_str:
            return set(constraint.allowed_type_strs)
    return {type_str}


def _default(attribute_schema: Any) -> Any:
    from onnx import helper

    proto = attribute_schema.default_value
    return helper.get_attribute_value(proto) if proto.type else None


def _node_attribute(node: Any, name: Optional[str]) -> Any:
    from onnx import helper

    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _drop_attribute(node: Any, name: str) -> None:
    kept = [a for a in node.attribute if a.name != name]
    del node.attribute[:]
    node.attribute.extend(kept)


def _show(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@contextlib.contextmanager
def onnxruntime_runner(path: Path) -> Iterator[Any]:
    """The ONNX file at ``path`` on ONNX Runtime's CPU provider as a parity runner (batch -> outputs in order)."""
    from edge.backends import create_backend

    with create_backend(path, "onnxruntime-cpu") as backend:
        input_name = backend.inputs[0].name
        names = [o.name for o in backend.outputs]

        def run(batch: np.ndarray) -> List[np.ndarray]:
            produced = backend.infer({input_name: batch})
            return [produced[name] for name in names]

        yield run
