"""Nested model outputs (tuples, lists, dicts, any depth) as a flat list of named ONNX outputs.

ONNX outputs are a flat list of tensors, while a PyTorch ``forward`` may return a tensor, a tuple,
a list, a dict, or any nesting of them. The leaves are taken depth first, in the order the
containers hold them (dicts in insertion order, which is also the order torch's exporter uses),
and each leaf is named by its path:

==========================================  ==============================================
forward returns                             ONNX output names
==========================================  ==============================================
``y``                                       ``output``
``(a, b)``                                  ``output0``, ``output1``
``{"boxes": b, "scores": s}``               ``boxes``, ``scores``
``(y, [p3, p4, p5])``                       ``output0``, ``output1.0``, ``output1.1``, ``output1.2``
``(y, {"boxes": b, "feats": [f0, f1]})``    ``output0``, ``output1.boxes``, ``output1.feats.0``, ...
``[{"boxes": ..., "scores": ..., ...}]``    ``boxes``, ``scores``, ... (torchvision detectors)
==========================================  ==============================================

Rules: a dict contributes its key, a tuple or list the element's index, joined with ``.``; a
path that starts with an index gets the prefix ``output``; a top-level tuple or list with one
element is unwrapped (torchvision's detectors return one dict per image: batch 1 gives a list of
one dict). ``--output-names`` renames the leaves in this order, and ``--keep-outputs`` keeps only
the named leaves (e.g. ``--keep-outputs output0`` exports only ``y`` of an Ultralytics model).
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

from edge.errors import EdgeError

Path = Tuple[str, ...]


def leaves(result: Any) -> List[Tuple[Path, Any]]:
    """(path, leaf) pairs of a nested result, depth first; a one-element top-level sequence is unwrapped."""
    if isinstance(result, (list, tuple)) and len(result) == 1:
        result = result[0]
    found: List[Tuple[Path, Any]] = []
    _walk(result, (), found)
    return found


def _walk(node: Any, path: Path, found: List[Tuple[Path, Any]]) -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            _walk(value, path + (str(key),), found)
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            _walk(value, path + (str(index),), found)
    else:
        found.append((path, node))


def leaf_name(path: Path) -> str:
    """The ONNX output name of a leaf: ``()`` -> output, ``("1", "0")`` -> output1.0, ``("boxes",)`` -> boxes."""
    if not path:
        return "output"
    joined = ".".join(path)
    return "output" + joined if path[0].isdigit() else joined


def leaf_names(result: Any) -> List[str]:
    """Default ONNX output names of every leaf of ``result``."""
    return [leaf_name(path) for path, _ in leaves(result)]


def is_flat(result: Any) -> bool:
    """True for a tensor or a flat tuple/list of tensors: what torch's exporter names without help."""
    if isinstance(result, (list, tuple)):
        return all(not isinstance(v, (list, tuple, Mapping)) for v in result)
    return not isinstance(result, Mapping)


def check_leaves_are_tensors(result: Any, is_tensor: Any, where: str) -> None:
    """EdgeError naming the first leaf that is not a tensor (None, a number, a string...)."""
    for path, leaf in leaves(result):
        if not is_tensor(leaf):
            raise EdgeError(f"output '{leaf_name(path)}' of the model is a {type(leaf).__name__}, not a tensor",
                            fix="make forward() return only tensors (tuples, lists and dicts of them are fine)",
                            where=where)


def select(names: Sequence[str], keep: Optional[Sequence[str]]) -> List[int]:
    """Indices of the leaves to export: all, or those named in ``keep`` (in the model's order)."""
    if not keep:
        return list(range(len(names)))
    unknown = [k for k in keep if k not in names]
    if unknown:
        raise EdgeError(f"--keep-outputs names '{unknown[0]}' but the model's outputs are {', '.join(names)}",
                        fix="pick names from that list", where="--keep-outputs")
    if len(set(keep)) != len(keep):
        raise EdgeError("--keep-outputs names an output twice", fix="list each output once", where="--keep-outputs")
    return [i for i, name in enumerate(names) if name in keep]


def final_names(default: Sequence[str], given: Optional[Sequence[str]]) -> List[str]:
    """The exported names: ``given`` (one per exported leaf, unique) or the defaults."""
    if not given:
        return list(default)
    if len(given) != len(default):
        listed = ", ".join(default)
        raise EdgeError(f"--output-names gives {len(given)} names but the model has {len(default)} outputs "
                        f"({listed})", fix=f"give {len(default)} comma-separated names, one per output in that order",
                        where="--output-names")
    if len(set(given)) != len(given) or any(not n for n in given):
        raise EdgeError("--output-names has an empty or repeated name", fix="give unique names",
                        where="--output-names")
    return list(given)
