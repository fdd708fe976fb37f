"""Run a serialized TensorRT plan over edge's CUDA layer, on TensorRT 8.2 through 11.x.

The pattern of NVIDIA's ``common_runtime.py`` (brief §1.3): deserialize, one execution context,
one non-default stream, a device buffer and a pinned host buffer per I/O tensor (dynamic inputs
allocated at the optimization profile's MAX), an address for every tensor, then per call the
input shape (when it changes), async H2D, execute, async D2H of each output at its actual shape,
one stream sync. The TensorRT calls go through :mod:`edge.tensorrt.engine_io`: the named-tensor API
(``set_tensor_address`` + ``execute_async_v3``) from 8.5, binding indices (``set_binding_shape`` +
``execute_async_v2``) on 8.2. Every TensorRT call that reports failure by return value is checked
(brief §0 rule 4).

Every CUDA/TensorRT call runs inside ``layer.activate()``, so a runner built on one thread can be
used from another (the pipeline's inference thread), one thread at a time (brief §2.2). On an
integrated GPU (Jetson) ``zero_copy=True`` uses mapped pinned host memory whose device pointer is
given to TensorRT directly: no copies at all.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from edge.cuda.base import CudaLayer
from edge.errors import EdgeError

REBUILD_FIX = "delete it; an engine from the cache is rebuilt on next use (edge-export engine MODEL.onnx --force)"


@dataclass(frozen=True)
class TensorIO:
    """One engine I/O tensor: name, "input"/"output", engine shape (-1 = dynamic), numpy dtype, and for a
    dynamic input the (min, opt, max) shapes of optimization profile 0."""

    name: str
    mode: str
    shape: Tuple[int, ...]
    dtype: np.dtype
    profile: Optional[Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]] = None

    @property
    def is_input(self) -> bool:
        """Whether TensorRT reads this tensor."""
        return self.mode == "input"


@dataclass
class _Buffer:
    io: TensorIO
    host: Any  # HostBuffer: pinned (or mapped) host memory, sized for the largest shape
    device: Any  # DeviceBuffer, or None when zero-copy
    ptr: int  # what TensorRT reads/writes: the device buffer or the mapped host memory's device pointer


class TrtRunner:
    """A deserialized engine with its context, stream and buffers. ``infer`` from one thread at a time."""

    def __init__(self, plan: Union[bytes, str, Path], cuda_layer: CudaLayer, *, zero_copy: Optional[bool] = None,
                 dla_core: Optional[int] = None, where: Optional[str] = None) -> None:
        from edge.tensorrt.api import features, import_tensorrt

        self.trt = import_tensorrt()
        self.where = where or (str(plan) if isinstance(plan, (str, Path)) else "TensorRT plan")
        self.features = features(self.trt)  # EdgeError for a TensorRT older than 8.0
        data = bytes(plan) if isinstance(plan, (bytes, bytearray, memoryview)) else Path(plan).read_bytes()
        self.layer = cuda_layer
        self.device = cuda_layer.device()
        self.zero_copy = bool(zero_copy)
        self.dla_core = dla_core
        if self.zero_copy and not self.device.integrated:
            raise EdgeError(f"zero-copy needs an integrated GPU (a Jetson); {self.device.name} is a discrete GPU",
                            fix="leave zero_copy unset", where=self.where)
        self.io: Tuple[TensorIO, ...] = ()
        self.last_timings_ms: Dict[str, float] = {}
        self._buffers: Dict[str, _Buffer] = {}
        self._shapes: Dict[str, Tuple[int, ...]] = {}
        self.engine = self.context = self.runtime = self.stream = self.tensors = None
        self._closed = False
        with cuda_layer.activate():
            try:
                self._load(data)
            except BaseException:
                self._release()
                raise

    # ------------------------------------------------------------------ loading
    def _load(self, data: bytes) -> None:
        from edge.tensorrt.api import create_runtime
        from edge.tensorrt.engine_io import engine_io

        trt = self.trt
        self.logger = trt.Logger(trt.Logger.WARNING)
        trt.init_libnvinfer_plugins(self.logger, "")  # plans that use NVIDIA's plugins (e.g. EfficientNMS) need it
        self.runtime = create_runtime(trt, self.logger, self.where)
        if self.dla_core is not None:  # a plan built for a DLA core runs on that core
            self.runtime.DLA_core = int(self.dla_core)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise EdgeError(f"plan built for another TensorRT version or GPU, or damaged (this is TensorRT "
                            f"{trt.__version__} on {self.device.name}, compute capability "
                            f"{'.'.join(map(str, self.device.compute_capability))})", fix=REBUILD_FIX, where=self.where)
        self.context = self.engine.create_execution_context()
        if self.context is None:
            raise EdgeError("TensorRT could not create an execution context (out of GPU memory?)",
                            fix="close other GPU programs, or rebuild with a smaller --workspace", where=self.where)
        self.stream = self.layer.stream()
        self.tensors = engine_io(trt, self.features, self.engine).bind(self.context)
        self.io = tuple(self._describe(name) for name in self.tensors.names)
        for tensor in self.io:
            if tensor.profile:  # dynamic input: allocate (and bound the outputs) at the profile's MAX
                self._set_shape(tensor, tensor.profile[2])
            elif tensor.is_input:
                self._shapes[tensor.name] = tensor.shape
        unset = self.tensors.unset_inputs()
        if unset:  # every dynamic input got its profile's MAX above: TensorRT disagrees with the engine's shapes
            raise EdgeError(f"TensorRT still lacks the shapes of inputs {unset} after they were set",
                            fix=REBUILD_FIX, where=self.where)
        for tensor in self.io:
            self._allocate(tensor)

    def _describe(self, name: str) -> TensorIO:
        from edge.tensorrt.api import enum_name, numpy_dtype

        tensors = self.tensors
        is_input = tensors.is_input(name)
        shape = tensors.engine_shape(name)
        dtype = numpy_dtype(tensors.dtype(name))  # never trt.nptype: np.bool on numpy 1.24-1.26 (api.py)
        if dtype is None:
            raise EdgeError(f"tensor '{name}' has type {enum_name(tensors.dtype(name))}, which numpy cannot hold",
                            fix="export the model with float32/float16/int8/int32 inputs and outputs",
                            where=self.where)
        profile = tensors.profile(name, 0) if is_input and any(d < 0 for d in shape) else None
        return TensorIO(name, "input" if is_input else "output", shape, dtype, profile)

    def _allocate(self, tensor: TensorIO) -> None:
        shape = self.tensors.shape(tensor.name)  # outputs: bound by the max inputs
        if any(d < 0 for d in shape):
            raise EdgeError(f"output '{tensor.name}' has a data-dependent shape {list(shape)}, which this runner does "
                            "not support", fix="export the model with static output shapes, or use --backend "
                            "onnxruntime-tensorrt", where=self.where)
        host = self.layer.alloc_host(shape, tensor.dtype, mapped=self.zero_copy)
        device = None
        if self.zero_copy:
            if host.device_ptr is None:
                raise EdgeError("the CUDA layer gave no device pointer for mapped host memory",
                                fix="leave zero_copy unset", where=self.where)
            ptr = int(host.device_ptr)
        else:
            device = self.layer.alloc_device(max(1, host.array.nbytes))
            ptr = int(device.ptr)
        self._buffers[tensor.name] = _Buffer(tensor, host, device, ptr)
        if not self.tensors.set_address(tensor.name, ptr):
            why = "set_tensor_address returned False" if self.tensors.api == "names" else "no binding of that name"
            raise EdgeError(f"TensorRT refused the address of tensor '{tensor.name}' ({why})", fix=REBUILD_FIX,
                            where=self.where)

    def _set_shape(self, tensor: TensorIO, shape: Tuple[int, ...]) -> None:
        if not self.tensors.set_input_shape(tensor.name, shape):
            if tensor.profile:
                low, _, high = tensor.profile
                allowed = f"the engine's profile allows {list(low)} to {list(high)}"
            else:
                allowed = f"the engine's input is fixed at {list(tensor.shape)}"
            raise EdgeError(f"input '{tensor.name}' of shape {list(shape)} does not fit the engine: {allowed}",
                            fix="feed a shape inside that range, or rebuild the engine with a wider --batch/--shape",
                            where=self.where)
        self._shapes[tensor.name] = tuple(shape)

    # ------------------------------------------------------------------ running
    @property
    def inputs(self) -> List[TensorIO]:
        """The input tensors, in engine order."""
        return [t for t in self.io if t.is_input]

    @property
    def outputs(self) -> List[TensorIO]:
        """The output tensors, in engine order."""
        return [t for t in self.io if not t.is_input]

    def infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Run once on named input arrays; returns new arrays per output, at their actual shapes.

        Timings (host-side, ms) of the call go to ``last_timings_ms``: stage (copy into pinned memory),
        enqueue (async copies and the execute call), wait (stream sync) and total.
        """
        if self._closed:
            raise EdgeError("the TensorRT runner is closed", fix="create a new backend", where=self.where)
        start = time.perf_counter()
        with self.layer.activate():
            staged = [self._stage(tensor, feeds) for tensor in self.inputs]
            t_staged = time.perf_counter()
            if not self.zero_copy:
                for buffer, flat in staged:
                    self.layer.copy_to_device(buffer.ptr, flat, self.stream)
            if not self.tensors.launch(self.stream.handle):
                call = "execute_async_v3" if self.tensors.api == "names" else "execute_async_v2"
                raise EdgeError(f"TensorRT failed to run the engine ({call} returned False; its log says why)",
                                fix=REBUILD_FIX, where=self.where)
            results = []
            for tensor in self.outputs:
                shape = self.tensors.shape(tensor.name)
                buffer = self._buffers[tensor.name]
                flat = buffer.host.array.reshape(-1)[:int(np.prod(shape, dtype=np.int64))]
                if not self.zero_copy:
                    self.layer.copy_to_host(flat, buffer.ptr, self.stream)
                results.append((tensor.name, shape, flat))
            t_enqueued = time.perf_counter()
            self.stream.synchronize()  # only now are the outputs in host memory valid
            outputs = {name: flat.reshape(shape).copy() for name, shape, flat in results}
        end = time.perf_counter()
        self.last_timings_ms = {"stage": (t_staged - start) * 1e3, "enqueue": (t_enqueued - t_staged) * 1e3,
                                "wait": (end - t_enqueued) * 1e3, "total": (end - start) * 1e3}
        return outputs

    def _stage(self, tensor: TensorIO, feeds: Dict[str, np.ndarray]) -> Tuple[_Buffer, np.ndarray]:
        """Set the input's shape if it changed and copy it into its pinned buffer; (buffer, filled view)."""
        if tensor.name not in feeds:
            raise EdgeError(f"input '{tensor.name}' is missing (got {', '.join(feeds) or 'nothing'})",
                            fix=f"feed every input: {', '.join(t.name for t in self.inputs)}", where=self.where)
        array = np.asarray(feeds[tensor.name])
        if array.shape != self._shapes.get(tensor.name):
            self._set_shape(tensor, array.shape)
        buffer = self._buffers[tensor.name]
        flat = buffer.host.array.reshape(-1)[:array.size]
        flat[...] = array.reshape(-1)  # casts to the engine's dtype, as the host buffer has it
        return buffer, flat

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Release the context, engine and buffers (inside the layer's context); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self.layer.activate():
            self._release()

    def _release(self) -> None:
        # TensorRT objects go first: nothing may still point into the buffers freed after them.
        self.tensors = self.context = self.engine = self.runtime = None
        for buffer in self._buffers.values():
            if buffer.device is not None:
                buffer.device.free()
            buffer.host.free()
        self._buffers.clear()

    def __enter__(self) -> "TrtRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
