"""Faithful fakes of the ``tensorrt`` Python module (8.x, 10.x, 11.x) and of edge's CUDA layer.

Import this module (``from fake_tensorrt import install_fake, FakeCudaLayer``); the classes live in
fake_tensorrt_classes.py (logger, parser, network, builder side), fake_tensorrt_build.py (the build
step, Runtime, ICudaEngine) and fake_tensorrt_context.py (IExecutionContext, EngineInspector).

``fake = install_fake(monkeypatch, "10.3", **knobs)`` puts a fake ``tensorrt`` in ``sys.modules``;
``fake.calls`` lists every TensorRT call in order ("Builder.create_network(0)",
"IBuilderConfig.set_flag(FP16)", ...); ``fake.called(prefix)`` filters it. ``FakeCudaLayer``
implements ``edge.cuda.base.CudaLayer`` over integer pointers into one registry of numpy memory,
which the fake ``execute_async_v3`` and the calibration step read and write.

Faithful to (brief §1.1 matrix, pyCore.cpp per release): which attributes exist per version (a
missing API raises AttributeError; "8.2" only the binding-index API (below); "8.5" has both I/O
APIs, the binding API deprecated; "10.3" no
binding API, no max_workspace_size, EXPLICIT_BATCH ignored, calibrator deprecated; "11.1" no
EXPLICIT_BATCH, no BuilderFlag.FP16/INT8, no platform_has_fast_fp16, no calibrators, strongly typed
precision from the ONNX types); failure by return value (parse False with ParserError
code/desc/node and node_name/node_operator on >= 10; build_serialized_network None with the reason
logged; deserialize_cuda_engine None for foreign bytes, another version or another GPU; set_* and
execute_async_v3 bool); 8.x parser refusing a network without EXPLICIT_BATCH; dynamic inputs
needing a profile; the INT8 calibrator protocol (base __init__, get_batch_size, read cache, get_batch
until None, write cache; calibration profile for dynamic networks); timing-cache device check;
Q/DQ nodes as the ONNX importer takes them (fake_tensorrt_qdq.py: int8/fp8/int4 with zero point 0,
positive constant scales per tensor or per channel; UINT8 and INT32 dequantization refused);
engine-inspector JSON ("Layers"/"Bindings", "Format/Datatype", names only unless DETAILED, "N/A due
to dynamic shapes" without a shaped execution context); async work that happens at synchronize();
enum members and numbers per version (fake_tensorrt_enums.py), ErrorCode.name a method on 8.x/10.x and
a property on 11.x; IOptimizationProfile.set_shape raising ValueError ("Shape provided for min is
inconsistent with other shapes."); trt.Builder/trt.Runtime raising TypeError ("pybind11::init():
factory function returned nullptr") after logging why when CUDA cannot start (knob ``cuda_fails``).
test_bindings_surface.py checks classes, members and enums against the real 8.6.1, 10.3, 10.13 and
11.1 bindings wheels (imported over stub libraries).

TensorRT 8.2 (JetPack 4.6.1+): no bindings wheel of any 8.x before 8.6 was published to PyPI
(``pip index versions tensorrt-bindings``: 8.6.1 only; ``tensorrt``: 8.6.1 and later; the 8.x
``nvidia-tensorrt`` wheels lived on NVIDIA's own index), so the "8.2" fake is checked against the
binding sources instead, NVIDIA/TensorRT tag 8.2.1 (commit 6f38570b):
  python/src/infer/pyCore.cpp - ICudaEngine: num_bindings, get_binding_name(index),
    get_binding_index(name), binding_is_input / get_binding_shape / get_binding_dtype (index or
    name), get_profile_shape(profile_index, binding), max_batch_size, num_optimization_profiles,
    create_engine_inspector, no num_io_tensors/get_tensor_*; IExecutionContext: set_binding_shape
    -> bool, get_binding_shape, all_binding_shapes_specified, execute_v2, execute_async_v2(bindings,
    stream_handle), set_optimization_profile_async (RuntimeError on failure), no set_input_shape /
    get_tensor_shape / set_tensor_address / execute_async_v3 / infer_shapes; IBuilderConfig:
    max_workspace_size, no set_memory_pool_limit; Builder: build_serialized_network, build_engine
    (deprecated), platform_has_fast_fp16; EngineInspector; enums without MemoryPoolType and
    TensorIOMode; BuilderFlag up to REJECT_EMPTY_ALGORITHMS.
  python/src/infer/pyFoundationalTypes.cpp - DataType FLOAT, HALF, INT8, INT32, BOOL (no UINT8).
  python/src/parsers/pyOnnx.cpp - OnnxParser.parse / parse_from_file; ParserError without
    node_name / node_operator; ErrorCode up to UNSUPPORTED_NODE.
  python/packaging/tensorrt/__init__.py - nptype's table uses ``np.bool`` (also at tag 8.5.2): with
    numpy 1.24-1.26 it raises AttributeError, as the fake's does with the knob numpy_version=(1, 24).
  The 8.2 Python API pages (docs.nvidia.com/deeplearning/tensorrt/archives/tensorrt-823/api/
    python_api/infer/Core/ExecutionContext.html, Engine.html) describe the same members. With P
    optimization profiles an engine has P x n bindings, profile k's named "<tensor> [profile k]".

Not modelled: real kernels, tactics or timing (fp16/int8 engines compute in fp32 via ONNX Runtime);
numerics of quantization; plugins; refit, weight streaming, version/hardware-compatible plans;
multiple contexts' memory sharing; events and CUDA graphs; DLA layer placement (only core checks);
the exact text of TensorRT's log lines (close paraphrases); engine ``__getitem__``/iteration; the
workspace limit (a too-small workspace never fails); a 10.x STRONGLY_TYPED network (flag accepted, ignored).
Inferred, not verified on hardware: 10.x inspector formats "Float"/"Half"/"Int8" (8.x: "Row major linear
FP16 format"), taken from public inspector dumps; what fake versions between the checked ones ("8.5",
"10.7", "11.0") lack or add (interpolated from the checked neighbours and the release notes).
"""

import contextlib
import enum
import json
import struct
import sys
import threading
import types
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from edge.cuda.base import CudaError, CudaLayer, DeviceBuffer, DeviceInfo, HostBuffer, Stream

sys.path.insert(0, str(Path(__file__).resolve().parent))  # importable from any test folder
from fake_tensorrt_build import runtime_classes  # noqa: E402
from fake_tensorrt_classes import (  # noqa: E402
    MAGIC,
    NUMPY,
    Dims,
    IHostMemory,
    _Builder,
    _Calibrator,
    _Config,
    _ILogger,
    _Logger,
    _Network,
    _OnnxParser,
    _ParserError,
    _Profile,
    _TimingCache,
)
from fake_tensorrt_enums import ENUM_SINCE, _MethodNameEnum, _TrtEnum, make_enum  # noqa: E402

VERSIONS = {"8.2": "8.2.1.8", "8.5": "8.5.2.2", "8.6": "8.6.2.3", "10.3": "10.3.0", "10.7": "10.7.0",
            "11.0": "11.0.0", "11.1": "11.1.0"}


# ---------------------------------------------------------------- CUDA memory and the fake CudaLayer
class FakeDeviceMemory:
    """Integer "device pointers" into numpy byte arrays, streams by handle, active contexts per thread."""

    def __init__(self) -> None:
        self.blocks: Dict[int, np.ndarray] = {}
        self.streams: Dict[int, "FakeStream"] = {}
        self.pinned: List[np.ndarray] = []
        self._next = 0x7F00_0000_0000
        self._lock = threading.Lock()
        self._local = threading.local()

    def register(self, block: np.ndarray) -> int:
        with self._lock:
            ptr, self._next = self._next, self._next + ((block.nbytes + 511) // 256) * 256
            self.blocks[ptr] = block
        return ptr

    def view(self, ptr: int, nbytes: int) -> np.ndarray:
        """The ``nbytes`` bytes at ``ptr`` (inside one live allocation) as a writable uint8 view."""
        for base, block in self.blocks.items():
            if base <= ptr and ptr + nbytes <= base + block.nbytes:
                return block[ptr - base:ptr - base + nbytes]
        raise CudaError(f"cudaErrorIllegalAddress: {nbytes} bytes at {ptr:#x} are not allocated device memory")

    def is_active(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def is_pinned(self, array: np.ndarray) -> bool:
        lo, hi = _bounds(array)
        return any(_bounds(p)[0] <= lo and hi <= _bounds(p)[1] for p in self.pinned)


def _bounds(array: np.ndarray) -> Tuple[int, int]:
    """(first, one past last) byte address of an array (numpy's byte_bounds moved between versions)."""
    start = low = high = array.__array_interface__["data"][0]
    for size, stride in zip(array.shape, array.strides):
        low, high = (low + (size - 1) * stride, high) if stride < 0 else (low, high + (size - 1) * stride)
    return (low, high + array.itemsize) if array.size else (start, start)


DEVICE_MEMORY = FakeDeviceMemory()  # one registry: every FakeCudaLayer and every fake tensorrt share it


class FakeDeviceBuffer(DeviceBuffer):
    def __init__(self, memory: FakeDeviceMemory, nbytes: int) -> None:
        self.memory, self.nbytes = memory, nbytes
        self.ptr = memory.register(np.zeros(nbytes, np.uint8))

    def free(self) -> None:
        self.memory.blocks.pop(self.ptr, None)


class FakeHostBuffer(HostBuffer):
    def __init__(self, memory: FakeDeviceMemory, shape: Tuple[int, ...], dtype: Any, mapped: bool) -> None:
        self.memory, self.array = memory, np.zeros(shape, dtype)
        memory.pinned.append(self.array)
        self.device_ptr = memory.register(self.array.reshape(-1).view(np.uint8)) if mapped else None

    def free(self) -> None:
        self.memory.pinned[:] = [a for a in self.memory.pinned if a is not self.array]
        if self.device_ptr is not None:
            self.memory.blocks.pop(self.device_ptr, None)


class FakeStream(Stream):
    """Work queued on the stream runs at ``synchronize()``, as asynchronous CUDA work completes."""

    def __init__(self, memory: FakeDeviceMemory) -> None:
        self.queue: List[Callable[[], None]] = []
        self.handle = memory.register(np.zeros(1, np.uint8))
        memory.streams[self.handle] = self

    def synchronize(self) -> None:
        while self.queue:
            self.queue.pop(0)()


class FakeCudaLayer(CudaLayer):
    """edge.cuda.base.CudaLayer over FakeDeviceMemory; every call outside ``activate()`` raises CudaError."""

    name = "fake"

    def __init__(self, compute_capability: Tuple[int, int] = (8, 7), memory: Optional[FakeDeviceMemory] = None,
                 device_name: str = "Orin (fake)", total_memory_bytes: int = 8 << 30) -> None:
        self.memory = memory or DEVICE_MEMORY
        self.info = DeviceInfo(0, device_name, tuple(compute_capability), total_memory_bytes, True)
        self.calls: List[str] = []
        self._owned: List[Any] = []
        self.closed = False

    def _check(self, call: str) -> None:
        self.calls.append(call)
        if self.closed:
            raise CudaError(f"{call}: the CUDA layer is closed")
        if not self.memory.is_active():
            raise CudaError(f"{call}: cudaErrorInvalidContext (called outside activate() on this thread)")

    def device(self) -> DeviceInfo:
        return self.info

    @contextlib.contextmanager
    def activate(self) -> Iterator[None]:
        local = self.memory._local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            yield
        finally:
            local.depth -= 1

    def alloc_device(self, nbytes: int) -> FakeDeviceBuffer:
        self._check(f"alloc_device({nbytes})")
        self._owned.append(FakeDeviceBuffer(self.memory, int(nbytes)))
        return self._owned[-1]

    def alloc_host(self, shape: Tuple[int, ...], dtype: Any, mapped: bool = False) -> FakeHostBuffer:
        self._check(f"alloc_host({tuple(shape)}, {np.dtype(dtype).name}, mapped={mapped})")
        self._owned.append(FakeHostBuffer(self.memory, tuple(shape), dtype, mapped))
        return self._owned[-1]

    def stream(self) -> FakeStream:
        self._check("stream()")
        return FakeStream(self.memory)

    def copy_to_device(self, dst_ptr: int, src: np.ndarray, stream: Stream) -> None:
        self._check(f"copy_to_device({src.nbytes})")
        if not self.memory.is_pinned(src):
            raise CudaError("copy_to_device: src must be page-locked (a HostBuffer's array)")
        target = self.memory.view(dst_ptr, src.nbytes)
        stream.queue.append(lambda: target.__setitem__(slice(None), np.ascontiguousarray(src).reshape(-1).view("u1")))

    def copy_to_host(self, dst: np.ndarray, src_ptr: int, stream: Stream) -> None:
        self._check(f"copy_to_host({dst.nbytes})")
        if not self.memory.is_pinned(dst):
            raise CudaError("copy_to_host: dst must be page-locked (a HostBuffer's array)")
        source = self.memory.view(src_ptr, dst.nbytes)
        stream.queue.append(lambda: dst.reshape(-1).view(np.uint8).__setitem__(slice(None), source))

    def close(self) -> None:
        for item in self._owned:
            item.free()
        self._owned.clear()
        self.closed = True


# ---------------------------------------------------------------- the fake tensorrt module
def _fmt(arg: Any) -> str:
    if isinstance(arg, enum.Enum):
        return arg._name_
    if isinstance(arg, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(arg))} bytes>"
    if isinstance(arg, (int, float, str, tuple, list, type(None), bool)):
        return repr(tuple(arg) if isinstance(arg, list) else arg)
    return f"<{type(arg).__name__}>"


class FakeTensorRT:
    """One installed fake: the module, the knobs, the ``calls`` list and what the builds did."""

    def __init__(self, version: str, out_of_memory: bool = False, fast_fp16: bool = True, build_fails: bool = False,
                 unsupported_ops: Sequence[str] = (), compute_capability: Tuple[int, int] = (8, 7),
                 dla_cores: int = 0, build_gate: Optional[threading.Event] = None, gate_timeout_s: float = 30.0,
                 memory: Optional[FakeDeviceMemory] = None, require_active_context: bool = True,
                 cuda_fails: bool = False, numpy_version: Optional[Tuple[int, int]] = None) -> None:
        self.version_string = VERSIONS.get(version, version)
        self.version = tuple(int(x) for x in self.version_string.split(".")[:2])
        self.out_of_memory, self.fast_fp16, self.build_fails = out_of_memory, fast_fp16, build_fails
        self.unsupported_ops = set(unsupported_ops)
        self.compute_capability = tuple(compute_capability)
        self.dla_cores, self.build_gate, self.gate_timeout_s = dla_cores, build_gate, gate_timeout_s
        self.memory = memory or DEVICE_MEMORY
        self.require_active_context = require_active_context
        self.cuda_fails = cuda_fails  # trt.Builder / trt.Runtime cannot start CUDA (no GPU, old driver)
        # the numpy TensorRT's own helpers see (nptype): None = the installed one; (1, 24) models 1.24-1.26,
        # which removed the np.bool alias (numpy's own code needs it under numpy 2, so it cannot be deleted)
        self.numpy_version = numpy_version or tuple(int(x) for x in np.__version__.split(".")[:2])
        self.calls: List[str] = []
        self.log: List[Tuple[str, str]] = []
        self.builds: List[Dict[str, Any]] = []  # per build: flags, precision, cache_hits, calibration batches
        self.module = make_module(self)

    def rec(self, name: str, *args: Any) -> None:
        self.calls.append(f"{name}({', '.join(_fmt(a) for a in args)})")

    def called(self, prefix: str) -> List[str]:
        """The recorded calls that start with ``prefix`` (e.g. "IBuilderConfig.set_flag")."""
        return [c for c in self.calls if c.startswith(prefix)]

    def index(self, prefix: str) -> int:
        """Position of the first call starting with ``prefix`` (ValueError when never called)."""
        for i, call in enumerate(self.calls):
            if call.startswith(prefix):
                return i
        raise ValueError(f"{prefix} was never called; calls: {self.calls}")

    def has(self, since: Tuple[int, int] = (0, 0), until: Tuple[int, int] = (99, 0)) -> bool:
        return since <= self.version < until

    def deprecated(self, name: str, since: Tuple[int, int]) -> None:
        if self.version >= since:
            warnings.warn(f"{name} is deprecated (TensorRT {since[0]}.{since[1]})", DeprecationWarning, stacklevel=3)

    def emit(self, logger: Any, severity: Any, message: str) -> None:
        """Send one log line through a TensorRT logger, as the library does."""
        self.log.append((severity.name, message))
        if logger is not None:
            logger.log(severity, message)

    def plan_header(self, plan: bytes) -> Optional[Dict[str, Any]]:
        """The JSON header of a fake plan (None when the bytes are not one)."""
        data = bytes(plan)
        if not data.startswith(MAGIC):
            return None
        (size,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
        return json.loads(data[len(MAGIC) + 4:len(MAGIC) + 4 + size].decode())

    def cuda_layer(self, **kwargs: Any) -> FakeCudaLayer:
        """A FakeCudaLayer on this fake's memory and GPU."""
        kwargs.setdefault("compute_capability", self.compute_capability)
        return FakeCudaLayer(memory=self.memory, **kwargs)


# ---------------------------------------------------------------- the module, per version
def make_module(fake: Any) -> types.ModuleType:
    """Build the ``tensorrt`` module that ``fake``'s version has."""
    has, m = fake.has, types.ModuleType("tensorrt")
    m.__version__, m.__file__ = fake.version_string, __file__
    fake.module = m

    def variant(cls: type, name: str, drop: Sequence[str] = (), bases: Tuple[type, ...] = (object,)) -> type:
        body = {k: v for k, v in vars(cls).items() if k not in drop and k not in ("__dict__", "__weakref__")}
        body["_f"] = fake
        return type(name, bases, body)

    def numbered(name: str, base: Any = _TrtEnum) -> Any:
        return make_enum(base, name, fake.version)

    severity = numbered("Severity")
    m.ILogger = variant(_ILogger, "ILogger")
    m.ILogger.Severity = severity
    m.Logger = variant(_Logger, "Logger", bases=(m.ILogger,))
    for level in severity:
        setattr(m.ILogger, level.name, level)
    for name in ("BuilderFlag", "NetworkDefinitionCreationFlag", "MemoryPoolType", "DeviceType", "ProfilingVerbosity",
                 "LayerInformationFormat", "TensorIOMode", "DataType"):
        if has(ENUM_SINCE.get(name, (0, 0))):
            setattr(m, name, numbered(name))
    # 8.6 and 10.x bind ErrorCode.name as a method returning "ErrorCode.X"; 11.x as a property
    m.ErrorCode = numbered("ErrorCode", _TrtEnum if has((11, 0)) else _MethodNameEnum)
    m.ParserError = variant(_ParserError, "ParserError",
                            () if has((10, 0)) else ("node_name", "node_operator", "local_function_stack"))
    m.INetworkDefinition = variant(_Network, "INetworkDefinition")
    m.OnnxParser = variant(_OnnxParser, "OnnxParser")
    m.IOptimizationProfile = variant(_Profile, "IOptimizationProfile")
    m.ITimingCache = variant(_TimingCache, "ITimingCache")
    drop = ["max_workspace_size"] * has((10, 0)) + ["set_memory_pool_limit", "get_memory_pool_limit"] * has(
        until=(8, 4)) + ["int8_calibrator", "set_calibration_profile", "get_calibration_profile"] * has((11, 0))
    m.IBuilderConfig = variant(_Config, "IBuilderConfig", drop)
    drop = ["platform_has_fast_fp16", "platform_has_fast_int8"] * has((11, 0)) + ["build_engine"] * has((10, 0))
    m.Builder = variant(_Builder, "Builder", drop + ["build_engine_with_config"] * has(until=(10, 6)))
    if has(until=(11, 0)):
        m.CalibrationAlgoType = numbered("CalibrationAlgoType")
        m.IInt8Calibrator = variant(_Calibrator, "IInt8Calibrator")
        m.IInt8EntropyCalibrator2 = variant(_Calibrator, "IInt8EntropyCalibrator2", bases=(m.IInt8Calibrator,))
    for name, cls, dropped in runtime_classes(fake):
        setattr(m, name, variant(cls, name, dropped))
    m.IHostMemory, m.Dims = IHostMemory, Dims
    m.init_libnvinfer_plugins = lambda logger, namespace: fake.rec("init_libnvinfer_plugins", namespace) or True
    m.volume = lambda shape: int(np.prod(list(shape), dtype=np.int64))

    full_version = tuple(int(x) for x in fake.version_string.split(".")[:3])

    def nptype(trt_type: Any) -> Any:
        if full_version < (8, 5, 3):
            # tensorrt/__init__.py of 8.2.1 and 8.5.2 builds this table on every call with np.bool, which
            # numpy 1.24-1.26 removed: AttributeError for any type (np.bool_ from 8.5.3.1, commit b0c259a7)
            if (1, 24) <= fake.numpy_version < (2, 0):
                raise AttributeError("module 'numpy' has no attribute 'bool'.\n`np.bool` was a deprecated alias for "
                                     "the builtin `bool`. To avoid this error in existing code, use `bool` by itself.")
            table = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "BOOL": np.bool_}
            if has((8, 5)):
                table["UINT8"] = np.uint8
        else:
            table = {k: v for k, v in NUMPY.items() if k != "INT64" or has((10, 0))}
        if trt_type.name not in table:
            raise TypeError("Could not resolve TensorRT datatype to an equivalent numpy datatype.")
        return table[trt_type.name]

    m.nptype = nptype
    return m


def install_fake(monkeypatch: Any, version: str, **knobs: Any) -> FakeTensorRT:
    """Install a fake ``tensorrt`` of ``version`` ("8.5", "10.3", "11.1", ...) as sys.modules["tensorrt"].

    Knobs: out_of_memory, fast_fp16, build_fails, unsupported_ops, compute_capability, dla_cores,
    build_gate (threading.Event the build waits for), memory, require_active_context, cuda_fails,
    numpy_version (what trt.nptype of 8.2-8.5.2 sees: (1, 24) makes it raise AttributeError as there).
    """
    fake = FakeTensorRT(version, **knobs)
    monkeypatch.setitem(sys.modules, "tensorrt", fake.module)
    return fake


def onnx_bytes(path: Path) -> bytes:
    """Bytes of an ONNX file (helper for tests that build plans by hand)."""
    return Path(path).read_bytes()
