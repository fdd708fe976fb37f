"""The edge config: a small versioned JSON document that makes a model explain itself.

It travels inside the ONNX file (one ``metadata_props`` key) or beside a model as a sidecar
JSON, so that ``python -m edge.camera --model any.onnx`` needs no further flags. Validation
names the field, what was expected and what was found.
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from edge.errors import EdgeError

METADATA_KEY = "edge_config"
VERSION = 1
# Deepest nesting of objects/lists accepted in a config or results file: real ones use 4 levels;
# thousands would end in a RecursionError (in the parser, deepcopy or validation) instead of a message.
MAX_JSON_DEPTH = 32
NESTING_FIX = "an edge config nests 4 levels at most (decoder.anchors); give the file export wrote or the README shows"
# "embed" (issue 10) joins when an embedding decoder exists: until then a config naming it is refused here.
TASKS = ("detect", "classify", "segment", "keypoints", "embed")
LAYOUTS = ("NCHW", "NHWC")
DTYPES = ("float32", "float16", "uint8")
COLORS = ("RGB", "BGR")
RESIZE_MODES = ("stretch", "letterbox", "center_crop")
INTERPOLATIONS = ("linear", "nearest", "area", "cubic")

# Which command-line flag supplies each required fact, for the "missing config" message.
FLAG_FOR_FIELD = {
    "task": "--task detect|classify|segment|keypoints",
    "preprocess.color": "--color RGB|BGR",
    "preprocess.scale": "--scale (e.g. 0.00392 for 1/255) or --preset",
    "preprocess.mean": "--mean R,G,B or --preset",
    "preprocess.std": "--std R,G,B or --preset",
    "decoder": "--config decoder.json (a detector needs its decoder parameters)",
    "decoder (detectors only)": "--config decoder.json for a detector, segmenter or keypoint model",
}

# Normalisation presets the CLI offers: value = (pixel * scale - mean) / std.
PRESETS: Dict[str, Dict[str, Any]] = {
    "imagenet": {"color": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    "unit": {"color": "RGB", "scale": 1 / 255, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
    "symmetric": {"color": "RGB", "scale": 1 / 127.5, "mean": [1.0, 1.0, 1.0], "std": [1.0, 1.0, 1.0]},
    "raw": {"scale": 1.0, "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
}


def _fail(where: str, field: str, expected: str, found: Any) -> EdgeError:
    return EdgeError(
        f"edge config field '{field}': expected {expected}, found {found!r}",
        fix="correct the field in the model's edge config (edge-export onnx --config) or override it",
        where=where,
    )


def _choice(value: Any, options: Sequence[str], where: str, field: str) -> str:
    if isinstance(value, str):
        for option in options:
            if value.lower() == option.lower():
                return option
    raise _fail(where, field, "one of " + ", ".join(options), value)


def _number(value: Any, where: str, field: str, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (positive and value <= 0):
        raise _fail(where, field, "a positive number" if positive else "a number", value)
    return float(value)


def _triple(value: Any, where: str, field: str, positive: bool = False) -> Tuple[float, float, float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value] * 3
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _fail(where, field, "3 numbers (one per colour channel, in the model's colour order)", value)
    return tuple(_number(v, where, field, positive) for v in value)  # type: ignore[return-value]


def _check_keys(section: Mapping[str, Any], allowed: Sequence[str], where: str, prefix: str) -> None:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise EdgeError(
            f"edge config has unknown field '{prefix}{unknown[0]}' (valid: {', '.join(allowed)})",
            fix="fix the spelling or remove the field",
            where=where,
        )


@dataclass(frozen=True)
class InputSpec:
    """The model's image input: name, shape (batch first), layout and element type."""

    name: str
    shape: Tuple[Any, ...]
    layout: str = "NCHW"
    dtype: str = "float32"

    @property
    def size_wh(self) -> Tuple[int, int]:
        """(width, height) in pixels that the model expects."""
        height, width = (self.shape[2], self.shape[3]) if self.layout == "NCHW" else (self.shape[1], self.shape[2])
        return int(width), int(height)

    @property
    def channels(self) -> int:
        """Colour channels the model expects (1 or 3)."""
        return int(self.shape[1] if self.layout == "NCHW" else self.shape[3])


@dataclass(frozen=True)
class PreprocessSpec:
    """How a BGR uint8 frame becomes the model input: value = (pixel * scale - mean) / std."""

    color: str = "RGB"
    resize: str = "stretch"
    scale: float = 1.0
    mean: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: Tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 0
    interpolation: str = "linear"


@dataclass(frozen=True)
class EdgeConfig:
    """A validated edge config (schema version 1)."""

    task: str
    input: InputSpec
    preprocess: PreprocessSpec
    outputs: Tuple[str, ...]
    decoder: Dict[str, Any]
    labels: Optional[Tuple[str, ...]] = None
    name: str = ""

    def to_dict(self) -> Dict[str, Any]:
        """The JSON form, as stored in a model."""
        pre = self.preprocess
        data: Dict[str, Any] = {
            "edge_config": VERSION,
            "name": self.name,
            "task": self.task,
            "input": {"name": self.input.name, "shape": list(self.input.shape),
                      "layout": self.input.layout, "dtype": self.input.dtype},
            "preprocess": {"color": pre.color, "resize": pre.resize, "scale": pre.scale, "mean": list(pre.mean),
                           "std": list(pre.std), "pad_value": pre.pad_value, "interpolation": pre.interpolation},
            "outputs": list(self.outputs),
            "decoder": copy.deepcopy(self.decoder),
        }
        if self.labels is not None:
            data["labels"] = list(self.labels)
        return data

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys) for embedding."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "edge config") -> "EdgeConfig":
        """Validate ``data`` and build the config; EdgeError names the first bad field."""
        missing = missing_fields(data)
        if missing:
            raise missing_config_error(missing, where)
        if data["edge_config"] != VERSION:
            raise EdgeError(
                f"edge config version {data['edge_config']!r} is not supported (this edge reads version {VERSION})",
                fix="upgrade edge (pip install -U edge) or re-export the model with this version",
                where=where,
            )
        _check_keys(data, ("edge_config", "name", "task", "input", "preprocess", "outputs", "decoder", "labels"),
                    where, "")
        return cls(
            task=_choice(data["task"], TASKS, where, "task"),
            input=_input_spec(data["input"], where),
            preprocess=_preprocess_spec(data["preprocess"], where),
            outputs=_names(data.get("outputs", ()), where, "outputs"),
            decoder=_decoder(data.get("decoder") or {"type": "classify"}, where),  # only a classifier lacks one
            labels=None if data.get("labels") is None else _names(data["labels"], where, "labels"),
            name=str(data.get("name", "")),
        )


def _names(value: Any, where: str, field: str) -> Tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise _fail(where, field, "a list of strings", value)
    return tuple(value)


def _decoder(value: Any, where: str) -> Dict[str, Any]:
    if not isinstance(value, Mapping) or not isinstance(value.get("type"), str):
        raise _fail(where, "decoder", "an object with a 'type' (e.g. 'classify' or 'ssd_anchors')", value)
    return copy.deepcopy(dict(value))


def _input_spec(value: Any, where: str) -> InputSpec:
    if not isinstance(value, Mapping):
        raise _fail(where, "input", "an object with name, shape, layout, dtype", value)
    _check_keys(value, ("name", "shape", "layout", "dtype"), where, "input.")
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise _fail(where, "input.name", "the input tensor's name", name)
    layout = _choice(value.get("layout", "NCHW"), LAYOUTS, where, "input.layout")
    shape = value.get("shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != 4:
        raise _fail(where, "input.shape", "4 dimensions (batch first)", shape)
    for i, dim in enumerate(shape):
        dynamic_batch = i == 0 and (dim is None or isinstance(dim, str))
        if not dynamic_batch and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
            raise _fail(where, "input.shape", "positive sizes (only the batch may be dynamic)", shape)
    spec = InputSpec(name, tuple(shape), layout, _choice(value.get("dtype", "float32"), DTYPES, where, "input.dtype"))
    if spec.channels not in (1, 3):
        raise _fail(where, "input.layout", f"a layout whose channel axis has 1 or 3 channels for shape {list(shape)}",
                    layout)
    return spec


def _preprocess_spec(value: Any, where: str) -> PreprocessSpec:
    if not isinstance(value, Mapping):
        raise _fail(where, "preprocess", "an object", value)
    _check_keys(value, ("color", "resize", "scale", "mean", "std", "pad_value", "interpolation"), where, "preprocess.")
    pad = value.get("pad_value", 0)
    if isinstance(pad, bool) or not isinstance(pad, int) or not 0 <= pad <= 255:
        raise _fail(where, "preprocess.pad_value", "an integer 0..255", pad)
    return PreprocessSpec(
        color=_choice(value["color"], COLORS, where, "preprocess.color"),
        resize=_choice(value.get("resize", "stretch"), RESIZE_MODES, where, "preprocess.resize"),
        scale=_number(value["scale"], where, "preprocess.scale", positive=True),
        mean=_triple(value["mean"], where, "preprocess.mean"),
        std=_triple(value["std"], where, "preprocess.std", positive=True),
        pad_value=pad,
        interpolation=_choice(value.get("interpolation", "linear"), INTERPOLATIONS, where, "preprocess.interpolation"),
    )


def missing_fields(data: Mapping[str, Any]) -> List[str]:
    """Required fields absent from a (possibly partial) config dict, as dotted paths."""
    missing = [f for f in ("task", "input") if data.get(f) is None]
    if data.get("decoder") is None and data.get("task") != "classify":  # a classifier gets a default one
        missing.append("decoder" if data.get("task") else "decoder (detectors only)")
    pre = data.get("preprocess") or {}
    if isinstance(pre, Mapping):  # a non-object is reported by validation, naming the field
        missing += [f"preprocess.{f}" for f in ("color", "scale", "mean", "std") if pre.get(f) is None]
    if "edge_config" not in data:
        missing.insert(0, "edge_config")
    return missing


def missing_config_error(missing: Sequence[str], where: str, exporting: bool = False) -> EdgeError:
    """The error for a model without (a complete) edge config: lists fields and the flags that supply them."""
    flags = list(dict.fromkeys(FLAG_FOR_FIELD[f] for f in missing if f in FLAG_FOR_FIELD))
    fix = "embed one with edge-export onnx MODEL --config edge.json, or put a sidecar JSON beside the model"
    if exporting:
        fix = "give --config edge.json (JSON or YAML)"
    if flags:
        fix = fix.replace(", or put", ", put") + f", or pass {'; '.join(flags)}"
    return EdgeError(f"the model has no complete edge config (missing: {', '.join(missing)})", fix=fix, where=where)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """Deep-merge ``override`` into a copy of ``base``; None values in override are ignored."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def sidecar_path(model_path: Path) -> Path:
    """Where a model's sidecar config lives: ``model.onnx`` → ``model.json``."""
    return model_path.with_suffix(".json")


def _children(value: Any) -> Optional[List[Any]]:
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


def json_depth(data: Any) -> int:
    """How deeply lists and objects nest in ``data`` (0 for a scalar), at most MAX_JSON_DEPTH + 1.

    Iterative, so any depth is measured without recursion; each container is visited once, so
    YAML aliases that share one list many times cost nothing, and a cycle counts as too deep.
    """
    heights: Dict[int, int] = {}
    on_path: set = set()
    stack: List[Tuple[Any, bool]] = [(data, False)]
    while stack:
        value, finished = stack.pop()
        children = _children(value)
        if children is None:
            continue
        key = id(value)
        if finished:
            on_path.discard(key)
            heights[key] = 1 + max((heights.get(id(c), 0) for c in children), default=0)
            if heights[key] > MAX_JSON_DEPTH:
                return MAX_JSON_DEPTH + 1
            continue
        if key in heights:
            continue
        if key in on_path or len(on_path) >= MAX_JSON_DEPTH:
            return MAX_JSON_DEPTH + 1
        on_path.add(key)
        stack.append((value, True))
        stack.extend((c, False) for c in children if id(c) not in heights)
    return heights.get(id(data), 0)


def check_depth(data: Any) -> Any:
    """``data`` unchanged, or ValueError when it nests deeper than MAX_JSON_DEPTH."""
    if json_depth(data) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def loads_json(text: str) -> Any:
    """``json.loads`` that raises ValueError, not RecursionError, on nesting deeper than MAX_JSON_DEPTH.

    For any JSON a user can hand edge (configs, embedded configs, results files): callers that
    already turn ``json.JSONDecodeError`` (a ValueError) into a message need no other change.
    """
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    return check_depth(data)


def load_json(path: Path, where: Optional[str] = None) -> Dict[str, Any]:
    """Read a JSON object from ``path`` with a one-line error on bad files."""
    where = where or str(path)
    try:
        data = loads_json(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EdgeError("config file not found", fix="check the path", where=where) from None
    except IsADirectoryError:
        raise EdgeError("config path is a folder", fix="give the path of a .json file", where=where) from None
    except UnicodeDecodeError:
        raise EdgeError("config file is not valid JSON (not UTF-8 text)", fix="give a JSON file saved as UTF-8",
                        where=where) from None
    except OSError as exc:
        raise EdgeError(f"cannot read config file ({exc.strerror or exc})", fix="check the path and its permissions",
                        where=where) from None
    except json.JSONDecodeError as exc:
        raise EdgeError(f"config file is not valid JSON ({exc})", fix="fix the JSON syntax", where=where) from None
    except ValueError as exc:  # nested too deeply
        raise EdgeError(f"config file is not an edge config ({exc})", fix=NESTING_FIX, where=where) from None
    if not isinstance(data, dict):
        raise EdgeError("config file must hold a JSON object", fix="wrap the fields in { }", where=where)
    return data


def load_config_file(path: Path) -> Dict[str, Any]:
    """An edge config file: JSON, or YAML (.yaml/.yml) when PyYAML is installed."""
    path = Path(path)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return load_json(path)
    try:
        import yaml
    except ImportError:
        raise EdgeError("reading a YAML config needs PyYAML", fix="pip install pyyaml, or write the config as JSON",
                        where=str(path)) from None
    try:
        data = check_depth(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise EdgeError("config file not found", fix="check the path", where=str(path)) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgeError(f"config file is not valid YAML ({first})", fix="fix the YAML syntax",
                        where=str(path)) from None
    except (RecursionError, ValueError) as exc:  # nested too deeply
        why = f"nested deeper than {MAX_JSON_DEPTH} levels" if isinstance(exc, RecursionError) else str(exc)
        raise EdgeError(f"config file is not an edge config ({why})", fix=NESTING_FIX, where=str(path)) from None
    if not isinstance(data, dict):
        raise EdgeError("config file must hold a mapping", fix="write the fields as key: value", where=str(path))
    return data
