"""DeepStream Gst-nvinfer config files from a model's edge config.

nvinfer normalises each 0..255 pixel as ``y = net-scale-factor * (x - offsets[c])``; the edge
config says ``value = (pixel * scale - mean[c]) / std[c]``, which is the same line when
``net-scale-factor = scale / std`` and ``offsets[c] = mean[c] / scale``. One scalar scale factor
cannot express a std that differs between channels: that is an error unless the caller accepts
the mean std as an approximation (its worst-case relative error is reported).

Keys and values follow gstnvinfer_property_parser.h (DeepStream 6/7): network-mode 0 FP32,
1 INT8, 2 FP16; network-type 0 detector, 1 classifier; model-color-format 0 RGB, 1 BGR, 2 GRAY;
network-input-order 0 NCHW, 1 NHWC; cluster-mode 2 NMS.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from edge.config import EdgeConfig, PreprocessSpec
from edge.errors import EdgeError
from edge.onnxfile import OnnxInfo

PRECISIONS = {"fp32": 0, "int8": 1, "fp16": 2}  # network-mode values
NETWORK_TYPES = {"detect": 0, "classify": 1}
COLOR_FORMATS = {"RGB": 0, "BGR": 1, "GRAY": 2}
INPUT_ORDERS = {"NCHW": 0, "NHWC": 1}
CLUSTER_NMS = 2
STD_FIX = "bake normalisation into the model (a Mul/Sub before the first layer, then std 1), " \
          "or pass --allow-approximate-std to use the mean std"

Report = Callable[[str], None]


def _number(value: float) -> str:
    """A float as nvinfer reads it: 12 significant digits, no exponent noise for round values."""
    return f"{value:.12g}"


def nvinfer_normalisation(pre: PreprocessSpec, channels: int, allow_approximate_std: bool = False,
                          where: str = "") -> Tuple[float, List[float], float]:
    """(net-scale-factor, offsets per channel, worst-case relative error) for the edge preprocessing.

    pre: the edge config's preprocessing (mean and std in the model's channel order).
    channels: 1 (grey) or 3.
    allow_approximate_std: use the mean std when the channels' std differ, instead of raising.
    The error is 0.0 when the mapping is exact; otherwise max over channels of |std_c / mean_std - 1|.
    """
    stds = list(pre.std[:channels])
    offsets = [m / pre.scale for m in pre.mean[:channels]]
    std = sum(stds) / len(stds)
    worst = max(abs(s / std - 1.0) for s in stds)
    if all(math.isclose(s, stds[0], rel_tol=1e-9) for s in stds):
        return pre.scale / stds[0], offsets, 0.0
    if not allow_approximate_std:
        shown = ", ".join(f"{s:g}" for s in stds)
        raise EdgeError(f"preprocess.std differs between channels ({shown}); nvinfer has one net-scale-factor "
                        f"for all channels", fix=STD_FIX, where=where or None)
    return pre.scale / std, offsets, worst


def engine_file_name(onnx_name: str, batch_size: int, precision: str, gpu_id: int = 0) -> str:
    """The engine name nvinfer gives an engine it builds from ``onnx_name``: ``model.onnx_b1_gpu0_fp16.engine``."""
    return f"{onnx_name}_b{batch_size}_gpu{gpu_id}_{precision}.engine"


def class_count(config: EdgeConfig, info: OnnxInfo) -> int:
    """Number of classes: the labels, else the last dimension of the scores output."""
    if config.labels:
        return len(config.labels)
    decoder = config.decoder
    output = decoder.get("scores_output") or decoder.get("output") or (config.outputs[0] if config.outputs else None)
    shapes = {o.name: o.shape for o in info.outputs}
    shape = shapes.get(output or "", ())
    if shape and isinstance(shape[-1], int):
        return int(shape[-1])
    raise EdgeError("cannot tell how many classes the model has (no labels, and the scores output's last "
                    "dimension is dynamic)", fix="pass --labels labels.txt (one class name per line)",
                    where=str(info.path))


def nvinfer_labels(config: EdgeConfig, info: OnnxInfo) -> str:
    """labels.txt as nvinfer reads it: a detector's classes one per line; a classifier's on one line, ';'-joined."""
    labels = list(config.labels) if config.labels else [str(i) for i in range(class_count(config, info))]
    if config.task == "classify":
        return ";".join(labels) + "\n"
    return "".join(label + "\n" for label in labels)


def _check_model(config: EdgeConfig, info: OnnxInfo, batch_size: int) -> None:
    where = str(info.path)
    if config.input.dtype == "uint8":
        raise EdgeError(f"input '{config.input.name}' is uint8, but nvinfer feeds the network normalised float "
                        "planes", fix="re-export the model with a float32 input (cast inside the graph)", where=where)
    batch = config.input.shape[0]
    if batch_size < 1:
        raise EdgeError(f"batch size {batch_size} is not positive", fix="pass --batch-size 1 or more",
                        where="--batch-size")
    if isinstance(batch, int) and batch != batch_size:
        raise EdgeError(f"the model's batch dimension is fixed at {batch}, so nvinfer cannot run batches of "
                        f"{batch_size}", fix=f"pass --batch-size {batch}, or re-export with a dynamic batch "
                        "(edge-export onnx MODEL --dynamic-batch)", where=where)
    if config.preprocess.resize == "center_crop":
        raise EdgeError("the model expects a centre crop, which nvinfer cannot do (it stretches or letterboxes)",
                        fix="crop upstream (nvvideoconvert src-crop), or pass --resize stretch or --resize letterbox "
                        "to accept the approximation", where=where)


def _preprocess_lines(config: EdgeConfig, allow_approximate_std: bool, report: Report, where: str) -> List[str]:
    pre, spec = config.preprocess, config.input
    channels = spec.channels
    scale, offsets, error = nvinfer_normalisation(pre, channels, allow_approximate_std, where)
    if error:
        report(f"warning: nvinfer has one net-scale-factor; the mean std {pre.scale / scale:.6g} instead of "
               f"{', '.join(f'{s:g}' for s in pre.std[:channels])} puts normalised values off by up to "
               f"{error * 100:.2f}% (worst channel)")
    width, height = spec.size_wh
    letterbox = pre.resize == "letterbox"
    lines = [
        "# edge preprocessing: value = (pixel * scale - mean) / std = net-scale-factor * (pixel - offsets)",
        f"net-scale-factor={_number(scale)}",
        f"offsets={';'.join(_number(o) for o in offsets)}",
        f"model-color-format={COLOR_FORMATS['GRAY' if channels == 1 else pre.color]}",
        f"infer-dims={channels};{height};{width}",
        f"network-input-order={INPUT_ORDERS[spec.layout]}",
        f"maintain-aspect-ratio={int(letterbox)}",
        f"symmetric-padding={int(letterbox)}",
    ]
    if error:
        lines.insert(1, f"# APPROXIMATE: per-channel std {list(pre.std)} replaced by their mean (worst-case relative "
                        f"error {error * 100:.2f}%)")
    if letterbox and pre.pad_value:
        lines.append(f"# note: nvinfer pads with black; the edge config pads with {pre.pad_value}")
    return lines


def _detector_lines(config: EdgeConfig, info: OnnxInfo, report: Report) -> Tuple[List[str], List[str]]:
    """([property] lines, [class-attrs-all] lines) for a detector."""
    decoder = config.decoder
    nms = decoder.get("nms") or {}
    kind = decoder.get("type", "?")
    report(f"notice: nvinfer has no built-in parser for '{kind}' outputs; build a custom bbox parser and set "
           "parse-bbox-func-name/custom-lib-path in the config (placeholders are commented out)")
    prop = [
        f"num-detected-classes={class_count(config, info)}",
        f"cluster-mode={CLUSTER_NMS}",
        f"# CUSTOM PARSER NEEDED: nvinfer has no built-in parser for '{kind}' (BlazeFace-style SSD anchor) outputs.",
        "# Write an NvDsInferParseCustomFunc that decodes the anchors (see the decoder section of the edge",
        "# config, or edge/decoders/ssd.py), build it as a shared library, then uncomment and fill in:",
        f"#parse-bbox-func-name=NvDsInferParseCustom_{_safe(config.name or info.path.stem)}",
        "#custom-lib-path=/path/to/libnvdsinfer_custom_parser.so",
        "# Alternative: network-type=100 and output-tensor-meta=1 attach the raw outputs to the frame meta",
        "# for a pad probe to decode with edge's decoder.",
    ]
    if nms.get("method", "greedy") != "greedy":
        prop.append(f"# note: the edge decoder uses '{nms.get('method')}' NMS; nvinfer's cluster-mode=2 is greedy NMS")
    attrs = [
        f"pre-cluster-threshold={_number(float(decoder.get('score_threshold', 0.5)))}",
        f"nms-iou-threshold={_number(float(nms.get('iou_threshold', 0.5)))}",
        f"topk={int(nms.get('max_detections', 100))}",
    ]
    return prop, attrs


def _classifier_lines(config: EdgeConfig, report: Report) -> List[str]:
    decoder = config.decoder
    lines = [f"classifier-threshold={_number(float(decoder.get('score_threshold', 0.0)))}"]
    activation = decoder.get("activation", "softmax")
    if activation != "none":
        report(f"notice: edge applies {activation} to this classifier's output but nvinfer reads it as "
               "probabilities; add the activation to the graph or set parse-classifier-func-name")
        lines.append(f"# note: edge applies {activation} to the output; nvinfer's classifier parser reads it as "
                     "probabilities, so classifier-threshold compares raw values unless the graph ends in "
                     f"{activation} (or set parse-classifier-func-name)")
    return lines


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "model"


def nvinfer_config(config: EdgeConfig, info: OnnxInfo, *, onnx_path: str, labelfile_path: str = "labels.txt",
                   engine_path: Optional[str] = None, precision: str = "fp16", batch_size: int = 1,
                   calib_file: Optional[str] = None, allow_approximate_std: bool = False,
                   report: Optional[Report] = None) -> str:
    """The Gst-nvinfer config file (INI text) for a model.

    onnx_path, labelfile_path, engine_path, calib_file: written as given; nvinfer resolves relative
    paths from the config file's folder. engine_path None: beside the ONNX, named as nvinfer names it.
    precision: fp32, fp16 or int8 (int8 needs calib_file). batch_size: frames per inference.
    report: receives one-line warnings and notices (default: dropped).
    """
    report = report or (lambda line: None)
    where = str(info.path)
    if precision not in PRECISIONS:
        raise EdgeError(f"unknown precision '{precision}'", fix="use fp32, fp16 or int8", where="--precision")
    if precision == "int8" and not calib_file:
        raise EdgeError("int8 needs a calibration table, and none was given",
                        fix="pass --calib-file CALIB.txt (a TensorRT INT8 calibration cache), or use --precision fp16",
                        where="--precision int8")
    _check_model(config, info, batch_size)
    if engine_path is None:
        engine_path = engine_file_name(onnx_path, batch_size, precision)
    name = config.name or info.path.stem
    lines = [
        f"# Gst-nvinfer config for {name}, written by `edge-export deepstream` from its edge config.",
        "# Relative paths are resolved from this file's folder. Regenerate instead of editing by hand.",
        "[property]",
        "gpu-id=0",
        f"onnx-file={onnx_path}",
        f"model-engine-file={engine_path}",
        f"labelfile-path={labelfile_path}",
        f"batch-size={batch_size}",
        f"network-mode={PRECISIONS[precision]}",
    ]
    if calib_file and precision == "int8":
        lines.append(f"int8-calib-file={calib_file}")
    lines += [
        f"network-type={NETWORK_TYPES[config.task]}",
        f"output-blob-names={';'.join(config.outputs)}",
        "gie-unique-id=1",
        "process-mode=1",
    ]
    lines += _preprocess_lines(config, allow_approximate_std, report, where)
    attrs: List[str] = []
    if config.task == "detect":
        detector, attrs = _detector_lines(config, info, report)
        lines += detector
    else:
        lines += _classifier_lines(config, report)
    if attrs:
        lines += ["", "[class-attrs-all]"] + attrs
    return "\n".join(lines) + "\n"


def _relative(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(str(path.resolve()), str(start.resolve())).replace(os.sep, "/")
    except ValueError:  # another drive on Windows: no relative path exists
        return str(path.resolve())


def write_deepstream(model_path: Path, config: EdgeConfig, info: OnnxInfo, *, output_dir: Path,
                     precision: str = "fp16", batch_size: int = 1, engine: Optional[Path] = None,
                     calib_file: Optional[Path] = None, allow_approximate_std: bool = False,
                     report: Optional[Report] = None) -> List[Path]:
    """Write ``config_infer_primary_<name>.txt`` and ``labels.txt`` into ``output_dir``; returns both paths."""
    if calib_file is not None and not Path(calib_file).is_file():
        raise EdgeError("calibration file not found", fix="check the path", where=str(calib_file))
    output_dir = Path(output_dir)
    onnx_rel = _relative(Path(model_path), output_dir)
    text = nvinfer_config(
        config, info, onnx_path=onnx_rel, labelfile_path="labels.txt",
        engine_path=None if engine is None else _relative(Path(engine), output_dir), precision=precision,
        batch_size=batch_size, calib_file=None if calib_file is None else _relative(Path(calib_file), output_dir),
        allow_approximate_std=allow_approximate_std, report=report)
    labels = nvinfer_labels(config, info)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeError(f"cannot create the output folder ({exc.strerror})", fix="choose another --output-dir",
                        where=str(output_dir)) from None
    config_path = output_dir / f"config_infer_primary_{_safe(config.name or Path(model_path).stem)}.txt"
    labels_path = output_dir / "labels.txt"
    config_path.write_text(text, encoding="utf-8")
    labels_path.write_text(labels, encoding="utf-8")
    return [config_path, labels_path]
