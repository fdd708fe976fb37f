"""The classes of the fake ``tensorrt`` module; tests use it through ``fake_tensorrt.install_fake``.

Each class is written once with every member any version has; ``fake_tensorrt.make_module`` copies
it per version without the members that version lacks, so ``hasattr`` answers as the real bindings do.
"""

import enum
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from fake_tensorrt_qdq import check_qdq

MAGIC = b"fTRTplan"
TIMING_MAGIC = b"fTRTtc"
FORMATS_8 = {"Float": "Row major linear FP32", "Half": "Row major linear FP16 format",
             "Int8": "Thirty-two wide channel vectorized row major Int8 format"}
OOM_LINES = ("1: [defaultAllocator.cpp::allocate::20] Error Code 1: Cuda Runtime (out of memory)",
             "2: [virtualMemoryBuffer.cpp::resizePhysical::140] Error Code 2: OutOfMemory (no further information)")
ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 2: "UINT8", 16: "BF16"}
NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
         "BOOL": np.bool_, "UINT8": np.uint8}
LAYER_TYPES = {"Conv": "CaskConvolution", "Gemm": "CaskGemmMatrixMultiply", "MatMul": "CaskGemmMatrixMultiply",
               "Relu": "PointWiseV2", "Add": "PointWiseV2", "Mul": "PointWiseV2", "Sigmoid": "PointWiseV2",
               "MaxPool": "CaskPooling", "GlobalAveragePool": "CaskPooling", "Transpose": "Shuffle",
               "Reshape": "Shuffle", "Flatten": "Shuffle", "Concat": "NoOp", "Pad": "Padding"}


class Dims(tuple):
    """trt.Dims: a sequence of ints, -1 for a dynamic dimension."""


class IHostMemory(bytes):
    """Serialized plan or cache: supports the buffer protocol (``bytes(x)``, ``f.write(x)``)."""

    @property
    def nbytes(self) -> int:
        return len(self)


def _check_init(obj: Any, base: str) -> None:
    if not getattr(obj, "_trt_init", False):
        raise TypeError(f"{type(obj).__name__}.__init__() must be called when overriding __init__ ({base})")


def _recorded(attr: str, name: str, deprecated: Optional[Tuple[int, int]] = None) -> property:
    def get(self: Any) -> Any:
        if deprecated:
            self._f.deprecated(name, deprecated)
        return getattr(self, attr)

    def put(self: Any, value: Any) -> None:
        if deprecated:
            self._f.deprecated(name, deprecated)
        self._f.calls.append(f"{name}={value._name_ if isinstance(value, enum.Enum) else _short(value)}")
        setattr(self, attr, value)

    return property(get, put)


def _short(value: Any) -> str:
    return repr(value) if isinstance(value, (int, str, type(None))) else f"<{type(value).__name__}>"

# ---------------------------------------------------------------- logging, parser, network
class _ILogger:
    def __init__(self) -> None:
        self._trt_init = True

    def log(self, severity: Any, msg: str) -> None:
        raise RuntimeError('Tried to call pure virtual function "ILogger::log"')


class _Logger(_ILogger):
    def __init__(self, min_severity: Any = None) -> None:
        self._trt_init = True
        self.min_severity = self._f.module.ILogger.Severity.WARNING if min_severity is None else min_severity
        self.messages: List[Tuple[str, str]] = []

    def log(self, severity: Any, msg: str) -> None:
        if severity <= self.min_severity:
            self.messages.append((severity.name, msg))


class _ParserError:
    def __init__(self, code: Any, desc: str, node: int = -1, name: str = "", op: str = "") -> None:
        self._code, self._desc, self._node, self._name, self._op = code, desc, node, name, op

    def code(self) -> Any:
        return self._code

    def desc(self) -> str:
        return self._desc

    def file(self) -> str:
        return "ModelImporter.cpp"

    def func(self) -> str:
        return "importModel"

    def node(self) -> int:
        return self._node

    def node_name(self) -> str:
        return self._name

    def node_operator(self) -> str:
        return self._op

    def local_function_stack(self) -> List[str]:
        return []

    def __str__(self) -> str:
        where = f"In node {self._node}"
        if self._f.version >= (10, 0):
            where += f" with name: {self._name} and operator: {self._op}"
        return f"{where} ({self.func()}): {self._code._name_}: {self._desc}"


class _Tensor:
    def __init__(self, name: str, shape: Sequence[int], dtype: Any) -> None:
        self.name, self.shape, self.dtype = name, Dims(shape), dtype


class _Network:
    name = "main_graph"

    def __init__(self, flags: int) -> None:
        self.flags, self.name = flags, "main_graph"
        self._inputs: List[_Tensor] = []
        self._outputs: List[_Tensor] = []
        self._nodes: List[Tuple[str, str, List[str], List[str]]] = []
        self.onnx = b""
        self.dims: Dict[str, List[int]] = {}
        self.float16 = self.qdq = False
        self.runtime_scales: List[str] = []  # Q/DQ nodes whose scale is not a constant

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))
    num_layers = property(lambda self: len(self._nodes))

    def get_input(self, index: int) -> _Tensor:
        return self._inputs[index]

    def get_output(self, index: int) -> _Tensor:
        return self._outputs[index]

    def _load(self, proto: Any, data: bytes, logger: Any) -> None:
        import onnx

        f, dtypes = self._f, self._f.module.DataType
        inferred = onnx.shape_inference.infer_shapes(proto)
        for info in list(inferred.graph.value_info) + list(proto.graph.input) + list(proto.graph.output):
            self.dims[info.name] = [d.dim_value if d.HasField("dim_value") else -1
                                    for d in info.type.tensor_type.shape.dim]
        initializers = {i.name for i in proto.graph.initializer}

        def tensor(info: Any) -> _Tensor:
            kind = ONNX_TO_TRT.get(info.type.tensor_type.elem_type, "FLOAT")
            if kind in ("INT64", "BF16") and f.version < (10, 0):
                f.emit(logger, f.module.ILogger.Severity.WARNING, "Your ONNX model has been generated with INT64 "
                       "weights, while TensorRT does not natively support INT64. Attempting to cast down to INT32.")
                kind = "INT32"
            return _Tensor(info.name, self.dims[info.name], dtypes[kind])

        self._inputs = [tensor(i) for i in proto.graph.input if i.name not in initializers]
        self._outputs = [tensor(o) for o in proto.graph.output]
        self._nodes = [(n.name or f"(Unnamed Layer* {i}) [{n.op_type}]", n.op_type,
                        [x for x in n.input if x and x not in initializers], list(n.output))
                       for i, n in enumerate(proto.graph.node)]
        self.float16 = (any(t.dtype == dtypes.HALF for t in self._inputs)
                        or any(i.data_type == 10 for i in proto.graph.initializer))
        self.qdq = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in proto.graph.node)
        self.onnx = data


class _OnnxParser:
    def __init__(self, network: Any, logger: Any) -> None:
        _check_init(logger, "ILogger")
        self._network, self._logger, self._errors = network, logger, []
        self._f.rec("OnnxParser")

    num_errors = property(lambda self: len(self._errors))

    def get_error(self, index: int) -> Any:
        return self._errors[index]

    def clear_errors(self) -> None:
        self._errors = []

    def parse(self, model: bytes, path: Optional[str] = None) -> bool:
        self._f.rec("OnnxParser.parse", bytes(model))
        return self._parse(bytes(model))

    def parse_from_file(self, model: str) -> bool:
        self._f.rec("OnnxParser.parse_from_file", model)
        if not Path(model).is_file():
            return self._fail("MODEL_DESERIALIZE_FAILED", f"Failed to open file: {model}")
        return self._parse(Path(model).read_bytes())

    def _fail(self, code: str, desc: str, node: int = -1, name: str = "", op: str = "") -> bool:
        error = self._f.module.ParserError(self._f.module.ErrorCode[code], desc, node, name, op)
        self._errors.append(error)
        self._f.emit(self._logger, self._f.module.ILogger.Severity.ERROR, f"ModelImporter.cpp:949: ERROR: {error}")
        return False

    def _parse(self, data: bytes) -> bool:
        import onnx

        f = self._f
        try:
            proto = onnx.load_from_string(data)
        except Exception as exc:  # noqa: BLE001 - the real parser reports any decode failure as an error
            return self._fail("MODEL_DESERIALIZE_FAILED", f"Failed to parse the ONNX model: {exc}")
        flag = 1 << int(f.module.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if f.version < (10, 0) else 0
        explicit = f.version >= (10, 0) or self._network.flags & flag
        if not explicit:
            return self._fail("INVALID_GRAPH", "This version of the ONNX parser only supports TensorRT "
                              "INetworkDefinitions with an explicit batch dimension. Please ensure the network was "
                              "created using the EXPLICIT_BATCH NetworkDefinitionCreationFlag.")
        bad = [(i, n) for i, n in enumerate(proto.graph.node) if n.op_type in f.unsupported_ops]
        for i, node in bad[: None if f.version >= (10, 0) else 1]:  # the 10.x parser reports every bad node
            self._fail("UNSUPPORTED_NODE", f"No importer registered for op: {node.op_type}. Attempting to import as "
                       'plugin. Assertion failed: creator && "Plugin not found, are the plugin name, version, and '
                       'namespace correct?"', i, node.name, node.op_type)
        if bad:
            return False
        refusal, warned, self._network.runtime_scales = check_qdq(f, proto)
        for line in warned:
            f.emit(self._logger, f.module.ILogger.Severity.WARNING, line)
        if refusal is not None:
            return self._fail(*refusal)
        self._network._load(proto, data, self._logger)
        return True


# ---------------------------------------------------------------- builder side
class _Profile:
    def __init__(self) -> None:
        self.shapes: Dict[str, Tuple[Dims, Dims, Dims]] = {}
        self.valid = True

    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:  # noqa: A002
        """Like pyCore.cpp: each of setDimensions(kMIN/kOPT/kMAX) that fails raises ValueError."""
        self._f.rec("IOptimizationProfile.set_shape", input, tuple(min), tuple(opt), tuple(max))
        checks = (("min", all(d >= 0 for d in min)),
                  ("opt", len(opt) == len(min) and all(0 <= a <= b for a, b in zip(min, opt))),
                  ("max", len(max) == len(min) and all(b <= c for b, c in zip(opt, max))))
        for selector, ok in checks:
            if not ok:
                self._f.emit(None, self._f.module.ILogger.Severity.ERROR, f"3: [optimizationProfile.cpp::"
                             f"setDimensions] Error Code 3: API Usage Error ({selector} dimensions of {input} are "
                             "inconsistent with the others)")
                raise ValueError(f"Shape provided for {selector} is inconsistent with other shapes.")
        self.shapes[input] = (Dims(min), Dims(opt), Dims(max))

    def get_shape(self, input: str) -> List[Dims]:  # noqa: A002
        return list(self.shapes.get(input, ()))


class _TimingCache:
    def __init__(self, cc: Sequence[int], version: str, entries: Sequence[str] = ()) -> None:
        self.cc, self.version, self.entries = list(cc), version, set(entries)

    def serialize(self) -> IHostMemory:
        self._f.rec("ITimingCache.serialize")
        body = json.dumps({"cc": self.cc, "version": self.version, "entries": sorted(self.entries)})
        return IHostMemory(TIMING_MAGIC + body.encode())

    def reset(self) -> bool:
        self.entries.clear()
        return True


class _Config:
    def __init__(self) -> None:
        m = self._f.module
        self._flags: set = set()
        self.pools: Dict[Any, int] = {}
        self.profiles: List[_Profile] = []
        self.cache: Optional[_TimingCache] = None
        self._verbosity, self._device, self._dla, self._calibrator = m.ProfilingVerbosity.LAYER_NAMES_ONLY, \
            m.DeviceType.GPU, -1, None
        self.calibration_profile: Optional[_Profile] = None
        self._workspace = 0

    profiling_verbosity = _recorded("_verbosity", "IBuilderConfig.profiling_verbosity")
    default_device_type = _recorded("_device", "IBuilderConfig.default_device_type")
    DLA_core = _recorded("_dla", "IBuilderConfig.DLA_core")
    int8_calibrator = _recorded("_calibrator", "IBuilderConfig.int8_calibrator", deprecated=(10, 1))
    max_workspace_size = _recorded("_workspace", "IBuilderConfig.max_workspace_size", deprecated=(8, 4))
    num_optimization_profiles = property(lambda self: len(self.profiles))

    def set_flag(self, flag: Any) -> None:
        self._f.rec("IBuilderConfig.set_flag", flag)
        self._flags.add(flag.name)

    def clear_flag(self, flag: Any) -> None:
        self._f.rec("IBuilderConfig.clear_flag", flag)
        self._flags.discard(flag.name)

    def get_flag(self, flag: Any) -> bool:
        return flag.name in self._flags

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._f.rec("IBuilderConfig.set_memory_pool_limit", pool, pool_size)
        self.pools[pool.name] = int(pool_size)

    def get_memory_pool_limit(self, pool: Any) -> int:
        return self.pools.get(pool.name, 8 << 30)

    def create_timing_cache(self, serialized_timing_cache: bytes) -> Optional[_TimingCache]:
        f, blob = self._f, bytes(serialized_timing_cache)
        f.rec("IBuilderConfig.create_timing_cache", blob)
        if not blob:
            return f.module.ITimingCache(f.compute_capability, f.version_string)
        if not blob.startswith(TIMING_MAGIC):
            f.emit(None, f.module.ILogger.Severity.ERROR, "3: [timingCache.cpp::deserialize] Error Code 3: API Usage "
                   "Error (Parameter check failed, condition: blob is a valid timing cache)")
            return None
        data = json.loads(blob[len(TIMING_MAGIC):].decode())
        return f.module.ITimingCache(data["cc"], data["version"], data["entries"])

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        f = self._f
        f.rec("IBuilderConfig.set_timing_cache", cache, ignore_mismatch)
        if (tuple(cache.cc), cache.version) != (f.compute_capability, f.version_string) and not ignore_mismatch:
            f.emit(None, f.module.ILogger.Severity.WARNING, "The timing cache was created on a different device or "
                   "TensorRT version; it is not used")
            return False
        self.cache = cache
        return True

    def get_timing_cache(self) -> Optional[_TimingCache]:
        self._f.rec("IBuilderConfig.get_timing_cache")
        return self.cache

    def add_optimization_profile(self, profile: Any) -> int:
        self._f.rec("IBuilderConfig.add_optimization_profile", profile)
        if not profile.valid:
            return -1
        self.profiles.append(profile)
        return len(self.profiles) - 1

    def set_calibration_profile(self, profile: Any) -> bool:
        self._f.rec("IBuilderConfig.set_calibration_profile", profile)
        self.calibration_profile = profile
        return True

    def get_calibration_profile(self) -> Optional[_Profile]:
        return self.calibration_profile


def start_cuda(fake: Any, logger: Any, kind: str) -> None:
    """What trt.Builder / trt.Runtime do first: when CUDA cannot start, TensorRT logs why and the factory
    returns nullptr, which pybind11 raises as TypeError (the real bindings over stub libraries show it)."""
    _check_init(logger, "ILogger")
    fake.rec(kind)
    if fake.cuda_fails:
        fake.emit(logger, fake.module.ILogger.Severity.WARNING, "CUDA initialization failure with error: 35. Please "
                  "check your CUDA installation:  http://docs.nvidia.com/cuda/cuda-installation-guide-linux/index.html")
        raise TypeError("pybind11::init(): factory function returned nullptr")


class _Builder:
    logger: Any = None

    def __init__(self, logger: Any) -> None:
        start_cuda(self._f, logger, "Builder")
        self.logger = logger

    @property
    def platform_has_fast_fp16(self) -> bool:
        self._f.deprecated("Builder.platform_has_fast_fp16", (10, 5))
        return self._f.fast_fp16

    platform_has_fast_int8 = property(lambda self: True)
    num_DLA_cores = property(lambda self: self._f.dla_cores)
    max_DLA_batch_size = property(lambda self: 32 if self._f.dla_cores else 1)

    def create_network(self, flags: int = 0) -> _Network:
        self._f.rec("Builder.create_network", flags)
        return self._f.module.INetworkDefinition(flags)

    def create_builder_config(self) -> _Config:
        self._f.rec("Builder.create_builder_config")
        return self._f.module.IBuilderConfig()

    def create_optimization_profile(self) -> _Profile:
        self._f.rec("Builder.create_optimization_profile")
        return self._f.module.IOptimizationProfile()

    def build_serialized_network(self, network: Any, config: Any) -> Optional[IHostMemory]:
        from fake_tensorrt_build import build  # noqa: PLC0415 - the build step lives in its own module

        self._f.rec("Builder.build_serialized_network")
        return build(self._f, self.logger, network, config)

    def build_engine(self, network: Any, config: Any) -> Any:
        self._f.deprecated("Builder.build_engine", (8, 0))
        plan = self.build_serialized_network(network, config)
        return None if plan is None else self._f.module.Runtime(self.logger).deserialize_cuda_engine(plan)

    build_engine_with_config = build_engine


class _Calibrator:
    def __init__(self) -> None:
        self._f.deprecated("IInt8EntropyCalibrator2", (10, 1))
        self._trt_init = True

    def get_algorithm(self) -> Any:
        return self._f.module.CalibrationAlgoType.ENTROPY_CALIBRATION_2
