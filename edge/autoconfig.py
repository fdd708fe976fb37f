"""Edge configs derived from other tools' metadata, so that their exports run with no flags.

Ultralytics' ONNX exporter writes ``metadata_props``: ``names`` (a Python dict repr,
``"{0: 'person', ...}"``), ``imgsz`` (``"[640, 640]"``, height then width), ``task``, ``stride``,
``batch``, ``channels``, ``end2end`` (``"True"`` for YOLOv10 / YOLO26 one-to-one heads) and ``args``
(a dict repr holding ``'nms': True`` for ``nms=True`` exports). From them :func:`ultralytics_config`
builds what Ultralytics' own predictor does:

- ``detect``: letterbox (centred, pad value 114), RGB, ``pixel / 255``, NCHW, labels from ``names``;
  decoder ``yolo`` (anchor-free (1, 4+nc, N) head, Ultralytics' predict defaults: score > 0.25,
  class-aware NMS at IoU 0.7, 300 detections), or ``boxes`` for heads that already ran NMS
  (``nms=True`` exports and end-to-end models: (1, K, 6) x1 y1 x2 y2 score class).
- RT-DETR (``head`` ``'RTDETRDecoder'``, task ``detect``): the exported head already picked its top
  300 (box, class) pairs: one (1, 300, 6) output, cx cy w h normalised to the input, score, class.
  Ultralytics' RT-DETR predictor stretches the image to the input size (no letterbox) and keeps
  rows scoring > 0.25 with no NMS: decoder ``boxes`` (cxcywh, normalized, nms none).
- ``classify``: centre crop, RGB, ``pixel / 255``; decoder ``classify`` with activation ``none``
  (the exported graph already ends in a softmax).
- ``segment`` (YOLOv8/11-seg): preprocessing as ``detect``; task ``segment``, decoder ``yolo`` with
  ``masks`` (``output0`` (1, 4+nc+32, N) and the prototypes ``output1`` (1, 32, H/4, W/4)).
- ``pose`` (YOLOv8/11-pose): preprocessing as ``detect``; task ``keypoints``, decoder ``yolo`` with the
  metadata's ``kpt_shape`` (and the ``coco17`` skeleton for 17 keypoints).
- ``obb``, and segment/pose heads that already ran NMS (``nms=True``, end-to-end): not decoded yet: a
  one-line EdgeError, unless the user's own config supplies a decoder.

YOLOv5's own exporter (``python export.py --include onnx`` in ultralytics/yolov5) writes only ``stride``
and ``names``; such a file with one (1, N, 5+nc) output gets the same preprocessing and the ``yolo``
decoder's objectness layout with YOLOv5's predict defaults (score > 0.25, IoU 0.45, 1000 detections).

The metadata must agree with the graph: a fixed input whose size or channel count differs from
``imgsz`` / ``channels`` is an error. A dynamic export (``dynamic=True``) runs at ``imgsz``, each side a
positive multiple of ``stride`` and at most 8192 (:func:`check_input_size` holds a user's input.shape to
the same rule).

Literal metadata is parsed with :func:`ast.literal_eval` (no code runs). The derived config is the
lowest layer: an embedded edge config replaces it, and sidecars, ``--config`` and flags override it.
"""

import ast
import copy
from typing import Any, Collection, Dict, List, Optional

from edge.config import PRESETS
from edge.errors import EdgeError
from edge.onnxfile import OnnxInfo

ULTRALYTICS_KEYS = ("names", "task", "imgsz")
UNSUPPORTED_TASKS = ("obb",)
TASK_FOR = {"detect": "detect", "segment": "segment", "pose": "keypoints"}  # Ultralytics task -> edge task
PAD_VALUE = 114  # Ultralytics' LetterBox fill (114, 114, 114)
SCORE_THRESHOLD = 0.25  # Ultralytics' predict defaults: conf 0.25, iou 0.7, max_det 300
IOU_THRESHOLD = 0.7
MAX_DETECTIONS = 300
MAX_LITERAL_CHARS = 1 << 20
MAX_SIDE = 8192  # pixels: a larger imgsz is a corrupt file, not a model to allocate for
RTDETR_HEAD = "RTDETRDecoder"
FIX_EXPORT = ("re-export the model with Ultralytics (yolo export model=best.pt format=onnx), or give an edge config "
              "(--config edge.json) that describes it")


YOLOV5_IOU_THRESHOLD = 0.45  # yolov5 detect.py defaults: conf 0.25, iou 0.45, max_det 1000
YOLOV5_MAX_DETECTIONS = 1000


def model_config(info: OnnxInfo) -> Optional[Dict[str, Any]]:
    """The config a model file carries: its embedded edge config, else one derived from known metadata."""
    embedded = info.embedded_config()
    if embedded is not None:
        return embedded
    return ultralytics_config(info)


def derived_from(metadata: Dict[str, str]) -> Optional[str]:
    """The tool whose metadata :func:`ultralytics_config` reads ("Ultralytics", "YOLOv5"), or None."""
    if is_yolov5(metadata):
        return "YOLOv5"
    return "Ultralytics" if is_ultralytics(metadata) else None


def is_yolov5(metadata: Dict[str, str]) -> bool:
    """Whether ``metadata`` looks like YOLOv5's exporter wrote it (stride and names, nothing of 8.x)."""
    return "stride" in metadata and "names" in metadata and not any(k in metadata for k in ULTRALYTICS_KEYS[1:])


def yolov5_config(info: OnnxInfo, given: Collection[str] = ()) -> Dict[str, Any]:
    """A (partial) edge config for a YOLOv5 export (objectness head (1, N, 5+nc)); EdgeError if the shapes disagree."""
    where = str(info.path)
    data: Dict[str, Any] = {"edge_config": 1, "name": info.path.stem, "task": "detect",
                            "preprocess": _preprocess("letterbox")}
    output = info.outputs[0].name if info.outputs else "output0"
    data["decoder"] = {"type": "yolo", "output": output, "layout": "objectness", "score_threshold": SCORE_THRESHOLD,
                       "nms": {"class_agnostic": False, "iou_threshold": YOLOV5_IOU_THRESHOLD,
                               "max_detections": YOLOV5_MAX_DETECTIONS}}
    if "labels" in given:
        return data
    data["labels"] = labels = parse_names(info.metadata["names"], where)
    shape = list(info.outputs[0].shape) if len(info.outputs) == 1 else []
    fits = len(shape) == 3 and shape[2] in (5 + len(labels), None)
    if "decoder" not in given and not fits:
        found = ", ".join(f"{o.name} {list(o.shape)}" for o in info.outputs) or "none"
        raise EdgeError(f"the YOLOv5 metadata lists {len(labels)} classes (names) but the model's outputs are "
                        f"{found}, not one (1, N, 5 + {len(labels)}) head",
                        fix="re-export with yolov5's export.py --include onnx (no --nms), or give an edge config "
                            "(--config edge.json) that describes it", where=where)
    return data


def is_ultralytics(metadata: Dict[str, str]) -> bool:
    """Whether ``metadata`` (ONNX metadata_props) looks like an Ultralytics export."""
    return all(key in metadata for key in ULTRALYTICS_KEYS)


def ultralytics_config(info: OnnxInfo, given: Collection[str] = ()) -> Optional[Dict[str, Any]]:
    """A (partial) edge config from Ultralytics metadata, or None when the file is not an Ultralytics export.

    given: top-level config fields the user supplies (sidecar, --config, flags): the derived decoder is
    not required (nor checked against the labels) when they replace it.
    """
    meta = info.metadata
    if is_yolov5(meta):
        return yolov5_config(info, given)
    if not is_ultralytics(meta):
        return None
    where = str(info.path)
    task = meta["task"].strip()
    labels = parse_names(meta["names"], where) if "labels" not in given else None
    height, width = _imgsz(meta["imgsz"], where)
    channels = _literal(meta.get("channels", "3"), "channels", where)
    if channels not in (1, 3):
        raise EdgeError(f"Ultralytics metadata 'channels' is {channels!r}; edge runs 1- or 3-channel images",
                        fix=FIX_EXPORT, where=where)
    data: Dict[str, Any] = {"edge_config": 1, "name": meta.get("description", "").strip() or info.path.stem}
    if len(info.inputs) == 1:
        spec = info.inputs[0]
        shape = [d if isinstance(d, int) else None for d in spec.shape]
        if "input" not in given:  # the user's input section replaces what the metadata says
            _check_input(shape, channels, [height, width], meta.get("imgsz", ""), where)
        if len(shape) == 4 and None in shape[1:]:  # a dynamic export: run at the size it was trained for
            if "input" not in given:  # else check_input_size checks the user's size
                _check_side_lengths([height, width], _stride(meta, where), f"metadata imgsz {[height, width]}",
                                    "re-export with imgsz a multiple of the stride (yolo export ... imgsz=640), or "
                                    "set input.shape in an edge config (--config edge.json)", where)
            shape = [None, channels, height, width]
        data["input"] = {"name": spec.name, "shape": shape, "layout": "NCHW"}
    if labels is not None:
        data["labels"] = labels
    output = info.outputs[0].name if info.outputs else "output0"
    if task == "classify":
        data.update(task="classify", preprocess=_preprocess("center_crop"),
                    decoder={"type": "classify", "output": output, "activation": "none"})
        return data
    if task not in TASK_FOR:
        if "decoder" in given and "task" in given:
            return data
        what = (f"Ultralytics '{task}' models are not supported yet" if task in UNSUPPORTED_TASKS
                else f"Ultralytics metadata names task '{task}', which edge does not know")
        raise EdgeError(what, fix="export a detect, segment, pose or classify model, or give an edge config with "
                                  "task and decoder (--config edge.json)", where=where)
    rtdetr = meta.get("head", "").strip() == RTDETR_HEAD
    data.update(task=TASK_FOR[task], preprocess=_preprocess("stretch" if rtdetr else "letterbox"))
    if task == "detect":
        data["decoder"] = _detect_decoder(info, output)
    elif "decoder" not in given or "task" not in given:
        data["decoder"] = _extras_decoder(info, task)
    if "decoder" not in given and labels is not None:
        _check_classes(info, data["decoder"], len(labels))
    return data


def _extras_decoder(info: OnnxInfo, task: str) -> Dict[str, Any]:
    """``yolo`` with ``masks`` (segment) or ``kpt_shape`` (pose); heads that already ran NMS are refused."""
    meta, where = info.metadata, str(info.path)
    decoder = _detect_decoder(info, _detection_output(info))
    if decoder["type"] != "yolo":
        raise EdgeError(f"Ultralytics '{task}' models exported with NMS in the graph (nms=True or an end-to-end head) "
                        "are not supported yet", fix="re-export without nms (yolo export model=... format=onnx "
                                                     "nms=False), or give an edge config (--config edge.json)",
                        where=where)
    if task == "segment":
        protos = [o for o in info.outputs if len(o.shape) == 4]
        if len(protos) != 1:
            found = ", ".join(f"{o.name} {list(o.shape)}" for o in info.outputs) or "none"
            raise EdgeError(f"an Ultralytics segment model has a (1, 32, H/4, W/4) prototype output, but this "
                            f"model's outputs are {found}", fix=FIX_EXPORT, where=where)
        channels = protos[0].shape[1]
        decoder["masks"] = {"proto_output": protos[0].name, "num_masks": channels if isinstance(channels, int) else 32}
        return decoder
    kpt_shape = _literal(meta.get("kpt_shape", ""), "kpt_shape", where) if "kpt_shape" in meta else None
    ok = isinstance(kpt_shape, (list, tuple)) and len(kpt_shape) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in kpt_shape) and kpt_shape[0] > 0 \
        and kpt_shape[1] in (2, 3)
    if not ok:
        raise EdgeError(f"Ultralytics pose metadata 'kpt_shape' is not [keypoints, 2 or 3]: "
                        f"{meta.get('kpt_shape', '(missing)')[:60]!r}", fix=FIX_EXPORT, where=where)
    decoder["kpt_shape"] = [int(kpt_shape[0]), int(kpt_shape[1])]  # type: ignore[index]
    if kpt_shape[0] == 17:  # type: ignore[index]
        decoder["skeleton"] = "coco17"  # Ultralytics' pose models are COCO keypoints
    return decoder


def _detection_output(info: OnnxInfo) -> str:
    """The box head's name: the only 3-D output (a segment model also has 4-D prototypes)."""
    heads = [o.name for o in info.outputs if len(o.shape) == 3]
    return heads[0] if len(heads) == 1 else (info.outputs[0].name if info.outputs else "output0")


def _preprocess(resize: str) -> Dict[str, Any]:
    """Ultralytics' input: the 'unit' preset (RGB, pixel / 255), resized as given, grey 114 padding."""
    return dict(copy.deepcopy(PRESETS["unit"]), resize=resize, pad_value=PAD_VALUE, interpolation="linear")


def _detect_decoder(info: OnnxInfo, output: str) -> Dict[str, Any]:
    """``boxes`` for heads that already ran NMS (nms=True, end2end), else ``yolo``."""
    meta = info.metadata
    if meta.get("head", "").strip() == RTDETR_HEAD:  # top-k in the graph: (1, 300, 6) cx cy w h score class
        return {"type": "boxes", "output": output, "box_format": "cxcywh", "normalized": True,
                "score_threshold": SCORE_THRESHOLD, "nms": {"method": "none", "max_detections": MAX_DETECTIONS}}
    args = _literal(meta["args"], "args", str(info.path)) if "args" in meta else {}
    nms_done = meta.get("end2end", "").strip() == "True" or (isinstance(args, dict) and args.get("nms") is True)
    if nms_done:
        return {"type": "boxes", "output": output, "box_format": "xyxy", "normalized": False,
                "score_threshold": SCORE_THRESHOLD, "nms": {"method": "none", "max_detections": MAX_DETECTIONS}}
    return {"type": "yolo", "output": output, "layout": "anchor_free", "score_threshold": SCORE_THRESHOLD,
            "nms": {"class_agnostic": False, "iou_threshold": IOU_THRESHOLD, "max_detections": MAX_DETECTIONS}}


def _check_classes(info: OnnxInfo, decoder: Dict[str, Any], num_classes: int) -> None:
    """Metadata that contradicts the output shape is a one-line error (not a wrong decode)."""
    outputs = {o.name: o.shape for o in info.outputs}
    shape = list(outputs.get(decoder["output"], ()))
    if len(shape) != 3:
        return
    kpt_shape = decoder.get("kpt_shape")
    extra = kpt_shape[0] * kpt_shape[1] if kpt_shape else decoder.get("masks", {}).get("num_masks", 0)
    if decoder["type"] == "yolo" and isinstance(shape[1], int) and shape[1] != 4 + num_classes + extra:
        more = (f" + {kpt_shape[0]} x {kpt_shape[1]} (kpt_shape)" if kpt_shape
                else f" + {extra} mask coefficients" if extra else "")
        what = (f"the Ultralytics metadata lists {num_classes} classes (names) but output '{decoder['output']}' "
                f"has shape {shape}: {shape[1]} rows, not 4 + {num_classes}{more}")
        raise EdgeError(what, fix=FIX_EXPORT, where=str(info.path))
    if decoder["type"] == "boxes" and isinstance(shape[2], int) and shape[2] != 6:
        head = ("RT-DETR head (top-k in the graph)" if decoder["box_format"] == "cxcywh"
                else "NMS is in the graph")
        layout = "cx cy w h" if decoder["box_format"] == "cxcywh" else "x1 y1 x2 y2"
        what = (f"the Ultralytics metadata says {head} but output '{decoder['output']}' has shape "
                f"{shape}, not (1, K, 6) {layout} score class")
        raise EdgeError(what, fix=FIX_EXPORT, where=str(info.path))


def _literal(text: str, key: str, where: str) -> Any:
    """A Python literal from metadata, parsed without running code; EdgeError when malformed."""
    if len(text) > MAX_LITERAL_CHARS:
        raise EdgeError(f"Ultralytics metadata '{key}' is {len(text)} characters long", fix=FIX_EXPORT, where=where)
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise EdgeError(f"Ultralytics metadata '{key}' is not a Python literal: {text[:60]!r}", fix=FIX_EXPORT,
                        where=where) from None


def parse_names(text: str, where: str = "") -> List[str]:
    """Ultralytics ``names`` ("{0: 'person', 1: 'bicycle'}") -> labels by class id; ids must be 0..n-1."""
    names = _literal(text, "names", where)
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    ok = isinstance(names, dict) and len(names) > 0 and all(isinstance(k, int) for k in names)
    if not ok or sorted(names) != list(range(len(names))):
        raise EdgeError(f"Ultralytics metadata 'names' is not {{0: 'name', 1: ...}} with ids 0..n-1: {text[:60]!r}",
                        fix=FIX_EXPORT, where=where)
    return [str(names[i]) for i in range(len(names))]


def _imgsz(text: str, where: str) -> List[int]:
    """``imgsz`` as [height, width] (an int means a square)."""
    value = _literal(text, "imgsz", where)
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    if not ok or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise EdgeError(f"Ultralytics metadata 'imgsz' is not [height, width]: {text[:60]!r}", fix=FIX_EXPORT,
                        where=where)
    return [int(value[0]), int(value[1])]


def _check_input(shape: List[Optional[int]], channels: int, imgsz_hw: List[int], text: str, where: str) -> None:
    """A fixed NCHW input must have the metadata's channels and imgsz (else the metadata is not this graph's)."""
    if len(shape) != 4:
        return
    if isinstance(shape[1], int) and shape[1] != channels:
        raise EdgeError(f"Ultralytics metadata says channels={channels} but input shape is {shape}", fix=FIX_EXPORT,
                        where=where)
    if all(isinstance(d, int) for d in shape[2:]) and list(shape[2:]) != imgsz_hw:
        raise EdgeError(f"Ultralytics metadata says imgsz {text.strip()} (height, width) but input shape is {shape}",
                        fix=FIX_EXPORT, where=where)


def _stride(meta: Dict[str, str], where: str) -> int:
    """Metadata ``stride`` (32 when absent): the largest feature-map stride; input sides must be multiples."""
    stride = _literal(meta.get("stride", "32"), "stride", where)
    if isinstance(stride, (list, tuple)) and stride:  # older exports: a list of strides
        stride = max(stride) if all(isinstance(s, int) for s in stride) else None
    if not isinstance(stride, int) or isinstance(stride, bool) or not 0 < stride <= MAX_SIDE:
        raise EdgeError(f"Ultralytics metadata 'stride' is not a positive integer: {meta.get('stride', '')[:60]!r}",
                        fix=FIX_EXPORT, where=where)
    return stride


def _check_side_lengths(size_hw: List[Any], stride: int, what: str, fix: str, where: str) -> None:
    ok = all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIDE and v % stride == 0
             for v in size_hw)
    if not ok:
        raise EdgeError(f"{what} (height, width) is not a positive multiple of the model's stride {stride} up to "
                        f"{MAX_SIDE}", fix=fix, where=where)


def check_input_size(info: OnnxInfo, data: Dict[str, Any]) -> None:
    """A dynamic Ultralytics model's configured input size must suit its head; one-line EdgeError if not.

    data: the merged config (derived < sidecar < --config < flags). Only for Ultralytics exports with
    no embedded config whose input height/width are dynamic; other models are checked by the graph.
    """
    meta = info.metadata
    if info.embedded_config() is not None or not is_ultralytics(meta) or len(info.inputs) != 1:
        return
    declared = info.inputs[0].shape
    section = data.get("input")
    if len(declared) != 4 or all(isinstance(d, int) for d in declared[2:]) or not isinstance(section, dict):
        return
    shape = section.get("shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != 4:
        return  # the config checks report a malformed shape
    layout = section.get("layout", "NCHW")
    size_hw = list(shape[1:3]) if layout == "NHWC" else list(shape[2:4])
    where = str(info.path)
    _check_side_lengths(size_hw, _stride(meta, where), f"input.shape {list(shape)}: size {size_hw}",
                        f"set input.shape to a multiple of the stride, e.g. {_rounded(size_hw, _stride(meta, where))}",
                        where)


def _rounded(size_hw: List[Any], stride: int) -> List[Any]:
    """size_hw rounded to the nearest positive multiple of ``stride`` (for the Fix text)."""
    return [max(stride, min(MAX_SIDE // stride * stride, int(round(v / stride)) * stride))
            if isinstance(v, (int, float)) and not isinstance(v, bool) else v for v in size_hw]
