"""Triton Inference Server model-repository entries (ONNX Runtime backend) from a model's edge config.

Layout: ``REPO/NAME/config.pbtxt``, ``REPO/NAME/<version>/model.onnx`` (a hard link when the file
system allows, else a copy), ``REPO/NAME/edge_config.json`` and, for classifiers,
``REPO/NAME/labels.txt`` (one class per line, the ``label_filename`` of the scores output).

Triton does not preprocess: the client must resize and normalise frames as the edge config says.
The config records that preprocessing in its header and in a ``parameters`` entry, and the full
edge config lies beside it. Output is deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, List, Optional, Sequence

from edge.config import EdgeConfig
from edge.errors import EdgeError
from edge.onnxfile import OnnxInfo, TensorSpec

# numpy dtype name -> Triton DataType (model_config.proto).
DATA_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
}
KINDS = {"gpu": "KIND_GPU", "cpu": "KIND_CPU"}
ACCELERATOR_PRECISIONS = ("fp16", "fp32")
DEFAULT_DYNAMIC_BATCH = 8
MODEL_FILE = "model.onnx"  # the ONNX Runtime backend's default_model_filename


def _quote(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _data_type(spec: TensorSpec, where: str) -> str:
    name = spec.dtype.name
    if name not in DATA_TYPES:
        raise EdgeError(f"tensor '{spec.name}' has element type {name}, which Triton has no TYPE_ for",
                        fix="re-export the model with a supported type (e.g. float32)", where=where)
    return DATA_TYPES[name]


def has_dynamic_batch(info: OnnxInfo, config: EdgeConfig) -> bool:
    """Whether the image input's first (batch) dimension is dynamic in the ONNX graph."""
    spec = {i.name: i for i in info.inputs}.get(config.input.name)
    shape = spec.shape if spec is not None else config.input.shape
    return bool(shape) and not isinstance(shape[0], int)


def resolve_max_batch_size(info: OnnxInfo, config: EdgeConfig, requested: Optional[int]) -> int:
    """Triton's max_batch_size: 0 for a fixed batch dim; the request (default 8) for a dynamic one."""
    dynamic = has_dynamic_batch(info, config)
    if requested is None:
        return DEFAULT_DYNAMIC_BATCH if dynamic else 0
    if requested < 0:
        raise EdgeError(f"max batch size {requested} is negative", fix="pass 0 (no batching) or more",
                        where="--max-batch-size")
    if requested > 0 and not dynamic:
        raise EdgeError(f"the model's batch dimension is fixed at {config.input.shape[0]}, so Triton cannot batch it",
                        fix="leave out --max-batch-size (0 is used), or re-export with a dynamic batch "
                        "(edge-export onnx MODEL --dynamic-batch)", where=str(info.path))
    return requested


def _dims(shape: Sequence[Any], batched: bool) -> str:
    dims = [d if isinstance(d, int) else -1 for d in (shape[1:] if batched else shape)]
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def _classifier_output(config: EdgeConfig) -> Optional[str]:
    if config.task != "classify":
        return None
    return config.decoder.get("output") or (config.outputs[0] if config.outputs else None)


def preprocess_summary(config: EdgeConfig) -> str:
    """One ASCII line that tells a client how to build the input tensor."""
    pre, spec = config.preprocess, config.input
    width, height = spec.size_wh

    def triple(values: Sequence[float]) -> str:
        return ",".join(f"{v:.12g}" for v in values)

    return (f"{pre.color} {spec.layout} {spec.dtype} {width}x{height} resize={pre.resize} "
            f"interpolation={pre.interpolation} pad_value={pre.pad_value}; value = (pixel * {pre.scale:.12g} - mean) "
            f"/ std, mean={triple(pre.mean)} std={triple(pre.std)}")


def _tensor_block(spec: TensorSpec, batched: bool, where: str, extra: Sequence[str] = ()) -> List[str]:
    return (["  {", f"    name: {_quote(spec.name)}", f"    data_type: {_data_type(spec, where)}"] +
            [f"    {line}" for line in extra] + [f"    dims: {_dims(spec.shape, batched)}", "  }"])


def _joined(blocks: List[List[str]]) -> List[str]:
    lines: List[str] = []
    for i, block in enumerate(blocks):
        lines += block[:-1] + [block[-1] + ("," if i < len(blocks) - 1 else "")]
    return lines


def triton_config(config: EdgeConfig, info: OnnxInfo, *, name: str, max_batch_size: int, instances: int = 1,
                  kind: str = "gpu", tensorrt_precision: Optional[str] = None,
                  label_filename: str = "labels.txt") -> str:
    """config.pbtxt text for the ONNX Runtime backend.

    max_batch_size: 0 when the ONNX batch dim is fixed (dims then include it); N > 0 for a dynamic
    batch dim (dims then leave it out). instances: model copies per device. kind: gpu or cpu.
    tensorrt_precision: fp16/fp32 to let ONNX Runtime hand the graph to TensorRT, or None.
    """
    where = str(info.path)
    if kind not in KINDS:
        raise EdgeError(f"unknown instance kind '{kind}'", fix="use gpu or cpu", where="--kind")
    if instances < 1:
        raise EdgeError(f"{instances} instances", fix="pass --instances 1 or more", where="--instances")
    if tensorrt_precision is not None:
        if tensorrt_precision not in ACCELERATOR_PRECISIONS:
            raise EdgeError(f"unknown TensorRT precision '{tensorrt_precision}'", fix="use fp16 or fp32",
                            where="--tensorrt-accelerator")
        if kind != "gpu":
            raise EdgeError("the TensorRT accelerator runs on GPU instances only",
                            fix="use --kind gpu, or leave out --tensorrt-accelerator", where="--tensorrt-accelerator")
    batched = max_batch_size > 0
    inputs = {i.name: i for i in info.inputs}
    image = inputs[config.input.name]
    # Triton accepts FORMAT_NCHW/NHWC only on 3 dims: with a fixed batch dim the input has 4.
    layout = config.input.layout
    image_extra = ([f"format: FORMAT_{layout}"] if batched else
                   [f"# {layout}; format left out: Triton allows FORMAT_{layout} only on 3 dims"])
    input_blocks = [_tensor_block(image, batched, where, image_extra)]
    input_blocks += [_tensor_block(spec, batched, where) for n, spec in sorted(inputs.items()) if n != image.name]
    labelled = _classifier_output(config)
    output_blocks = []
    for spec in info.outputs:
        if batched and isinstance(spec.shape[0] if spec.shape else None, int):
            raise EdgeError(f"output '{spec.name}' has a fixed first dimension {list(spec.shape)} while the input "
                            "batch is dynamic, so Triton cannot batch the model",
                            fix="re-export with the batch dimension dynamic on every output, or pass "
                            "--max-batch-size 0", where=where)
        extra = [f"label_filename: {_quote(label_filename)}"] if spec.name == labelled and config.labels else []
        output_blocks.append(_tensor_block(spec, batched, where, extra))
    model = config.name or info.path.stem
    lines = [
        f"# Triton model configuration for {model}, written by `edge-export triton` from its edge config.",
        "# Triton does not preprocess: the client must build the input tensor exactly as the edge config says",
        "# (edge_config.json beside this file):",
        f"#   {preprocess_summary(config)}",
        f"# Task: {config.task}; decode the outputs as the edge config's decoder section describes.",
        f"name: {_quote(name)}",
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch_size}",
        "input [",
        *_joined(input_blocks),
        "]",
        "output [",
        *_joined(output_blocks),
        "]",
        "instance_group [",
        "  {",
        f"    count: {instances}",
        f"    kind: {KINDS[kind]}",
        "  }",
        "]",
    ]
    if tensorrt_precision is not None:
        lines += [
            "optimization {",
            "  execution_accelerators {",
            "    gpu_execution_accelerator: [",
            "      {",
            '        name: "tensorrt"',
            f'        parameters {{ key: "precision_mode" value: "{tensorrt_precision.upper()}" }}',
            "      }",
            "    ]",
            "  }",
            "}",
        ]
    lines += [
        "parameters {",
        '  key: "edge_preprocess"',
        f"  value: {{ string_value: {_quote(preprocess_summary(config))} }}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            chunk = fa.read(1 << 20)
            if chunk != fb.read(1 << 20):
                return False
            if not chunk:
                return True


def _place_model(source: Path, target: Path) -> None:
    """Hard-link ``source`` to ``target`` (same file system), else copy it.

    A link shares the source's permissions: a source more private than a new file would be (a 0600
    export, while the umask gives 0644) is copied instead, so the server's user can read the entry.
    """
    from edge.files import default_file_mode

    wanted = default_file_mode()
    shareable = (source.stat().st_mode & wanted) == wanted
    if target.exists() and target.samefile(source):
        if shareable:
            return
        target.unlink()  # an earlier link to a private file: replace it with a readable copy
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        if not shareable:
            raise PermissionError("the source is more private than the umask: copy it")
        os.link(str(source), str(target))
    except OSError:
        shutil.copyfile(str(source), str(target))


def check_name(name: str) -> str:
    """A model name usable as a repository folder, else EdgeError."""
    if not name or name in (".", "..") or any(c in name for c in "/\\") or name.strip() != name:
        raise EdgeError(f"'{name}' cannot be a Triton model name (it names a folder in the repository)",
                        fix="pass --name with letters, digits, '_', '-' or '.'", where="--name")
    return name


def write_triton_entry(model_path: Path, config: EdgeConfig, info: OnnxInfo, *, repository: Path,
                       name: Optional[str] = None, version: int = 1, max_batch_size: Optional[int] = None,
                       instances: int = 1, kind: str = "gpu", tensorrt_precision: Optional[str] = None,
                       force: bool = False) -> Path:
    """Write the repository entry ``repository/name``; returns its folder.

    An existing entry holding a different model is an EdgeError unless ``force`` (then it is replaced).
    """
    name = check_name(name if name is not None else (config.name or Path(model_path).stem))
    if version < 1:
        raise EdgeError(f"version {version} is not positive", fix="pass --version 1 or more", where="--version")
    text = triton_config(config, info, name=name, max_batch_size=resolve_max_batch_size(info, config, max_batch_size),
                         instances=instances, kind=kind, tensorrt_precision=tensorrt_precision)
    entry = Path(repository) / name
    target = entry / str(version) / MODEL_FILE
    if entry.exists() and not force:
        different = not entry.is_dir() or not target.is_file() or not _same_file(Path(model_path), target)
        if different and (not entry.is_dir() or any(entry.iterdir())):
            raise EdgeError("the repository already holds a different model under this name",
                            fix="pass --force to replace it, or choose another --name", where=str(entry))
    if entry.exists() and not entry.is_dir():
        entry.unlink()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EdgeError(f"cannot create the model folder ({exc.strerror})", fix="check --repository",
                        where=str(target.parent)) from None
    _place_model(Path(model_path), target)
    (entry / "config.pbtxt").write_text(text, encoding="utf-8")
    (entry / "edge_config.json").write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
    labels = entry / "labels.txt"
    if _classifier_output(config) and config.labels:
        labels.write_text("".join(label + "\n" for label in config.labels), encoding="utf-8")
    elif labels.exists():
        labels.unlink()  # left from an earlier export of a classifier under this name
    return entry
