"""edge-export engine: build into the cache, --output, --list, --clear, and one-line user errors.

Runs against the fake tensorrt and FakeCudaLayer (contract test: proves the CLI and cache plumbing).
"""

import hashlib
import json
import sys
from typing import Any

import onnx
import pytest
from fake_tensorrt import install_fake
from tiny_models import make_colour_classifier

import edge.cuda

if sys.version_info < (3, 8):  # edge-export runs on 3.8+; on JetPack 4.6 (3.6) engines are built on first use
    pytest.skip("edge-export needs Python 3.8", allow_module_level=True)

import export.__main__ as export_main  # noqa: E402
from export.commands.inspect import inspect_file  # noqa: E402

VERSIONS = ["8.2", "8.5", "10.3", "11.1"]


@pytest.fixture(autouse=True)
def engine_command(monkeypatch):
    if "engine" not in export_main.COMMANDS:  # until the lead registers it in export/__main__.py
        monkeypatch.setattr(export_main, "COMMANDS", tuple(export_main.COMMANDS) + ("engine",))


@pytest.fixture(params=VERSIONS)
def fake(request, monkeypatch, tmp_path):
    fake = install_fake(monkeypatch, request.param)
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda prefer=None, device=0: fake.cuda_layer())
    monkeypatch.setenv("EDGE_CACHE_DIR", str(tmp_path / "cache"))
    return fake


def engine(capsys: Any, *argv: Any):
    code = export_main.main(["engine", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


def builds(fake: Any) -> int:
    return len(fake.called("Builder.build_serialized_network"))


def test_build_then_cache_hit_then_output(fake, capsys, tmp_path):
    model = make_colour_classifier(tmp_path / "colour.onnx")
    code, out, err = engine(capsys, model, "--precision", "fp32", "--workspace", "256")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "no engine for this model yet"
    assert "building a fp32 TensorRT" in out and "built in" in out and "precision asked fp32, obtained fp32" in out
    plans = list((tmp_path / "cache" / "engines").glob("*.plan"))
    assert len(plans) == 1 and builds(fake) == 1
    assert list((tmp_path / "cache" / "engines").glob("timing-*.cache"))  # the timing cache shares the root

    code, out, _ = engine(capsys, model, "--precision", "fp32", "--output", tmp_path / "out" / "colour.plan")
    assert code == 0 and builds(fake) == 1 and "(cache hit;" in out
    plan = tmp_path / "out" / "colour.plan"
    assert plan.read_bytes() == plans[0].read_bytes()
    report = inspect_file(plan)  # the sidecar is in the format export inspect reads
    assert report["sidecar_status"] == "found, plan sha256 matches"
    assert report["edge_config"]["name"] == "colour_nchw"
    assert report["build"]["precision_obtained"] == "fp32"
    assert report["build"]["onnx_sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()


def test_force_rebuilds(fake, capsys, tmp_path):
    model = make_colour_classifier(tmp_path / "colour.onnx")
    engine(capsys, model)
    code, out, _ = engine(capsys, model, "--force")
    assert code == 0 and builds(fake) == 2 and "rebuilding the engine as asked (--force)" in out


def test_dynamic_model_with_batch_and_cache_dir(fake, capsys, tmp_path):
    path = make_colour_classifier(tmp_path / "dynamic.onnx", size=8)
    proto = onnx.load(str(path))
    for value in (proto.graph.input[0], proto.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(proto, str(path))
    code, out, err = engine(capsys, path)
    assert code == 2 and "input 'image' has dynamic shape ?x3x8x8" in err and "--batch MIN:OPT:MAX" in err
    assert len(err.strip().splitlines()) == 1 and builds(fake) == 0
    code, out, err = engine(capsys, path, "--batch", "1:4:8", "--cache-dir", tmp_path / "elsewhere")
    assert (code, err) == (0, "")
    sidecar = json.loads(next((tmp_path / "elsewhere").glob("*.json")).read_text())
    assert sidecar["provenance"]["profiles"] == {"image": [[1, 3, 8, 8], [4, 3, 8, 8], [8, 3, 8, 8]]}
    code, out, err = engine(capsys, path, "--shape", "image:1x3x8x8:2x3x8x8:2x3x8x8", "--cache-dir",
                            tmp_path / "elsewhere")
    assert code == 0 and "no engine for this model yet" in out  # another profile is another engine


def test_list_and_clear(fake, capsys, tmp_path):
    model = make_colour_classifier(tmp_path / "colour.onnx")
    code, out, _ = engine(capsys, "--list")
    assert code == 0 and out.startswith("no engines in")
    engine(capsys, model, "--precision", "fp32")
    code, out, _ = engine(capsys, "--list")
    assert code == 0 and out.startswith("1 engine in") and f"from {model.resolve()}" in out
    assert "fp32 asked, fp32 obtained" in out and "compute capability 8.7" in out
    code, out, _ = engine(capsys, "--list", "--json")
    rows = json.loads(out)
    assert len(rows) == 1 and rows[0]["provenance"]["precision_obtained"] == "fp32"
    code, out, _ = engine(capsys, "--clear", "--older-than", "1")
    assert code == 0 and out.startswith("removed 0 engines built more than 1 days ago")
    code, out, _ = engine(capsys, "--clear")
    assert code == 0 and out.startswith("removed 1 engine from")
    assert not list((tmp_path / "cache" / "engines").glob("*.plan"))


@pytest.mark.parametrize("argv, message", [
    ((), "no model given. Fix: edge-export engine MODEL.onnx"),
    (("{tmp}/model.plan",), "'.plan' is not an ONNX model"),
    (("{tmp}/missing.onnx",), "model file not found"),
    (("{model}", "--precision", "int8"), "int8 needs calibration images"),
    (("{model}", "--batch", "4:2:1"), "is not MIN:OPT:MAX"),
    (("{model}", "--shape", "nope"), "cannot read the shape profile"),
    (("{model}", "--shape", "other:1x3"), "shape given for 'other', which is not an input"),
    (("{model}", "--output", "{tmp}/x.json"), "--output is the plan's path"),
    (("{model}", "--precision", "int8", "--calib-images", "{tmp}/none"), "calibration image folder not found"),
])
def test_user_errors_are_one_line(fake, capsys, tmp_path, argv, message):
    model = make_colour_classifier(tmp_path / "colour.onnx")
    (tmp_path / "model.plan").write_bytes(b"x")
    code, out, err = engine(capsys, *[a.format(tmp=tmp_path, model=model) for a in argv])
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and builds(fake) == 0


def test_no_tensorrt_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    model = make_colour_classifier(tmp_path / "colour.onnx")
    code, _, err = engine(capsys, model)
    assert code == 2 and "needs the Python module 'tensorrt'" in err and "--system-site-packages" in err
    assert len(err.strip().splitlines()) == 1


def test_a_failed_build_is_one_line_and_leaves_no_plan(monkeypatch, capsys, tmp_path):
    fake = install_fake(monkeypatch, "10.3", out_of_memory=True)
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda prefer=None, device=0: fake.cuda_layer())
    model = make_colour_classifier(tmp_path / "colour.onnx")
    code, _, err = engine(capsys, model, "--cache-dir", tmp_path / "c")
    assert code == 2 and "ran out of memory" in err and "lower --workspace" in err
    assert not list((tmp_path / "c").glob("*.plan")) and not list((tmp_path / "c").glob("*.json"))


def test_parser_lists_every_flag():
    from export.__main__ import build_parser

    text = build_parser().parse_args(["engine", "--list"])
    assert text.list and text.model is None
    for flag in ("--precision", "--workspace", "--batch", "--shape", "--calib-images", "--dla-core", "--cuda",
                 "--cache-dir", "--output", "--force", "--list", "--clear"):
        assert build_parser()._subparsers._group_actions[0].choices["engine"].format_help().count(flag)


@pytest.mark.parametrize("version, outcome", [("8.5", "int8"), ("10.3", "int8"), ("11.1", "Q/DQ")])
def test_int8_with_calibration_images(monkeypatch, capsys, tmp_path, version, outcome):
    import cv2

    from edge.samples import load_sample

    fake = install_fake(monkeypatch, version)
    monkeypatch.setattr(edge.cuda, "open_cuda", lambda prefer=None, device=0: fake.cuda_layer())
    images = tmp_path / "images"
    images.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        cv2.imwrite(str(images / f"{name}.png"), load_sample(name))
    model = make_colour_classifier(tmp_path / "colour.onnx")
    code, out, err = engine(capsys, model, "--precision", "int8", "--calib-images", images, "--cache-dir", tmp_path)
    if outcome == "int8":
        assert (code, err) == (0, "") and "precision asked int8, obtained int8" in out
        assert fake.builds[-1].get("calibration_batches") and list((tmp_path / "calibration").iterdir())
    else:  # TensorRT 11 has no calibrator: int8 must come from a quantized ONNX
        assert code == 2 and outcome in err and len(err.strip().splitlines()) == 1
