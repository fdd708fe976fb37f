"""export/deepstream.py and ``python -m export deepstream``: the nvinfer config read back with configparser."""

from __future__ import annotations

import configparser
import copy
import importlib.util
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from tiny_models import colour_classifier_config, make_colour_classifier

import export.__main__ as export_main
from edge.config import PRESETS, EdgeConfig
from edge.errors import EdgeError
from edge.model import resolve_config
from edge.onnxfile import OnnxInfo, TensorSpec, read_onnx
from edge.zoo import resolve_model
from export.deepstream import engine_file_name, nvinfer_config, nvinfer_labels, nvinfer_normalisation, write_deepstream

PIXELS = (0.0, 128.0, 255.0)


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def colour_config(**preprocess: Any) -> Dict[str, Any]:
    data = colour_classifier_config()
    data["preprocess"].update(preprocess)
    return data


def model_and_config(tmp_path: Path, data: Dict[str, Any] = None, layout: str = "NCHW"):
    if data is None:
        info = read_onnx(resolve_model(None))
        return info, resolve_config(info)
    path = make_colour_classifier(tmp_path / "colour.onnx", layout=layout, config=data)
    info = read_onnx(path)
    return info, resolve_config(info)


def edge_value(config: EdgeConfig, pixel: float, channel: int) -> float:
    pre = config.preprocess
    return (pixel * pre.scale - pre.mean[channel]) / pre.std[channel]


CASES = [
    # id, edge config (None: the shipped face model), layout, color format, input order, dims, letterbox, type
    ("face_symmetric", None, "NCHW", "0", "0", "3;128;128", "1", "0"),
    ("imagenet_uniform_std_bgr", colour_config(color="BGR", mean=PRESETS["imagenet"]["mean"], std=0.226),
     "NCHW", "1", "0", "3;32;32", "0", "1"),
    ("colour_unit", colour_classifier_config(), "NCHW", "0", "0", "3;32;32", "0", "1"),
    ("colour_nhwc", colour_classifier_config("NHWC"), "NHWC", "0", "1", "3;32;32", "0", "1"),
]


@pytest.mark.parametrize("case, data, layout, color, order, dims, letterbox, network_type", CASES,
                         ids=[c[0] for c in CASES])
def test_nvinfer_config_matches_the_edge_config(tmp_path, case, data, layout, color, order, dims, letterbox,
                                                network_type):
    info, config = model_and_config(tmp_path, data, layout)
    prop = parse(nvinfer_config(config, info, onnx_path="model.onnx"))["property"]
    scale = float(prop["net-scale-factor"])
    offsets = [float(v) for v in prop["offsets"].split(";")]
    assert len(offsets) == 3
    for channel in range(3):
        for pixel in PIXELS:
            assert scale * (pixel - offsets[channel]) == pytest.approx(edge_value(config, pixel, channel), abs=1e-6)
    assert prop["model-color-format"] == color
    assert prop["network-input-order"] == order
    assert prop["infer-dims"] == dims
    assert prop["maintain-aspect-ratio"] == letterbox
    assert prop["symmetric-padding"] == letterbox
    assert prop["network-type"] == network_type
    assert prop["output-blob-names"] == ";".join(config.outputs)
    assert (prop["gie-unique-id"], prop["process-mode"], prop["batch-size"]) == ("1", "1", "1")
    assert prop["onnx-file"] == "model.onnx"
    assert prop["model-engine-file"] == "model.onnx_b1_gpu0_fp16.engine"
    assert prop["labelfile-path"] == "labels.txt"


def test_detector_thresholds_and_custom_parser_placeholders():
    info, config = model_and_config(Path("."))
    notices: List[str] = []
    text = nvinfer_config(config, info, onnx_path="face.onnx", report=notices.append)
    parsed = parse(text)
    assert parsed["property"]["num-detected-classes"] == "1"
    assert parsed["property"]["cluster-mode"] == "2"
    attrs = parsed["class-attrs-all"]
    assert float(attrs["pre-cluster-threshold"]) == config.decoder["score_threshold"]
    assert float(attrs["nms-iou-threshold"]) == config.decoder["nms"]["iou_threshold"]
    # The placeholders are comments, not keys nvinfer would try to load.
    assert "parse-bbox-func-name" not in parsed["property"] and "custom-lib-path" not in parsed["property"]
    assert "#parse-bbox-func-name=" in text and "#custom-lib-path=" in text and "CUSTOM PARSER NEEDED" in text
    assert len(notices) == 1 and "custom bbox parser" in notices[0]


def test_classifier_threshold_and_labels(tmp_path):
    data = colour_classifier_config()
    data["decoder"]["score_threshold"] = 0.25
    info, config = model_and_config(tmp_path, data)
    prop = parse(nvinfer_config(config, info, onnx_path="m.onnx"))["property"]
    assert float(prop["classifier-threshold"]) == 0.25
    assert "num-detected-classes" not in prop
    assert nvinfer_labels(config, info) == "red;green;blue\n"  # a classifier's labels: one line per output layer
    face_info, face = model_and_config(tmp_path)
    assert nvinfer_labels(face, face_info) == "face\n"  # a detector's: one class per line


def test_grey_input_uses_color_format_2():
    data = colour_classifier_config()
    data["input"]["shape"] = [1, 1, 32, 32]
    config = EdgeConfig.from_dict(data)
    info = OnnxInfo(Path("grey.onnx"), (TensorSpec("image", (1, 1, 32, 32), np.dtype("float32")),),
                    (TensorSpec("logits", (1, 3), np.dtype("float32")),), {}, 13)
    prop = parse(nvinfer_config(config, info, onnx_path="grey.onnx"))["property"]
    assert (prop["model-color-format"], prop["infer-dims"], prop["offsets"]) == ("2", "1;32;32", "0")


def test_per_channel_std_is_an_error_with_the_fix(tmp_path):
    info, config = model_and_config(tmp_path, colour_config(**{k: PRESETS["imagenet"][k] for k in ("mean", "std")}))
    with pytest.raises(EdgeError, match="bake normalisation into the model"):
        nvinfer_config(config, info, onnx_path="m.onnx")


def test_allow_approximate_std_uses_the_mean_std_and_warns(tmp_path):
    std = PRESETS["imagenet"]["std"]
    info, config = model_and_config(tmp_path, colour_config(mean=PRESETS["imagenet"]["mean"], std=std))
    warnings: List[str] = []
    text = nvinfer_config(config, info, onnx_path="m.onnx", allow_approximate_std=True, report=warnings.append)
    prop = parse(text)["property"]
    mean_std = sum(std) / 3
    assert float(prop["net-scale-factor"]) == pytest.approx(config.preprocess.scale / mean_std, rel=1e-9)
    worst = max(abs(s / mean_std - 1) for s in std)
    warning = [w for w in warnings if w.startswith("warning:")]
    assert len(warning) == 1 and f"{worst * 100:.2f}%" in warning[0]
    assert "APPROXIMATE" in text
    # The stated bound holds: nvinfer's value differs from edge's by at most `worst`, relatively.
    scale, offsets = float(prop["net-scale-factor"]), [float(v) for v in prop["offsets"].split(";")]
    for channel in range(3):
        for pixel in PIXELS:
            exact = edge_value(config, pixel, channel)
            assert abs(scale * (pixel - offsets[channel]) - exact) <= worst * abs(exact) + 1e-9


@pytest.mark.parametrize("kwargs, message", [
    ({"precision": "int8"}, "int8 needs a calibration table"),
    ({"batch_size": 4}, "batch dimension is fixed at 1"),
    ({"batch_size": 0}, "not positive"),
    ({"precision": "bf16"}, "unknown precision"),
])
def test_bad_requests_are_one_line_errors(tmp_path, kwargs, message):
    info, config = model_and_config(tmp_path, colour_classifier_config())
    with pytest.raises(EdgeError, match=message) as caught:
        nvinfer_config(config, info, onnx_path="m.onnx", **kwargs)
    assert "Fix:" in str(caught.value) and "\n" not in str(caught.value)


def test_int8_with_calibration_and_uint8_and_centre_crop(tmp_path):
    info, config = model_and_config(tmp_path, colour_classifier_config())
    prop = parse(nvinfer_config(config, info, onnx_path="m.onnx", precision="int8", calib_file="cal.txt"))["property"]
    assert (prop["network-mode"], prop["int8-calib-file"]) == ("1", "cal.txt")
    assert prop["model-engine-file"] == engine_file_name("m.onnx", 1, "int8") == "m.onnx_b1_gpu0_int8.engine"
    assert parse(nvinfer_config(config, info, onnx_path="m.onnx", precision="fp32"))["property"]["network-mode"] == "0"
    assert "int8-calib-file" not in parse(nvinfer_config(config, info, onnx_path="m.onnx"))["property"]
    uint8 = EdgeConfig.from_dict(dict(colour_classifier_config(), input=dict(colour_classifier_config()["input"],
                                                                             dtype="uint8")))
    with pytest.raises(EdgeError, match="uint8"):
        nvinfer_config(uint8, info, onnx_path="m.onnx")
    crop = EdgeConfig.from_dict(colour_config(resize="center_crop"))
    with pytest.raises(EdgeError, match="centre crop"):
        nvinfer_config(crop, info, onnx_path="m.onnx")


def test_dynamic_batch_model_takes_any_batch_size(tmp_path):
    import onnx

    data = copy.deepcopy(colour_classifier_config())
    data["input"]["shape"][0] = None
    path = make_colour_classifier(tmp_path / "dyn.onnx", config=data)
    model = onnx.load(str(path))
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(path))
    info = read_onnx(path)
    prop = parse(nvinfer_config(resolve_config(info), info, onnx_path="dyn.onnx", batch_size=4))["property"]
    assert (prop["batch-size"], prop["model-engine-file"]) == ("4", "dyn.onnx_b4_gpu0_fp16.engine")


def test_nvinfer_normalisation_exact_for_uniform_std():
    config = EdgeConfig.from_dict(colour_config(scale=1 / 255, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5]))
    scale, offsets, error = nvinfer_normalisation(config.preprocess, 3)
    assert (scale, error) == (pytest.approx(2 / 255), 0.0)
    assert offsets == pytest.approx([127.5] * 3)


def test_write_deepstream_paths_are_relative_to_the_config(tmp_path):
    info, config = model_and_config(tmp_path, colour_classifier_config())
    out = tmp_path / "ds" / "primary"
    engine = tmp_path / "engines" / "colour.engine"
    config_path, labels_path = write_deepstream(info.path, config, info, output_dir=out, engine=engine)
    assert config_path.name == "config_infer_primary_colour_nchw.txt"
    prop = parse(config_path.read_text(encoding="utf-8"))["property"]
    assert (out / prop["onnx-file"]).resolve() == info.path.resolve()
    assert (out / prop["model-engine-file"]).resolve() == engine.resolve()
    assert (out / prop["labelfile-path"]).resolve() == labels_path.resolve()
    assert labels_path.read_text(encoding="utf-8") == "red;green;blue\n"


def run_cli(monkeypatch, argv: List[str]) -> int:
    """export.__main__.main with this command registered and only commands whose modules exist."""
    names = tuple(dict.fromkeys(tuple(export_main.COMMANDS) + (argv[0],)))
    present = tuple(n for n in names if importlib.util.find_spec(f"export.commands.{n}") is not None)
    monkeypatch.setattr(export_main, "COMMANDS", present)
    return export_main.main(argv)


def test_cli_writes_the_files_and_prints_the_notice(tmp_path, monkeypatch, capsys):
    face = resolve_model(None)
    assert run_cli(monkeypatch, ["deepstream", str(face), "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert any(line.startswith("notice:") and "custom bbox parser" in line for line in out)
    config_path = tmp_path / "config_infer_primary_face_detection_short_range.txt"
    assert f"wrote {config_path}" in out
    prop = parse(config_path.read_text(encoding="utf-8"))["property"]
    assert (tmp_path / prop["onnx-file"]).resolve() == face.resolve()
    assert (tmp_path / "labels.txt").read_text(encoding="utf-8") == "face\n"


@pytest.mark.parametrize("extra, message", [
    (["--precision", "int8"], "--calib-file"),
    ([], "bake normalisation into the model"),
])
def test_cli_user_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, extra, message):
    path = make_colour_classifier(tmp_path / "c.onnx", config=colour_config(**{k: PRESETS["imagenet"][k]
                                                                               for k in ("mean", "std")}))
    if "--precision" in extra:
        extra += ["--allow-approximate-std"]
    assert run_cli(monkeypatch, ["deepstream", str(path), "--output-dir", str(tmp_path / "o")] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not (tmp_path / "o").exists()


def test_cli_approximate_std_and_resize_override(tmp_path, monkeypatch, capsys):
    path = make_colour_classifier(tmp_path / "c.onnx", config=colour_config(
        resize="center_crop", **{k: PRESETS["imagenet"][k] for k in ("mean", "std")}))
    argv = ["deepstream", str(path), "--output-dir", str(tmp_path), "--allow-approximate-std", "--resize", "letterbox"]
    assert run_cli(monkeypatch, argv) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("warning:") for line in out.splitlines()) == 1
    prop = parse((tmp_path / "config_infer_primary_colour_nchw.txt").read_text(encoding="utf-8"))["property"]
    assert prop["maintain-aspect-ratio"] == "1"
