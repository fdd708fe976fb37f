"""The fake ``build_serialized_network`` and the runtime side (Runtime, ICudaEngine, IExecutionContext,
EngineInspector) of the fake ``tensorrt`` module; see fake_tensorrt.py for what is modelled.
"""

import json
import struct
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from fake_tensorrt_classes import (
    FORMATS_8,
    LAYER_TYPES,
    MAGIC,
    NUMPY,
    OOM_LINES,
    Dims,
    IHostMemory,
    _recorded,
    start_cuda,
)


def _error(fake: Any, logger: Any, message: str) -> None:
    fake.emit(logger, fake.module.ILogger.Severity.ERROR, message)


def _check_profiles(fake: Any, logger: Any, network: Any, config: Any) -> bool:
    dynamic = [t for t in network._inputs if any(d < 0 for d in t.shape)]
    if dynamic and not config.profiles:
        _error(fake, logger, "4: [network.cpp::validate::3162] Error Code 4: Internal Error (Network has dynamic or "
                             "shape inputs, but no optimization profile has been defined.)")
        return False
    for index, profile in enumerate(config.profiles):
        for tensor in dynamic:
            shapes = profile.shapes.get(tensor.name)
            fits = shapes and all(len(s) == len(tensor.shape) and all(d < 0 or d == x for d, x in zip(tensor.shape, s))
                                  for s in shapes)
            if not fits:
                _error(fake, logger, f"4: [network.cpp::validate::3191] Error Code 4: Internal Error ({tensor.name}: "
                                     f"dynamic input is missing dimensions in profile {index}.)")
                return False
    return True


def _calibrate(fake: Any, logger: Any, network: Any, config: Any, record: Dict[str, Any]) -> bool:
    calibrator = config._calibrator
    if not getattr(calibrator, "_trt_init", False):
        raise TypeError("IInt8EntropyCalibrator2.__init__() must be called when overriding __init__")
    shapes = {}
    for tensor in network._inputs:
        shape = tuple(tensor.shape)
        if any(d < 0 for d in shape):
            profile = config.calibration_profile
            if profile is None:
                _error(fake, logger, "2: [calibrator.cpp::calibrate] Error Code 2: Internal Error (Calibration profile "
                                     "must be provided when calibration network has dynamic shapes.)")
                return False
            shape = tuple(profile.shapes[tensor.name][1])
        shapes[tensor.name] = (shape, np.dtype(NUMPY[tensor.dtype.name]))
    record["calibration_batch_size"] = calibrator.get_batch_size()
    cache = calibrator.read_calibration_cache()
    record["calibration_cache_read"] = bool(cache)
    if cache:
        return True
    names = list(shapes)
    batches: List[Dict[str, np.ndarray]] = record.setdefault("calibration_batches", [])
    while True:
        pointers = calibrator.get_batch(names)
        if not pointers:
            break
        batch = {}
        for name, ptr in zip(names, pointers):
            shape, dtype = shapes[name]
            raw = fake.memory.view(int(ptr), int(np.prod(shape)) * dtype.itemsize)
            batch[name] = raw.view(dtype).reshape(shape).copy()
        batches.append(batch)
    if not batches:
        _error(fake, logger, "2: [calibrator.cpp::calibrateEngine] Error Code 2: Internal Error (Calibration failure "
                             "occurred with no scaling factors detected.)")
        return False
    major, minor = fake.version
    lines = [f"TRT-{major}{minor:01d}0{fake.version_string.split('.')[2]}-EntropyCalibration2"]
    for name in names:
        peak = max(float(np.abs(b[name]).max()) for b in batches) or 1.0
        lines.append(f"{name}: {struct.pack('>f', peak / 127.0).hex()}")
    calibrator.write_calibration_cache(memoryview(("\n".join(lines) + "\n").encode()))
    return True


def _precision(fake: Any, logger: Any, network: Any, config: Any, record: Dict[str, Any]) -> Optional[str]:
    """"Float", "Half" or "Int8" for the compute layers; None when the build fails."""
    if fake.version >= (11, 0):  # strongly typed: the ONNX types decide
        return "Int8" if network.qdq else "Half" if network.float16 else "Float"
    if config.get_flag(fake.module.BuilderFlag.INT8):
        if network.qdq:
            return "Int8"
        if config._calibrator is not None:
            return "Int8" if _calibrate(fake, logger, network, config, record) else None
        fake.emit(logger, fake.module.ILogger.Severity.WARNING, "Calibrator is not being used. Users must provide "
                  "dynamic range for all tensors that are not Int32 or Bool.")
    if config.get_flag(fake.module.BuilderFlag.FP16) and fake.fast_fp16:
        return "Half"
    return "Float"


def _layers(network: Any, precision: str) -> List[Dict[str, Any]]:
    def tensor(name: str, kind: str) -> Dict[str, Any]:
        return {"Name": name, "Dimensions": network.dims.get(name, []), "kind": kind}

    layers = []
    for tensor_in in network._inputs:
        if precision != "Float" and tensor_in.dtype.name == "FLOAT":
            layers.append({"Name": f"Reformatting CopyNode for Input Tensor 0 to {network._nodes[0][0]}",
                           "LayerType": "Reformat", "Inputs": [tensor(tensor_in.name, "Float")],
                           "Outputs": [tensor(tensor_in.name + " copy", precision)]})
    for name, op, inputs, outputs in network._nodes:
        layers.append({"Name": name, "LayerType": LAYER_TYPES.get(op, op),
                       "Inputs": [tensor(i, precision) for i in inputs],
                       "Outputs": [tensor(o, precision) for o in outputs], "TacticName": f"fake_{op.lower()}"})
    return layers


def build(fake: Any, logger: Any, network: Any, config: Any) -> Optional[IHostMemory]:
    """The fake builder: validate like TensorRT, then write a plan that embeds the ONNX model."""
    m = fake.module
    record: Dict[str, Any] = {"flags": sorted(config._flags), "pools": dict(config.pools)}
    fake.builds.append(record)
    if not network.onnx:
        _error(fake, logger, "4: [network.cpp::validate::2789] Error Code 4: Internal Error (Network must have at "
                             "least one output)")
        return None
    if not _check_profiles(fake, logger, network, config):
        return None
    if network.runtime_scales:  # the parser takes a computed scale; the layer needs a build-time constant
        _error(fake, logger, f"4: [network.cpp::validate] Error Code 4: Internal Error ({network.runtime_scales[0]}: "
                             "the scale of a Quantize/Dequantize layer must be a build-time constant.)")
        return None
    dla = config._device == m.DeviceType.DLA
    if dla and not 0 <= config._dla < fake.dla_cores:
        _error(fake, logger, f"2: [builder.cpp::buildSerializedNetwork] Error Code 2: Internal Error (DLA core "
                             f"{config._dla} requested but this platform has {fake.dla_cores} DLA cores)")
        return None
    if fake.build_gate is not None and not fake.build_gate.wait(fake.gate_timeout_s):
        _error(fake, logger, "fake build gate was never opened")
        return None
    if fake.out_of_memory or fake.build_fails:
        for line in OOM_LINES if fake.out_of_memory else ("2: [builder.cpp::buildSerializedNetwork] Error Code 2: "
                                                          "Internal Error (Assertion engine != nullptr failed.)",):
            _error(fake, logger, line)
        return None
    precision = _precision(fake, logger, network, config, record)
    if precision is None:
        return None
    layers = _layers(network, precision)
    keys = {f"{layer['LayerType']}:{layer['Name']}:{precision}" for layer in layers}
    if config.cache is not None:
        record["timing_cache_hits"] = len(keys & config.cache.entries)
        config.cache.entries |= keys
    record["precision"] = precision
    profiles = [{n: [list(s) for s in shapes] for n, shapes in p.shapes.items()} for p in config.profiles]
    io = [{"name": t.name, "mode": mode, "shape": list(t.shape), "dtype": t.dtype.name}
          for mode, group in (("INPUT", network._inputs), ("OUTPUT", network._outputs)) for t in group]
    header = {"version": fake.version_string, "cc": list(fake.compute_capability), "device": "DLA" if dla else "GPU",
              "verbosity": config._verbosity.name, "io": io, "profiles": profiles, "layers": layers}
    blob = json.dumps(header).encode()
    return IHostMemory(MAGIC + struct.pack("<I", len(blob)) + blob + network.onnx)


# ---------------------------------------------------------------- runtime side
class _Runtime:
    logger: Any = None
    _dla = -1
    DLA_core = _recorded("_dla", "Runtime.DLA_core")
    num_DLA_cores = property(lambda self: self._f.dla_cores)

    def __init__(self, logger: Any) -> None:
        start_cuda(self._f, logger, "Runtime")
        self.logger = logger

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
        f, data = self._f, bytes(serialized_engine)
        f.rec("Runtime.deserialize_cuda_engine", data)
        header = f.plan_header(data)
        if header is None:
            message = ("1: [stdArchiveReader.cpp::StdArchiveReader::32] Error Code 1: Serialization (Serialization "
                       "assertion magicTagRead == kMAGIC_TAG failed.Magic tag does not match)")
        elif header["version"] != f.version_string:
            message = (f"6: The engine plan file is not compatible with this version of TensorRT, expecting library "
                       f"version {f.version_string} got {header['version']}, please rebuild.")
        elif tuple(header["cc"]) != f.compute_capability:
            message = ("6: The engine plan file is generated on an incompatible device, expecting compute "
                       "{}.{} got compute {}.{}, please rebuild.".format(*f.compute_capability, *header["cc"]))
        else:
            start = len(MAGIC) + 4 + struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])[0]
            return f.module.ICudaEngine(header, data[start:], data)
        _error(f, self.logger, message)
        return None


class _Engine:
    def __init__(self, header: Dict[str, Any], onnx: bytes, plan: bytes) -> None:
        self.header, self.onnx, self.plan = header, onnx, plan
        self.io = header["io"]
        self._by_name = {t["name"]: t for t in self.io}
        self._session: Any = None

    num_io_tensors = property(lambda self: len(self.io))
    num_optimization_profiles = property(lambda self: max(1, len(self.header["profiles"])))
    num_layers = property(lambda self: len(self.header["layers"]))
    name = property(lambda self: "main_graph")
    device_memory_size = property(lambda self: 1 << 20)
    has_implicit_batch_dimension = property(lambda self: False)

    def get_tensor_name(self, index: int) -> str:
        return self.io[index]["name"]

    def get_tensor_mode(self, name: str) -> Any:
        t = self._by_name.get(name)
        return self._f.module.TensorIOMode[t["mode"]] if t else self._f.module.TensorIOMode.NONE

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._by_name[name]["shape"])

    def get_tensor_dtype(self, name: str) -> Any:
        return self._f.module.DataType[self._by_name[name]["dtype"]]

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> List[Dims]:
        profiles = self.header["profiles"]
        if name in self._by_name and self._by_name[name]["mode"] == "INPUT" and not profiles:
            return [Dims(self._by_name[name]["shape"])] * 3
        if profile_index >= len(profiles) or name not in profiles[profile_index]:
            raise RuntimeError(f"get_tensor_profile_shape: {name!r} has no shapes in profile {profile_index}")
        return [Dims(s) for s in profiles[profile_index][name]]

    def create_execution_context(self) -> Any:
        self._f.rec("ICudaEngine.create_execution_context")
        return self._f.module.IExecutionContext(self)

    def create_engine_inspector(self) -> Any:
        self._f.rec("ICudaEngine.create_engine_inspector")
        return self._f.module.EngineInspector(self)

    def serialize(self) -> IHostMemory:
        return IHostMemory(self.plan)

    # the binding API (8.x; deprecated in 8.5, gone in 10.0). P profiles give P x n bindings: binding
    # k*n+i is tensor i of profile k, named "<tensor> [profile k]" for k > 0 (8.2.1 pyCore.cpp, NvInferRuntime.h)
    def _binding(self, binding: Any) -> int:
        """Binding index of an int or a name (the 8.x overloads take either); IndexError/KeyError when unknown."""
        if isinstance(binding, str):
            index = self.get_binding_index(binding)
            if index < 0:
                raise KeyError(f"no binding named {binding!r}")
            return index
        if not 0 <= int(binding) < len(self.io) * self.num_optimization_profiles:
            raise IndexError(f"binding index {binding} out of range")
        return int(binding)

    def _spec(self, binding: Any) -> Dict[str, Any]:
        return self.io[self._binding(binding) % len(self.io)]

    @property
    def num_bindings(self) -> int:
        self._f.deprecated("ICudaEngine.num_bindings", (8, 5))
        return len(self.io) * self.num_optimization_profiles

    @property
    def max_batch_size(self) -> int:  # explicit-batch engines report 1
        self._f.deprecated("ICudaEngine.max_batch_size", (8, 4))
        return 1

    def get_binding_name(self, index: int) -> str:
        self._f.deprecated("ICudaEngine.get_binding_name", (8, 5))
        profile = self._binding(int(index)) // len(self.io)
        return self._spec(index)["name"] + (f" [profile {profile}]" if profile else "")

    def get_binding_index(self, name: str) -> int:
        self._f.deprecated("ICudaEngine.get_binding_index", (8, 5))
        base, _, suffix = name.partition(" [profile ")
        profile = int(suffix.rstrip("]")) if suffix.rstrip("]").isdigit() else 0 if not suffix else -1
        names = [t["name"] for t in self.io]
        if base not in names or not 0 <= profile < self.num_optimization_profiles:
            return -1
        return profile * len(names) + names.index(base)

    def get_binding_shape(self, binding: Any) -> Dims:
        self._f.deprecated("ICudaEngine.get_binding_shape", (8, 5))
        return Dims(self._spec(binding)["shape"])

    def get_binding_dtype(self, binding: Any) -> Any:
        self._f.deprecated("ICudaEngine.get_binding_dtype", (8, 5))
        return self._f.module.DataType[self._spec(binding)["dtype"]]

    def binding_is_input(self, binding: Any) -> bool:
        self._f.deprecated("ICudaEngine.binding_is_input", (8, 5))
        return self._spec(binding)["mode"] == "INPUT"

    def get_profile_shape(self, profile_index: int, binding: Any) -> List[Dims]:
        """(min, opt, max) of an input binding: profile FIRST, the reverse of get_tensor_profile_shape."""
        self._f.deprecated("ICudaEngine.get_profile_shape", (8, 5))
        spec, profiles = self._spec(binding), self.header["profiles"]
        if spec["mode"] == "INPUT" and not profiles:
            return [Dims(spec["shape"])] * 3
        if not 0 <= profile_index < len(profiles) or spec["name"] not in profiles[profile_index]:
            raise RuntimeError(f"get_profile_shape: binding {binding!r} has no shapes in profile {profile_index}")
        return [Dims(s) for s in profiles[profile_index][spec["name"]]]

    def _compute(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """Compute the outputs on the CPU with ONNX Runtime (what the kernels would produce)."""
        if self._session is None:
            import onnxruntime

            self._session = onnxruntime.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        names = [o.name for o in self._session.get_outputs()]
        return dict(zip(names, self._session.run(names, feeds)))


def runtime_classes(fake: Any) -> List[Tuple[str, type, Sequence[str]]]:
    """(name, class, members this version lacks) for the runtime-side classes."""
    from fake_tensorrt_context import _Context, _Inspector  # noqa: PLC0415

    binding = ["num_bindings", "get_binding_name", "get_binding_index", "get_binding_shape", "get_binding_dtype",
               "binding_is_input", "get_profile_shape", "max_batch_size"]
    named = ["num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
             "get_tensor_profile_shape"]
    ctx_binding = ["set_binding_shape", "get_binding_shape", "execute_async_v2"]
    ctx_named = ["set_input_shape", "get_tensor_shape", "set_tensor_address", "get_tensor_address",
                 "execute_async_v3", "infer_shapes"]
    engine_drop = (binding if fake.has((10, 0)) else []) + (named if fake.has(until=(8, 5)) else []) + (
        ["device_memory_size", "has_implicit_batch_dimension"] if fake.has((11, 0)) else [])
    ctx_drop = (ctx_binding if fake.has((10, 0)) else []) + (ctx_named if fake.has(until=(8, 5)) else [])
    return [("Runtime", _Runtime, ()), ("ICudaEngine", _Engine, engine_drop), ("IExecutionContext", _Context, ctx_drop),
            ("EngineInspector", _Inspector, ())]


def layer_json(fake: Any, layer: Dict[str, Any], shaped: bool) -> Dict[str, Any]:
    """One layer as the DETAILED engine-inspector JSON writes it."""
    def fmt(t: Dict[str, Any]) -> Dict[str, Any]:
        if not shaped:
            text = "N/A due to dynamic shapes"
        else:
            text = FORMATS_8[t["kind"]] if fake.version < (10, 0) else t["kind"]
        return {"Name": t["Name"], "Location": "Device", "Dimensions": t["Dimensions"], "Format/Datatype": text}

    out = {k: v for k, v in layer.items() if k not in ("Inputs", "Outputs")}
    out["Inputs"] = [fmt(t) for t in layer["Inputs"]]
    out["Outputs"] = [fmt(t) for t in layer["Outputs"]]
    return out
