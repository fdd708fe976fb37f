"""Tiny ONNX models made by code, for tests: small, exact, and with known answers.

``make_colour_classifier`` builds a classifier whose logits are the mean of each colour
channel times a gain, so a pure red, green or blue image is classified as that colour.
Run ``python tests/tiny_models.py OUT_DIR`` to write them to disk for a look with Netron.
"""

import sys
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.config import METADATA_KEY, EdgeConfig

COLOUR_LABELS = ["red", "green", "blue"]


def colour_classifier_config(layout: str = "NCHW", size: int = 32) -> Dict[str, Any]:
    """The edge config of the colour classifier (model channels in RGB order)."""
    shape = [1, 3, size, size] if layout == "NCHW" else [1, size, size, 3]
    return {
        "edge_config": 1, "name": f"colour_{layout.lower()}", "task": "classify",
        "input": {"name": "image", "shape": shape, "layout": layout, "dtype": "float32"},
        "preprocess": {"color": "RGB", "resize": "stretch", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "outputs": ["logits"], "labels": COLOUR_LABELS,
        "decoder": {"type": "classify", "activation": "softmax", "top_k": 3},
    }


def make_colour_classifier(path: Path, layout: str = "NCHW", size: int = 32, embed: bool = True,
                           config: Optional[Dict[str, Any]] = None, opset: int = 13) -> Path:
    """Write the colour classifier: GlobalAveragePool -> Flatten -> Gemm (logits = 10 * mean RGB)."""
    shape = [1, 3, size, size] if layout == "NCHW" else [1, size, size, 3]
    nodes = []
    pooled_input = "image"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]))
        pooled_input = "nchw"
    nodes += [
        helper.make_node("GlobalAveragePool", [pooled_input], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "weight", "bias"], ["logits"]),
    ]
    weight = numpy_helper.from_array((np.eye(3) * 10).astype(np.float32), "weight")
    bias = numpy_helper.from_array(np.zeros(3, np.float32), "bias")
    graph = helper.make_graph(
        nodes, "colour_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="edge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    if embed:
        data = config or colour_classifier_config(layout, size)
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, EdgeConfig.from_dict(data).to_json()
    entry = model.metadata_props.add()
    entry.key, entry.value = "author", "edge tests"  # a foreign key that must survive config writes
    onnx.save(model, str(path))
    return Path(path)


BAD_FILE_KINDS = ("missing", "folder", "empty", "truncated", "text", "lfs-pointer", "html", "pytorch", "graphless",
                  "no-nodes")


def write_bad_model(folder: Path, kind: str, good: Path) -> Path:
    """A model path that is wrong in one way (one of BAD_FILE_KINDS), made from the good model ``good``: nothing
    there, a folder, an empty file, the first half of ``good``, a CSV, a Git LFS pointer, an HTML error page, a
    PyTorch zip (as ``bad.pt``), a graph without nodes or outputs, or ``good`` with its nodes removed."""
    path = folder / ("bad.pt" if kind == "pytorch" else "bad.onnx")
    if kind == "missing":
        pass
    elif kind == "folder":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("name,score\nface,0.9\n", encoding="utf-8")
    elif kind == "lfs-pointer":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 426652\n", encoding="utf-8")
    elif kind == "html":
        path.write_text("<!DOCTYPE html><html><body>404 Not Found</body></html>\n", encoding="utf-8")
    elif kind == "pytorch":
        path.write_bytes(b"PK\x03\x04 a torch zip")
    elif kind == "graphless":  # valid protobuf, but no nodes and no outputs
        onnx.save(helper.make_model(helper.make_graph([], "g", [], [])), str(path))
    elif kind == "no-nodes":
        model = onnx.load(str(good))
        del model.graph.node[:]
        onnx.save(model, str(path))
    else:
        raise ValueError(f"unknown bad-file kind {kind!r}; known: {', '.join(BAD_FILE_KINDS)}")
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    for layout in ("NCHW", "NHWC"):
        print(make_colour_classifier(out / f"colour_{layout.lower()}.onnx", layout))
