"""The one place that knows TensorRT versions: import, feature detection, and the few calls that differ.

Everything is found by feature detection on the imported module (``hasattr`` on the binding
classes, brief §1.1), never from JetPack version strings. Supported: TensorRT 8.2 (JetPack 4.6.x,
Jetson Nano/TX1/TX2/Xavier: the binding-index I/O API), 8.5/8.6 (JetPack 5.1+/6.0), 10.x (JetPack
6.1+/7, x86 pip) and 11.x (strongly typed: precision comes from the ONNX file). How engine I/O is
addressed on each (tensor names or binding indices) lives in :mod:`edge.tensorrt.engine_io`.
``tensorrt`` is imported only inside :func:`import_tensorrt`.

TensorRT 8.2 (JetPack 4.6.1-4.6.6; 4.6 itself has 8.0.1) against what edge uses elsewhere. Checked in
NVIDIA/TensorRT tag 8.2.1 (commit 6f38570b): python/src/infer/pyCore.cpp [PC82],
python/src/parsers/pyOnnx.cpp [PO82], python/packaging/tensorrt/__init__.py [INIT82]; the 8.2 Python
API pages (docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-823/api/python_api/infer/Core/
ExecutionContext.html, Engine.html, BuilderConfig.html) say the same; NVIDIA's 8.2 samples
(samples/python/common.py do_inference_v2, efficientdet/infer.py) use the same calls.
  * I/O: no num_io_tensors / get_tensor_* / set_input_shape / set_tensor_address /
    execute_async_v3 (all 8.5+). Instead ICudaEngine.num_bindings, get_binding_name(index),
    get_binding_index(name), binding_is_input(index), get_binding_shape(index),
    get_binding_dtype(index), get_profile_shape(profile_index, binding) - profile FIRST, the
    reverse of 8.5's get_tensor_profile_shape(name, profile) - and IExecutionContext.
    set_binding_shape(index, shape) -> bool, get_binding_shape(index), all_binding_shapes_specified,
    execute_async_v2(bindings, stream_handle) -> bool with ``bindings`` a list of device pointers in
    binding order [PC82 IExecutionContext/ICudaEngine]. With several optimization profiles an engine
    has num_bindings = tensors x profiles; profile k's bindings are k*n .. k*n+n-1 (names suffixed
    " [profile k]") - edge uses profile 0, bindings 0 .. n-1 (engine_io.py).
  * set_optimization_profile_async raises RuntimeError on failure in 8.2 already [PC82].
  * Builder: build_serialized_network(network, config) exists (8.0+; build_engine is deprecated
    since 8.0) [PC82 Builder]; create_network(flags) needs 1 << EXPLICIT_BATCH for the ONNX parser;
    platform_has_fast_fp16; BuilderFlag.FP16/INT8; create_optimization_profile, IOptimizationProfile.
    set_shape(input, min, opt, max), add_optimization_profile, set_calibration_profile.
  * IBuilderConfig: max_workspace_size (a property); set_memory_pool_limit / MemoryPoolType arrive
    in 8.4 [PC82 IBuilderConfig]; create_timing_cache(bytes), set_timing_cache(cache,
    ignore_mismatch) (both arguments required), get_timing_cache; profiling_verbosity.
  * EngineInspector exists (create_engine_inspector, execution_context, get_engine_information,
    LayerInformationFormat.JSON) [PC82]; no TensorIOMode enum (8.5).
  * OnnxParser.parse_from_file exists; ParserError has code/desc/file/line/func/node, no
    node_name/node_operator (10.0) [PO82]. DataType: FLOAT, HALF, INT8, INT32, BOOL (UINT8 is 8.5).
  * IInt8EntropyCalibrator2: get_batch_size, get_batch(names), read/write_calibration_cache.
  * trt.nptype builds its table with ``np.bool`` [INIT82], and so does 8.5.2 (tag 8.5.2, commit
    ad932f72; np.bool_ only from 8.5.3.1, commit b0c259a7): with numpy 1.24-1.26 (np.bool removed,
    back as an alias in 2.0) every call of that helper raises AttributeError - JetPack 5.1's 8.5.2.2
    under a pip-resolved numpy (public reports on Orin NX). edge never calls trt.nptype: see
    :func:`numpy_dtype`.
"""

import re
import warnings
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

from edge.errors import EdgeError, MissingDependency

TENSORRT_FIX = (
    "on a Jetson use JetPack's TensorRT (sudo apt install python3-libnvinfer) from a venv made with "
    "python3 -m venv --system-site-packages; on x86 pip install 'tensorrt>=10,<11'"
)


def import_tensorrt() -> Any:
    """The ``tensorrt`` module; MissingDependency naming JetPack's package or the pip wheel when absent."""
    try:
        import tensorrt
    except ImportError:
        raise MissingDependency("tensorrt", "building and running TensorRT engines", TENSORRT_FIX) from None
    if getattr(tensorrt, "__file__", None) is None or not hasattr(tensorrt, "__version__"):
        # a folder named tensorrt on sys.path imports as an empty namespace package
        raise MissingDependency("tensorrt", "building and running TensorRT engines",
                                f"{TENSORRT_FIX} (the 'tensorrt' found at {list(getattr(tensorrt, '__path__', []))} "
                                "is a plain folder, not TensorRT)")
    return tensorrt


@dataclass(frozen=True)
class TrtFeatures:
    """What the imported TensorRT offers (attribute names from pyCore.cpp per release, brief §1.1)."""

    version: Tuple[int, ...]
    major: int
    named_io: bool  # num_io_tensors / set_tensor_address / execute_async_v3 (>= 8.5)
    binding_api: bool  # num_bindings / set_binding_shape / execute_async_v2 (8.x; deprecated in 8.5, gone in 10)
    pool_limit: bool  # config.set_memory_pool_limit (>= 8.4)
    explicit_batch_flag: bool  # create_network needs 1 << EXPLICIT_BATCH (< 10; ignored in 10, gone in 11)
    precision_flags: bool  # BuilderFlag.FP16 / INT8: weakly typed builds (<= 10.x)
    int8_calibration: bool  # IInt8EntropyCalibrator2 + config.int8_calibrator (<= 10.x)
    calibration_profile: bool  # config.set_calibration_profile (for dynamic networks)
    engine_inspector: bool  # engine.create_engine_inspector + ProfilingVerbosity.DETAILED
    fast_fp16_query: bool  # builder.platform_has_fast_fp16 (<= 10.x; deprecated from 10.5, gone in 11)
    timing_cache: bool  # config.create_timing_cache / set_timing_cache
    parser_node_names: bool  # ParserError.node_name() / node_operator() (>= 10)
    dla: bool  # DeviceType.DLA can be targeted (TensorRT 11.0 has no DLA support)

    @property
    def version_string(self) -> str:
        """"10.3.0"-style version text."""
        return ".".join(str(part) for part in self.version)

    @property
    def io_api(self) -> str:
        """"names" (tensor names, execute_async_v3: >= 8.5) or "bindings" (binding indices, execute_async_v2)."""
        return "names" if self.named_io else "bindings"

    @property
    def strongly_typed(self) -> bool:
        """Whether reduced precision can only come from the ONNX types (no FP16/INT8 builder flags)."""
        return not self.precision_flags


def parse_version(text: str) -> Tuple[int, ...]:
    """"8.5.2.2" -> (8, 5, 2, 2); "10.3.0.post1" -> (10, 3, 0)."""
    parts = []
    for part in str(text).split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        parts.append(int(match.group()))
    if not parts:
        raise EdgeError(f"cannot read the TensorRT version {text!r}", fix=f"reinstall TensorRT: {TENSORRT_FIX}")
    return tuple(parts)


def features(trt: Any) -> TrtFeatures:
    """Detect what ``trt`` offers; EdgeError for a TensorRT older than 8.0 (no serialized-network builds)."""
    version = parse_version(trt.__version__)
    flags = getattr(trt, "BuilderFlag", None)
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    feats = TrtFeatures(
        version=version,
        major=version[0],
        named_io=hasattr(trt.ICudaEngine, "num_io_tensors") and hasattr(trt.IExecutionContext, "execute_async_v3"),
        binding_api=hasattr(trt.ICudaEngine, "num_bindings") and hasattr(trt.IExecutionContext, "execute_async_v2")
        and hasattr(trt.IExecutionContext, "set_binding_shape"),
        pool_limit=hasattr(trt.IBuilderConfig, "set_memory_pool_limit"),
        explicit_batch_flag=hasattr(creation, "EXPLICIT_BATCH") and version[0] < 10,
        precision_flags=hasattr(flags, "FP16"),
        int8_calibration=hasattr(flags, "INT8") and hasattr(trt, "IInt8EntropyCalibrator2")
        and hasattr(trt.IBuilderConfig, "int8_calibrator"),
        calibration_profile=hasattr(trt.IBuilderConfig, "set_calibration_profile"),
        engine_inspector=hasattr(trt.ICudaEngine, "create_engine_inspector") and hasattr(trt, "ProfilingVerbosity"),
        # deprecated from 10.5 (C++) but still answered there; gone in 11 (precision comes from the ONNX types)
        fast_fp16_query=hasattr(trt.Builder, "platform_has_fast_fp16"),
        timing_cache=hasattr(trt.IBuilderConfig, "create_timing_cache"),
        parser_node_names=hasattr(getattr(trt, "ParserError", None), "node_name"),
        dla=hasattr(trt, "DeviceType") and version[:2] != (11, 0),
    )
    builds = hasattr(trt.Builder, "build_serialized_network")  # 8.0+: plans are built without a CUDA engine
    if not builds or not (feats.named_io or feats.binding_api):
        raise EdgeError(
            f"TensorRT {trt.__version__} is too old: edge needs TensorRT 8.2 or newer",
            fix="flash JetPack 4.6.1 or newer (TensorRT 8.2+; JetPack 5.1+ on Xavier/Orin), or run with "
            "--backend onnxruntime or opencv",
        )
    return feats


def max_onnx_opset(feats: TrtFeatures) -> Optional[int]:
    """The newest ONNX opset this TensorRT's ONNX parser documents (onnx/onnx-tensorrt README at tags 8.0-GA,
    8.2-GA: "up to Opset 13"; 8.4-GA .. 8.6-GA: 17); None from 10.x, whose range grows per release."""
    if feats.version[:2] < (8, 4):
        return 13
    return 17 if feats.major < 10 else None


#: TensorRT DataType member name -> numpy dtype name (numpy has no bf16/fp8/int4/fp4)
NUMPY_DTYPES = {"FLOAT": "float32", "HALF": "float16", "INT8": "int8", "INT32": "int32", "INT64": "int64",
                "BOOL": "bool", "UINT8": "uint8"}


def numpy_dtype(trt_dtype: Any) -> Optional[Any]:
    """The numpy dtype of a TensorRT ``DataType``, by member name; None when numpy cannot hold it.

    Not ``trt.nptype``: on TensorRT 8.2-8.5.2 it refers to ``np.bool`` and so raises AttributeError
    on numpy 1.24-1.26 for every type (see the module docstring).
    """
    import numpy as np

    name = NUMPY_DTYPES.get(enum_name(trt_dtype))
    return None if name is None else np.dtype(name)


CUDA_START_FIX = ("check that the NVIDIA driver works (nvidia-smi; on a Jetson: a complete JetPack install and this "
                  "user in the 'video' group), that no other process holds the whole GPU, and that TensorRT was built "
                  "for this CUDA; or run with --backend onnxruntime")


def _create(trt: Any, kind: str, logger: Any, where: Optional[str]) -> Any:
    """``trt.Builder(logger)`` or ``trt.Runtime(logger)``; EdgeError when TensorRT cannot start CUDA.

    Both constructors return nullptr when CUDA cannot initialise (no GPU, a driver older than the CUDA
    TensorRT was built with, a container without the GPU), which pybind11 raises as ``TypeError:
    pybind11::init(): factory function returned nullptr``; TensorRT logs the cause just before.
    """
    try:
        return getattr(trt, kind)(logger)
    except TypeError as exc:
        if "nullptr" not in str(exc):
            raise  # wrong arguments: a bug, keep the traceback
        logged = [str(m) for _, m in getattr(logger, "lines", ()) if "cuda" in str(m).lower()]
        cause = " ".join(logged[-1].split()) if logged else "TensorRT's log line above says why"
        raise EdgeError(f"TensorRT {getattr(trt, '__version__', '?')} could not start CUDA (trt.{kind} failed: "
                        f"{cause})", fix=CUDA_START_FIX, where=where) from None


def create_builder(trt: Any, logger: Any, where: Optional[str] = None) -> Any:
    """A ``trt.Builder``; EdgeError (one line, with the fix) when CUDA cannot start."""
    return _create(trt, "Builder", logger, where)


def create_runtime(trt: Any, logger: Any, where: Optional[str] = None) -> Any:
    """A ``trt.Runtime``; EdgeError (one line, with the fix) when CUDA cannot start."""
    return _create(trt, "Runtime", logger, where)


def platform_has_fast_fp16(builder: Any) -> bool:
    """``builder.platform_has_fast_fp16`` without the DeprecationWarning TensorRT 10.5+ attaches to it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(builder.platform_has_fast_fp16)


def enum_name(value: Any) -> str:
    """"UNSUPPORTED_NODE" for a TensorRT enum value. TensorRT 8.6 and 10.x bind ``ErrorCode.name`` as a
    method (returning "ErrorCode.UNSUPPORTED_NODE"); 11.x and the other enums as a property."""
    name = getattr(value, "name", None)
    if callable(name):
        name = name()
    return str(value if name is None else name).rsplit(".", 1)[-1]


def network_flags(trt: Any, feats: TrtFeatures) -> int:
    """Flags for ``builder.create_network``: EXPLICIT_BATCH where the 8.x ONNX parser requires it, else 0."""
    if feats.explicit_batch_flag:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def set_workspace(config: Any, trt: Any, feats: TrtFeatures, nbytes: int) -> None:
    """Limit the builder's scratch memory (on a Jetson it is taken from the shared system RAM)."""
    if feats.pool_limit:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(nbytes))
    else:  # TensorRT 8.2 (JetPack 4.6): the property that 8.4 deprecated for memory pools
        config.max_workspace_size = int(nbytes)


def parser_errors(parser: Any, nodes: Optional[Sequence[Tuple[str, str]]] = None) -> List[str]:
    """The ONNX parser's errors, one string each, naming the node: name and operator from TensorRT >= 10,
    else the node index (and its name/operator from ``nodes``, the ONNX graph's (name, op_type) list)."""
    lines = []
    for i in range(parser.num_errors):
        error = parser.get_error(i)
        index = error.node()
        name = op = ""
        if hasattr(error, "node_name"):
            name, op = error.node_name(), error.node_operator()
        elif nodes is not None and 0 <= index < len(nodes):
            name, op = nodes[index]
        code = enum_name(error.code())
        desc = " ".join(str(error.desc()).split())
        if name or op:
            where = f"node '{name}' ({op})" if name else f"node #{index} ({op})"
        elif index >= 0:
            where = f"node #{index}"
        else:
            where = "model"
        lines.append(f"{where}: {code}: {desc}")
    return lines


def _precision_of(datatype: str) -> str:
    """fp32/fp16/bf16/fp8/int8/int or unknown, from an inspector "Format/Datatype" string: 8.x writes
    "Row major linear FP16 format", 10.x "Half"; dynamic engines without shapes write "N/A ..."."""
    text = datatype.lower()
    for name, needles in (("unknown", ("n/a",)), ("int8", ("int8",)), ("bf16", ("bf16", "bfloat16")),
                          ("fp8", ("fp8",)), ("fp16", ("fp16", "half")), ("fp32", ("fp32", "float")),
                          ("int", ("int32", "int64", "bool"))):
        if any(needle in text for needle in needles):
            return name
    return "unknown"


def layer_precisions(engine_information: Any) -> dict:
    """Count compute layers per precision from the engine inspector's JSON (``get_engine_information``).

    Reformat layers (precision conversions) are not counted. A plan built without
    ProfilingVerbosity.DETAILED lists layer names only: the result is then empty.
    """
    counts: dict = {}
    for layer in engine_information.get("Layers", []):
        if not isinstance(layer, dict) or layer.get("LayerType") == "Reformat":
            continue
        tensors = list(layer.get("Outputs") or []) + list(layer.get("Inputs") or [])
        kinds = [_precision_of(str(t.get("Format/Datatype", ""))) for t in tensors if isinstance(t, dict)]
        kind = next((k for k in kinds if k not in ("unknown", "int")), kinds[0] if kinds else "unknown")
        counts[kind] = counts.get(kind, 0) + 1
    return counts


def obtained_precision(counts: dict) -> str:
    """The engine's precision from layer counts: int8 if any INT8 layer, else fp16, else fp32, else unknown."""
    for name in ("int8", "fp8", "fp16", "bf16", "fp32"):
        if counts.get(name):
            return name
    return "unknown"
