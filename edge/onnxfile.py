"""Reading and writing ONNX files: tensor signatures and the embedded edge config.

:func:`read_onnx` reads the signature and metadata straight from the protobuf wire format
(:mod:`edge.onnxwire`), without importing ``onnx`` or parsing the weights: a
camera run starts ~50 ms sooner. Everything that rewrites a model (:func:`load_onnx`, :func:`embed_config`) uses
the ``onnx`` package (a base dependency). Metadata writes merge with the existing ``metadata_props``;
``onnx.helper.set_model_props`` would delete them.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np

from edge.config import METADATA_KEY, EdgeConfig, loads_json
from edge.errors import EdgeError
from edge.onnxwire import DecodeError, read_wire

PathLike = Union[str, Path]
# Files users pass as --model that are training-side formats, by suffix: told how to export them.
_TRAINING_FORMATS = {".pt": "PyTorch", ".pth": "PyTorch", ".ckpt": "PyTorch checkpoint", ".ts": "TorchScript",
                     ".torchscript": "TorchScript", ".keras": "Keras", ".h5": "Keras/HDF5", ".tflite": "TFLite",
                     ".pb": "TensorFlow", ".safetensors": "safetensors weights"}


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, shape (ints, or str/None for dynamic dims) and numpy dtype."""

    name: str
    shape: Tuple[Any, ...]
    dtype: np.dtype

    def is_dynamic(self) -> bool:
        """Whether any dimension is unknown until run time."""
        return any(not isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class OnnxInfo:
    """What ``edge`` needs from an ONNX file without running it."""

    path: Path
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    metadata: Dict[str, str]
    opset: int
    operators: Tuple[str, ...] = ()  # the main graph's operator types, sorted, each once

    def embedded_config(self) -> Optional[Dict[str, Any]]:
        """The edge config stored in the file, as a dict, or None."""
        text = self.metadata.get(METADATA_KEY)
        if text is None:
            return None
        try:
            data = loads_json(text)
        except ValueError as exc:  # json.JSONDecodeError, or nested too deeply
            raise EdgeError(
                f"the embedded edge config is not valid JSON ({exc})",
                fix="re-embed it with edge-export onnx MODEL --config edge.json",
                where=str(self.path),
            ) from None
        if not isinstance(data, dict):
            raise EdgeError("the embedded edge config is not a JSON object",
                            fix="re-embed it with edge-export onnx MODEL --config edge.json", where=str(self.path))
        return data


def load_onnx(path: PathLike):  # -> onnx.ModelProto
    """Load an ONNX model with one-line errors for missing, empty, truncated or non-ONNX files."""
    import onnx
    from google.protobuf.message import DecodeError

    path = Path(path)
    _check_model_path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, OSError) as exc:
        raise _unreadable(path, exc) from None
    if not model.graph.node or not model.graph.output:
        raise _empty_graph(path)
    _check_external_data(model, path)
    return model


def _check_model_path(path: Path) -> None:
    """EdgeError unless ``path`` is a non-empty file that is not a training-side format (.pt, .tflite, ...)."""
    where = str(path)
    if not path.is_file():
        hint = "check the path" if not path.exists() else "give a .onnx file, not a folder"
        raise EdgeError("model file not found" if not path.exists() else "model path is not a file",
                        fix=hint + " (python -m edge.camera with no --model uses the built-in face detector)",
                        where=where)
    if path.stat().st_size == 0:
        raise EdgeError("model file is empty", fix="re-export or re-download the model", where=where)
    framework = _TRAINING_FORMATS.get(path.suffix.lower())
    if framework is not None:
        raise EdgeError(f"this is a {framework} file; edge runs ONNX files (and TensorRT plans built from them)",
                        fix=f"export it first: edge-export onnx {path.name} ... (an Ultralytics .pt: "
                            f"yolo export model={path.name} format=onnx)", where=where)


def _unreadable(path: Path, exc: Exception) -> EdgeError:
    """The error for bytes that do not parse as an ONNX model."""
    return EdgeError(f"not a readable ONNX model ({type(exc).__name__}: {exc})",
                     fix="the file is truncated or not ONNX: re-export or re-download it", where=str(path))


def _empty_graph(path: Path) -> EdgeError:
    """The error for a model with no nodes or no outputs."""
    return EdgeError("ONNX file has an empty graph (truncated or not a model)",
                     fix="re-export or re-download the model", where=str(path))


def _missing_external(name: str, location: str, path: Path) -> EdgeError:
    """The error for a tensor whose weights file (``location``, beside the model) is not there."""
    folder = path.resolve().parent
    return EdgeError(f"the weights of tensor '{name}' are in a separate file, "
                     f"'{location or '(no location)'}', which is not beside the model",
                     fix=f"copy '{location}' into {folder} with the .onnx (files over 2 GB keep weights "
                     "apart), or re-export into one file", where=str(path))


def _external_missing(location: str, path: Path) -> bool:
    """Whether an external-data ``location`` (relative to the model's folder) names no file."""
    return not location or not (path.resolve().parent / location).resolve().is_file()


def _check_external_data(model: Any, path: Path) -> None:
    """EdgeError when a tensor keeps its weights in a separate file (models over 2 GB do) that is not there."""
    from onnx import TensorProto

    for tensor in _graph_tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        if _external_missing(location, path):
            raise _missing_external(tensor.name, location, path)


def _graph_tensors(graph: Any) -> Iterator[Any]:
    """Every TensorProto of ``graph``: initializers and node attributes, subgraphs (If, Loop) included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            subgraphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else [])
            for subgraph in subgraphs:
                yield from _graph_tensors(subgraph)


def _tensor_spec(value_info: Any) -> TensorSpec:
    tensor_type = value_info.type.tensor_type
    shape = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or None)
    return TensorSpec(value_info.name, tuple(shape), onnx_np_dtype(tensor_type.elem_type))


def onnx_np_dtype(elem_type: int) -> np.dtype:
    """The numpy dtype of an ONNX ``TensorProto`` element type (KeyError for types numpy lacks).

    ``onnx.helper.tensor_dtype_to_np_dtype`` arrived in onnx 1.13; onnx 1.11 and 1.12 (the JetPack 4.6
    floor, Debian bookworm's python3-onnx) have only ``onnx.mapping.TENSOR_TYPE_TO_NP_TYPE``, which
    newer releases remove.
    """
    from onnx import helper

    convert = getattr(helper, "tensor_dtype_to_np_dtype", None)
    if convert is not None:
        return np.dtype(convert(elem_type))
    from onnx import mapping

    return np.dtype(mapping.TENSOR_TYPE_TO_NP_TYPE[elem_type])


# TensorProto.DataType -> numpy, for the types numpy has (the others ask onnx, as onnx_np_dtype does).
_NUMPY_ELEM_TYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
                     8: "object", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
                     14: "complex64", 15: "complex128"}


def elem_dtype(elem_type: int) -> np.dtype:
    """:func:`onnx_np_dtype` without importing ``onnx`` for the element types numpy has."""
    name = _NUMPY_ELEM_TYPES.get(elem_type)
    return np.dtype(name) if name is not None else onnx_np_dtype(elem_type)


def read_onnx(path: PathLike) -> OnnxInfo:
    """Signature, metadata, opset and operators of an ONNX file (initializers are not listed as inputs).

    Read from the wire format (:mod:`edge.onnxwire`) without importing ``onnx``; the same errors as
    :func:`load_onnx` for missing, empty, truncated, non-ONNX or graphless files and missing external data.
    """
    path = Path(path)
    _check_model_path(path)
    try:
        wire = read_wire(path)
    except (DecodeError, OSError) as exc:  # OSError: as load_onnx, e.g. a file that cannot be opened
        raise _unreadable(path, exc) from None
    if not wire.node_count or not wire.outputs:
        raise _empty_graph(path)
    for name, location in wire.external:
        if _external_missing(location, path):
            raise _missing_external(name, location, path)
    inputs = tuple(TensorSpec(name, shape, elem_dtype(elem)) for name, shape, elem in wire.inputs
                   if name not in wire.initializers)
    outputs = tuple(TensorSpec(name, shape, elem_dtype(elem)) for name, shape, elem in wire.outputs)
    return OnnxInfo(path, inputs, outputs, dict(wire.metadata), wire.opset, wire.operators)


def info_from_model(model: Any, path: PathLike) -> OnnxInfo:
    """What :func:`read_onnx` returns, from a loaded ``onnx.ModelProto`` (for tools that hold one)."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = tuple(_tensor_spec(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_tensor_spec(v) for v in model.graph.output)
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    metadata = {p.key: p.value for p in model.metadata_props}
    operators = tuple(sorted({node.op_type for node in model.graph.node}))
    return OnnxInfo(Path(path), inputs, outputs, metadata, opset, operators)


def write_metadata(model: Any, props: Dict[str, str]) -> None:
    """Set ``props`` in ``model.metadata_props`` in place, keeping every other key."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in props.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value


def save_atomic(model: Any, path: PathLike) -> None:
    """Save an ONNX model through a temporary file, so a crash never leaves half a file."""
    import onnx

    from edge.files import atomic_path

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def canonicalize(model: Any) -> None:
    """Sort initializers and value_info by name in place, so equal graphs serialise to equal bytes.

    Some converters emit them in set-iteration order, which changes from run to run.
    """
    for field in (model.graph.initializer, model.graph.value_info):
        ordered = sorted(field, key=lambda entry: entry.name)
        copies = [type(entry)() for entry in ordered]
        for copy_, entry in zip(copies, ordered):
            copy_.CopyFrom(entry)
        del field[:]
        field.extend(copies)


def embed_config(source: PathLike, config: EdgeConfig, destination: Optional[PathLike] = None) -> Path:
    """Write ``config`` into the ONNX file's metadata (merging), to ``destination`` or in place."""
    model = load_onnx(source)
    canonicalize(model)
    write_metadata(model, {METADATA_KEY: config.to_json()})
    target = Path(destination or source)
    save_atomic(model, target)
    return target
