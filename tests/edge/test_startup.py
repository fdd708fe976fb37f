"""Start-up (issue 14 item 4): a one-image camera run reads the model without the ``onnx`` package.

``edge.onnxfile.read_onnx`` walks the protobuf wire format itself (:mod:`edge.onnxwire`); these tests hold
it equal to the ``onnx``-parsed :func:`edge.onnxfile.info_from_model` on every zoo model and on models made
to exercise the format (dynamic dims, many dtypes, subgraphs, external data, repeated keys), and hold its
errors equal to :func:`edge.onnxfile.load_onnx`'s for missing, empty, truncated and corrupt files.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_models import write_bad_model

from edge.errors import EdgeError
from edge.onnxfile import elem_dtype, info_from_model, load_onnx, onnx_np_dtype, read_onnx
from edge.onnxwire import parse_model

ROOT = Path(__file__).resolve().parents[2]
ZOO = sorted(ROOT.glob("models/*/*.onnx"))

# Runs the camera app in this interpreter ("wire": as shipped; "onnx": with the onnx-parsed metadata that
# read_onnx returned before), then names the heavy packages it imported.
CAMERA = textwrap.dedent("""
    import runpy, sys
    mode, sys.argv = sys.argv[1], ["edge.camera"] + sys.argv[2:]
    if mode == "onnx":
        import edge.backends.base, edge.model, edge.onnxfile as onnxfile
        def read_onnx(path):
            return onnxfile.info_from_model(onnxfile.load_onnx(path), path)
        edge.model.read_onnx = edge.backends.base.read_onnx = read_onnx
    code = 0
    try:
        runpy.run_module("edge.camera", run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    heavy = [name for name in ("onnx", "google.protobuf", "ml_dtypes") if name in sys.modules]
    sys.stderr.write("heavy: " + ",".join(heavy) + "\\n")
    kinds = ("ssd", "classify", "yolo", "boxes", "segment", "landmarks", "embed")
    sys.stderr.write("decoders: " + ",".join(k for k in kinds if "edge.decoders." + k in sys.modules) + "\\n")
    sys.exit(code)
""")


def run_camera(mode: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("DISPLAY", None)
    return subprocess.run([sys.executable, "-c", CAMERA, mode, *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120, env=env, cwd=str(ROOT))


def imported(stderr: str, what: str) -> list:
    """The names the CAMERA script listed after ``what: ``."""
    line = [entry for entry in stderr.splitlines() if entry.startswith(what + ": ")][-1]
    return [name for name in line[len(what) + 2:].split(",") if name]


@pytest.mark.parametrize("model, image, decoder", [
    ("face_detection_short_range", "astronaut.jpg", "ssd"),
    ("digits", "coffee.jpg", "classify"),
    ("selfie_segmentation", "astronaut.jpg", "segment"),
])
def test_one_image_run_imports_no_onnx_and_prints_the_same_line(model, image, decoder):
    args = ["--model", model, "--source", str(ROOT / "edge" / "data" / "samples" / image), "--headless",
            "--output", "-", "--quiet"]
    fast, before = run_camera("wire", *args), run_camera("onnx", *args)
    assert fast.returncode == 0 and before.returncode == 0, fast.stderr + before.stderr
    assert imported(fast.stderr, "heavy") == []
    assert "onnx" in imported(before.stderr, "heavy")  # the check can fail: the old path does import it
    if sys.version_info >= (3, 7):  # Python 3.6 has no module __getattr__: edge.decoders imports them all
        assert imported(fast.stderr, "decoders") == [decoder]  # the model's own decoder module, no other
    records = [json.loads(done.stdout.strip().splitlines()[-1]) for done in (fast, before)]
    assert records[0]["result"] == records[1]["result"]
    assert records[0]["frame"] == 0 and records[0]["result"]["task"]


def test_listing_the_zoo_imports_no_onnx():
    script = "import sys, edge.zoo; entries = edge.zoo.list_models(); print(len(entries), 'onnx' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, cwd=str(ROOT), env=env)
    assert done.returncode == 0, done.stderr
    count, imported = done.stdout.split()
    assert int(count) == len(ZOO) and imported == "False"


# -- the wire reader equals onnx's parse ------------------------------------------------------------


@pytest.mark.parametrize("path", ZOO, ids=[p.stem for p in ZOO])
def test_zoo_metadata_without_onnx_equals_onnx(path):
    info = read_onnx(path)
    assert info == info_from_model(load_onnx(path), path)
    assert info.embedded_config() is not None and info.inputs and info.outputs


def varied_model(path: Path, external: bool = False) -> Path:
    """A model that exercises the format: dims of every kind, several dtypes, an initializer listed as an input,
    a Constant with a tensor attribute, an If with subgraphs, two opset domains and a repeated metadata key."""
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["y_branch"])], "branch", [],
                               [helper.make_tensor_value_info("y_branch", TensorProto.FLOAT, None)])
    scale = numpy_helper.from_array(np.full((4,), 2.0, np.float32), "scale")
    nodes = [
        helper.make_node("Constant", [], ["offset"], value=numpy_helper.from_array(np.ones(4, np.float32), "c")),
        helper.make_node("Mul", ["x", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "offset"], ["shifted"]),
        helper.make_node("Cast", ["flag"], ["flag_f"], to=TensorProto.FLOAT),
        helper.make_node("If", ["flag"], ["chosen"], then_branch=branch, else_branch=branch),
        helper.make_node("Identity", ["ids"], ["ids_out"]),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", None, 4]),
        helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        helper.make_tensor_value_info("ids", TensorProto.INT64, [-1, "", 3]),
        helper.make_tensor_value_info("pixels", TensorProto.UINT8, [1, 8, 8, 3]),
        helper.make_tensor_value_info("scale", TensorProto.FLOAT, [4]),  # an initializer, listed as an input
    ]
    outputs = [helper.make_tensor_value_info(name, kind, None) for name, kind in
               (("shifted", TensorProto.FLOAT), ("flag_f", TensorProto.FLOAT), ("chosen", TensorProto.FLOAT),
                ("ids_out", TensorProto.INT64))]
    graph = helper.make_graph(nodes, "varied", inputs, outputs, initializer=[scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3),
                                                    helper.make_opsetid("com.example", 99)])
    for key, value in (("edge_config", "{}"), ("author", "tests ü"), ("edge_config", '{"task": "detect"}')):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    if external:
        onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    else:
        onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external-data"])
def test_varied_model_without_onnx_equals_onnx(tmp_path, external):
    path = varied_model(tmp_path / "varied.onnx", external)
    info = read_onnx(path)
    assert info == info_from_model(load_onnx(path), path)
    assert [i.name for i in info.inputs] == ["x", "flag", "ids", "pixels"]
    assert info.inputs[0].shape == ("batch", None, 4) and info.inputs[2].shape == (-1, None, 3)
    assert [i.dtype for i in info.inputs] == [np.float32, np.bool_, np.int64, np.uint8]
    assert info.opset == 17 and info.metadata["edge_config"] == '{"task": "detect"}'
    assert info.operators == ("Add", "Cast", "Constant", "Identity", "If", "Mul")


def test_merged_and_oneof_fields_follow_protobuf():
    # A singular message given twice is merged; a scalar given twice keeps the last value; the last oneof
    # member wins; a known field number with an unexpected wire type is an unknown field.
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n", 3])
    value.type.tensor_type.shape.dim[1].dim_value = 5  # dim_param then dim_value: the oneof keeps 5
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [value],
                                                [helper.make_tensor_value_info("y", TensorProto.INT8, [2])]))
    data = model.SerializeToString()
    extra_graph = helper.make_graph([helper.make_node("Relu", ["x"], ["z"])], "", [], []).SerializeToString()
    odd_wire = bytes([7 << 3 | 0, 1])  # field 7 (graph) as a varint: protobuf keeps it as an unknown field
    data += bytes([7 << 3 | 2, len(extra_graph)]) + extra_graph + odd_wire
    parsed, reference = parse_model(data), onnx.ModelProto.FromString(data)
    assert parsed.operators == tuple(sorted({n.op_type for n in reference.graph.node})) == ("Identity", "Relu")
    assert parsed.node_count == len(reference.graph.node) == 2
    assert parsed.inputs == (("x", (1, 5, 3), TensorProto.FLOAT),)
    assert parsed.outputs == (("y", (2,), TensorProto.INT8),)


@pytest.mark.parametrize("elem_type", range(1, 17))
def test_element_types_match_onnx(elem_type):
    assert elem_dtype(elem_type) == onnx_np_dtype(elem_type)


# -- errors: the same one line as load_onnx ---------------------------------------------------------


def outcome(reader, path: Path):
    """('ok', info) or ('error', (where, what up to its detail in parentheses, fix)) of a reader on ``path``."""
    try:
        info = reader(path)
    except EdgeError as exc:
        assert "\n" not in str(exc) and "Fix:" in str(exc)
        return "error", (exc.where, exc.what.split(" (")[0], exc.fix)
    return "ok", info if reader is read_onnx else info_from_model(info, path)


def bad_file(tmp_path: Path, kind: str, good: Path) -> Path:
    """tiny_models.write_bad_model's kinds, and an external-data model whose weights file is gone."""
    if kind != "missing-external-data":
        return write_bad_model(tmp_path, kind, good)
    path = varied_model(tmp_path / "bad.onnx", external=True)
    (tmp_path / "weights.bin").unlink()
    return path


@pytest.mark.parametrize("kind, needle", [
    ("missing", "model file not found"),
    ("folder", "model path is not a file"),
    ("empty", "model file is empty"),
    ("text", "not a readable ONNX model"),
    ("lfs-pointer", "not a readable ONNX model"),
    ("html", "not a readable ONNX model"),
    ("pytorch", "this is a PyTorch file"),
    ("graphless", "ONNX file has an empty graph"),
    ("no-nodes", "ONNX file has an empty graph"),
    ("missing-external-data", "are in a separate file, 'weights.bin'"),
])
def test_bad_files_give_load_onnx_s_one_line_error(tmp_path, face_model_path, kind, needle):
    path = bad_file(tmp_path, kind, face_model_path)
    fast, reference = outcome(read_onnx, path), outcome(load_onnx, path)
    assert fast[0] == "error" and fast == reference
    assert needle in fast[1][1]


@pytest.mark.parametrize("cut", [1, 2, 3, 10, 100, 1000, 1 / 3, 1 / 2, -1000, -100, -10, -1])
@pytest.mark.parametrize("model", ["face", "colour"])
def test_every_truncation_gives_what_onnx_gives(tmp_path, face_model_path, colour_model_path, model, cut):
    data = (face_model_path if model == "face" else colour_model_path).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:int(len(data) * cut) if isinstance(cut, float) else cut])
    assert outcome(read_onnx, path) == outcome(load_onnx, path)


@pytest.mark.parametrize("seed", range(12))
def test_random_bytes_are_one_line_errors(tmp_path, seed):
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(seed).integers(0, 256, 64 + 97 * seed, dtype=np.uint8).tobytes())
    with pytest.raises(EdgeError) as error:
        read_onnx(path)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{path} | ")


# -- the benchmark (edge-bench startup) -------------------------------------------------------------

IMPORTTIME = """import time: self [us] | cumulative | imported package
import time:       120 |        120 |   _io
import time:      2000 |       2500 | numpy
import time:       300 |        300 |     onnx.helper
import time:      1000 |       1300 |   onnx
import time:       700 |        700 | edge.sinks.base
import time:       200 |        900 | edge.sinks
some other line on stderr
"""


def test_importtime_extras_are_grouped_by_package():
    from benchmarks.startup import extra_imports, median_importtime, parse_importtime

    camera = parse_importtime(IMPORTTIME)
    assert camera == {"_io": 120, "numpy": 2000, "onnx.helper": 300, "onnx": 1000, "edge.sinks.base": 700,
                      "edge.sinks": 200}
    assert median_importtime([camera, {"_io": 100}, {"_io": 200, "numpy": 1000}])["_io"] == 120
    assert median_importtime([camera, {"_io": 100}, {"_io": 200, "numpy": 1000}])["numpy"] == 1000
    rows = extra_imports(camera, {"_io": 100, "numpy": 1900})
    assert rows == [{"package": "onnx", "self_ms": 1.3, "modules": 2},
                    {"package": "edge.sinks", "self_ms": 0.9, "modules": 2}]


def test_startup_benchmark_runs_both_and_writes_json(tmp_path):
    out = tmp_path / "startup.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "benchmarks", "startup", "--runs", "2", "--top", "5",
                           "--json", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=300, cwd=str(ROOT), env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    timing = result["timing"]
    assert timing["camera"]["n"] == timing["bare"]["n"] == 2
    assert timing["extra_ms"] == pytest.approx(timing["camera"]["p50_ms"] - timing["bare"]["p50_ms"])
    assert result["imports"]["onnx_imported"] is False and len(result["imports"]["extra"]) <= 5
    assert result["imports"]["runs"] == 3
    assert result["commands"]["camera"][1:3] == ["-m", "edge.camera"]
    assert "camera - bare:" in done.stdout and "target" in done.stdout


def test_startup_benchmark_refuses_a_missing_image(tmp_path):
    from benchmarks.startup import main

    assert main(["--image", str(tmp_path / "none.jpg"), "--runs", "2"]) == 2
