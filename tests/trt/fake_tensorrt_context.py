"""IExecutionContext and EngineInspector of the fake ``tensorrt`` module (see fake_tensorrt.py)."""

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from fake_tensorrt_build import layer_json
from fake_tensorrt_classes import NUMPY, Dims


class _Context:
    engine: Any = None
    name = ""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.shapes: Dict[str, tuple] = {t["name"]: tuple(t["shape"]) for t in engine.io
                                         if t["mode"] == "INPUT" and all(d >= 0 for d in t["shape"])}
        self.addresses: Dict[str, int] = {}
        self._profile = 0
        self._output_shapes: Dict[tuple, Dict[str, tuple]] = {}

    active_optimization_profile = property(lambda self: self._profile)

    def _log_error(self, message: str) -> None:
        self._f.emit(None, self._f.module.ILogger.Severity.ERROR, message)

    def _inputs(self) -> List[Dict[str, Any]]:
        return [t for t in self.engine.io if t["mode"] == "INPUT"]

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        self._f.rec("IExecutionContext.set_input_shape", name, tuple(shape))
        return self._set_shape(name, shape, "setInputShape")

    def _set_shape(self, name: str, shape: Sequence[int], call: str) -> bool:
        spec = self.engine._by_name.get(name)
        shape = tuple(int(d) for d in shape)
        ok = spec is not None and spec["mode"] == "INPUT" and len(shape) == len(spec["shape"]) and all(
            d < 0 or d == x for d, x in zip(spec["shape"], shape))
        profiles = self.engine.header["profiles"]
        if ok and profiles and name in profiles[self._profile]:
            low, _, high = profiles[self._profile][name]
            ok = all(a <= x <= b for a, x, b in zip(low, shape, high))
        if not ok:
            self._log_error(f"3: [executionContext.cpp::{call}] Error Code 3: API Usage Error (Parameter check "
                            f"failed, condition: {name} shape {shape} is within the profile's min/max)")
            return False
        self.shapes[name] = shape
        return True

    def _missing(self) -> List[str]:
        return [t["name"] for t in self._inputs() if t["name"] not in self.shapes]

    def infer_shapes(self) -> List[str]:
        return self._missing()

    all_binding_shapes_specified = property(lambda self: not self._missing())

    def get_tensor_shape(self, name: str) -> Dims:
        return self._shape_of(name)

    def _shape_of(self, name: str) -> Dims:
        spec = self.engine._by_name[name]
        if spec["mode"] == "INPUT":
            return Dims(self.shapes.get(name, spec["shape"]))
        if all(d >= 0 for d in spec["shape"]) or self._missing():
            return Dims(spec["shape"])
        key = tuple(sorted(self.shapes.items()))
        if key not in self._output_shapes:
            feeds = {t["name"]: np.zeros(self.shapes[t["name"]], NUMPY[t["dtype"]]) for t in self._inputs()}
            self._output_shapes[key] = {k: v.shape for k, v in self.engine._compute(feeds).items()}
        return Dims(self._output_shapes[key][name])

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._f.rec("IExecutionContext.set_tensor_address", name)
        if name not in self.engine._by_name:
            self._log_error(f"3: [executionContext.cpp::setTensorAddress] Error Code 3: API Usage Error (Given "
                            f"invalid tensor name: {name})")
            return False
        self.addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        return self.addresses.get(name, 0)

    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        self._f.rec("IExecutionContext.set_optimization_profile_async", profile_index)
        if not 0 <= profile_index < self.engine.num_optimization_profiles:
            # every release checked (8.2.1, 8.5.2, 8.6, 10.3 pyCore.cpp) raises instead of returning False
            self._log_error(f"3: [executionContext.cpp::setOptimizationProfileAsync] Error Code 3: API Usage Error "
                            f"(profile index {profile_index} out of range)")
            raise RuntimeError("Error in set optimization profile async.")
        self._profile = profile_index
        self.shapes = {k: v for k, v in self.shapes.items() if all(d >= 0 for d in self.engine._by_name[k]["shape"])}
        return True

    def _run(self, addresses: Dict[str, int]) -> None:
        memory, feeds = self._f.memory, {}
        for t in self._inputs():
            dtype = np.dtype(NUMPY[t["dtype"]])
            shape = self.shapes[t["name"]]
            feeds[t["name"]] = memory.view(addresses[t["name"]], int(np.prod(shape)) * dtype.itemsize).view(
                dtype).reshape(shape).copy()
        for name, value in self.engine._compute(feeds).items():
            spec = self.engine._by_name[name]
            value = np.ascontiguousarray(value, NUMPY[spec["dtype"]])
            memory.view(addresses[name], value.nbytes)[:] = value.reshape(-1).view(np.uint8)

    def _ready(self, addresses: Dict[str, int]) -> Optional[str]:
        if self._missing():
            return f"input shapes not specified: {self._missing()}"
        unset = [t["name"] for t in self.engine.io if not addresses.get(t["name"])]
        if unset:
            return f"Address is not set for input/output tensors: {unset}"
        if self._f.require_active_context and not self._f.memory.is_active():
            return "cudaErrorInvalidContext: no CUDA context is current on this thread"
        try:
            for t in self.engine.io:
                shape = self._shape_of(t["name"])
                self._f.memory.view(addresses[t["name"]], int(np.prod(shape)) * np.dtype(NUMPY[t["dtype"]]).itemsize)
        except Exception as exc:  # noqa: BLE001 - any bad pointer is an illegal address on the GPU
            return str(exc)
        return None

    def execute_async_v3(self, stream_handle: int) -> bool:
        f = self._f
        f.rec("IExecutionContext.execute_async_v3")
        addresses = dict(self.addresses)
        problem = self._ready(addresses)
        stream = f.memory.streams.get(int(stream_handle))
        if problem is None and stream is None and int(stream_handle) != 0:
            problem = f"cudaErrorInvalidResourceHandle: stream {stream_handle}"
        if problem:
            self._log_error(f"1: [executionContext.cpp::enqueueV3] Error Code 1: {problem}")
            return False
        if stream is None:
            f.emit(None, f.module.ILogger.Severity.WARNING, "Using default stream in enqueueV3() may lead to "
                   "performance issues due to additional calls to cudaStreamSynchronize() by TensorRT to ensure "
                   "correct synchronization. Please use non-default stream instead.")
            self._run(addresses)
        else:
            stream.queue.append(lambda: self._run(addresses))
        return True

    def _binding_addresses(self, bindings: Sequence[int]) -> Tuple[Dict[str, int], Optional[str]]:
        """Addresses of the active profile's bindings (k*n .. k*n+n-1 of a list of num_bindings pointers)."""
        n = len(self.engine.io)
        expected = n * self.engine.num_optimization_profiles
        if len(bindings) < expected:  # TensorRT would read past the list's end
            return {}, f"bindings has {len(bindings)} pointers, the engine has {expected}"
        offset = self._profile * n
        return {t["name"]: int(p) for t, p in zip(self.engine.io, list(bindings)[offset:offset + n])}, None

    def execute_v2(self, bindings: Sequence[int]) -> bool:
        self._f.rec("IExecutionContext.execute_v2")
        addresses, problem = self._binding_addresses(bindings)
        problem = problem or self._ready(addresses)
        if problem:
            self._log_error(f"1: [executionContext.cpp::executeV2] Error Code 1: {problem}")
            return False
        self._run(addresses)
        return True

    def execute_async_v2(self, bindings: Sequence[int], stream_handle: int) -> bool:
        self._f.rec("IExecutionContext.execute_async_v2")
        addresses, problem = self._binding_addresses(bindings)
        problem = problem or self._ready(addresses)
        stream = self._f.memory.streams.get(int(stream_handle))
        if problem or stream is None:
            self._log_error(f"1: [executionContext.cpp::enqueueV2] Error Code 1: {problem or 'invalid stream'}")
            return False
        stream.queue.append(lambda: self._run(addresses))
        return True

    def _active_binding(self, binding: int, call: str) -> Optional[Dict[str, Any]]:
        """The tensor of a binding index of the active profile; None (error logged) for another profile's."""
        n, index = len(self.engine.io), int(binding)
        if not 0 <= index < n * self.engine.num_optimization_profiles or index // n != self._profile:
            self._log_error(f"3: [executionContext.cpp::{call}] Error Code 3: API Usage Error (Parameter check "
                            f"failed, condition: binding {index} belongs to the active profile {self._profile})")
            return None
        return self.engine.io[index % n]

    def set_binding_shape(self, binding: int, shape: Sequence[int]) -> bool:
        self._f.deprecated("IExecutionContext.set_binding_shape", (8, 5))
        self._f.rec("IExecutionContext.set_binding_shape", int(binding), tuple(shape))
        spec = self._active_binding(binding, "setBindingDimensions")
        if spec is None or spec["mode"] != "INPUT":
            return False
        return self._set_shape(spec["name"], shape, "setBindingDimensions")

    def get_binding_shape(self, binding: int) -> Dims:
        self._f.deprecated("IExecutionContext.get_binding_shape", (8, 5))
        spec = self._active_binding(binding, "getBindingDimensions")
        if spec is None:
            return Dims(())  # the C++ call returns Dims{-1, {}} after logging the error
        if spec["mode"] == "INPUT" and spec["name"] not in self.shapes:
            return Dims(spec["shape"])  # a dynamic input not set yet: -1 dims
        return self._shape_of(spec["name"])


class _Inspector:
    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self._context: Any = None

    @property
    def execution_context(self) -> Any:
        return self._context

    @execution_context.setter
    def execution_context(self, context: Any) -> None:
        self._f.calls.append("EngineInspector.execution_context=<IExecutionContext>")
        self._context = context

    def _shaped(self) -> bool:
        inputs = [t for t in self.engine.io if t["mode"] == "INPUT"]
        if all(all(d >= 0 for d in t["shape"]) for t in inputs):
            return True
        return self._context is not None and not self._context._missing()

    def _layer(self, layer: Dict[str, Any], fmt: Any) -> Any:
        verbosity = self.engine.header["verbosity"]
        if fmt.name == "ONELINE":
            return layer["Name"]
        if verbosity != "DETAILED":
            return layer["Name"]
        return layer_json(self._f, layer, self._shaped())

    def get_layer_information(self, layer_index: int, format: Any) -> str:  # noqa: A002 - the binding's name
        self._f.rec("EngineInspector.get_layer_information", layer_index, format)
        info = self._layer(self.engine.header["layers"][layer_index], format)
        return info if isinstance(info, str) else json.dumps(info)

    def get_engine_information(self, format: Any) -> str:  # noqa: A002 - the binding's name
        self._f.rec("EngineInspector.get_engine_information", format)
        layers = [self._layer(layer, format) for layer in self.engine.header["layers"]]
        if format.name == "ONELINE":
            return "\n".join(layers) + "\n"
        bindings = [t["name"] for t in self.engine.io]
        return json.dumps({"Layers": layers, "Bindings": bindings}, indent=1)
