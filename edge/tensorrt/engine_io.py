"""Engine I/O by tensor name on every TensorRT: the named-tensor API (>= 8.5) or binding indices (8.2).

``engine_io(trt, feats, engine)`` gives an object with one vocabulary for both: the I/O tensors of
optimization profile 0 with their mode, engine shape, dtype and profile shapes; per execution context
``set_input_shape``, ``shape`` (actual, after the inputs are set), ``set_address``, ``unset_inputs``
and ``launch``.
Named I/O maps one to one onto TensorRT >= 8.5 (``set_tensor_address`` + ``execute_async_v3``); the
binding variant keeps the device pointers in binding order and hands them to ``execute_async_v2``
(TensorRT 8.2: the calls and their sources are listed in :mod:`edge.tensorrt.api`). Every call that
reports failure by return value returns that bool; callers turn False into an EdgeError.
"""

from typing import Any, Dict, List, Sequence, Tuple

Shape = Tuple[int, ...]


def _dims(value: Any) -> Shape:
    return tuple(int(d) for d in value)


class NamedIO:
    """TensorRT >= 8.5: ``num_io_tensors``, ``get_tensor_*``, ``set_input_shape``, ``execute_async_v3``."""

    api = "names"

    def __init__(self, trt: Any, engine: Any) -> None:
        self.trt, self.engine, self.context = trt, engine, None
        self.names: List[str] = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]

    def is_input(self, name: str) -> bool:
        """Whether TensorRT reads tensor ``name``."""
        return self.engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT

    def engine_shape(self, name: str) -> Shape:
        """The shape the engine was built with (-1 for a dynamic dimension)."""
        return _dims(self.engine.get_tensor_shape(name))

    def dtype(self, name: str) -> Any:
        """The tensor's ``trt.DataType``."""
        return self.engine.get_tensor_dtype(name)

    def profile(self, name: str, index: int = 0) -> Tuple[Shape, Shape, Shape]:
        """(min, opt, max) of input ``name`` in optimization profile ``index``."""
        low, opt, high = self.engine.get_tensor_profile_shape(name, index)  # (name, profile): >= 8.5's order
        return _dims(low), _dims(opt), _dims(high)

    def bind(self, context: Any) -> "NamedIO":
        """Use ``context`` for the per-context calls below."""
        self.context = context
        return self

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        """Set a (dynamic) input's shape; False when the engine refuses it."""
        return bool(self.context.set_input_shape(name, tuple(shape)))

    def shape(self, name: str) -> Shape:
        """The tensor's actual shape in the context (outputs: computed from the input shapes set)."""
        return _dims(self.context.get_tensor_shape(name))

    def set_address(self, name: str, ptr: int) -> bool:
        """Where TensorRT reads or writes tensor ``name``; False when refused."""
        return bool(self.context.set_tensor_address(name, int(ptr)))

    def unset_inputs(self) -> List[str]:
        """Inputs whose shape the context still lacks (``infer_shapes``; [] when all are set)."""
        return list(self.context.infer_shapes())

    def launch(self, stream_handle: int) -> bool:
        """Enqueue one inference on the stream; False when TensorRT refuses (its log says why)."""
        return bool(self.context.execute_async_v3(int(stream_handle)))


class BindingIO(NamedIO):
    """TensorRT 8.2 (and 8.0): binding indices, ``set_binding_shape``, ``execute_async_v2(bindings, stream)``.

    An engine with P optimization profiles has P x n bindings; profile 0's are the first n, named as the
    ONNX tensors (the others carry a " [profile k]" suffix), and those are the ones used here.
    """

    api = "bindings"

    def __init__(self, trt: Any, engine: Any) -> None:
        self.trt, self.engine, self.context = trt, engine, None
        per_profile = engine.num_bindings // max(1, int(engine.num_optimization_profiles))
        self.names = [engine.get_binding_name(i) for i in range(per_profile)]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.pointers: List[int] = [0] * engine.num_bindings

    def is_input(self, name: str) -> bool:
        """Whether TensorRT reads tensor ``name``."""
        return bool(self.engine.binding_is_input(self.index[name]))

    def engine_shape(self, name: str) -> Shape:
        """The shape the engine was built with (-1 for a dynamic dimension)."""
        return _dims(self.engine.get_binding_shape(self.index[name]))

    def dtype(self, name: str) -> Any:
        """The tensor's ``trt.DataType``."""
        return self.engine.get_binding_dtype(self.index[name])

    def profile(self, name: str, index: int = 0) -> Tuple[Shape, Shape, Shape]:
        """(min, opt, max) of input ``name`` in optimization profile ``index``."""
        low, opt, high = self.engine.get_profile_shape(index, self.index[name])  # (profile, binding): 8.x's order
        return _dims(low), _dims(opt), _dims(high)

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        """Set a (dynamic) input's shape; False when the engine refuses it."""
        return bool(self.context.set_binding_shape(self.index[name], tuple(shape)))

    def shape(self, name: str) -> Shape:
        """The tensor's actual shape in the context (outputs: computed from the input shapes set)."""
        return _dims(self.context.get_binding_shape(self.index[name]))

    def set_address(self, name: str, ptr: int) -> bool:
        """Where TensorRT reads or writes tensor ``name`` (kept for execute_async_v2's bindings list)."""
        if name not in self.index:
            return False
        self.pointers[self.index[name]] = int(ptr)
        return True

    def unset_inputs(self) -> List[str]:
        """Inputs whose shape the context still lacks ([] when ``all_binding_shapes_specified``)."""
        if self.context.all_binding_shapes_specified:
            return []
        inputs = [n for n in self.names if self.is_input(n)]
        return ([n for n in inputs if any(d < 0 for d in self.shape(n))]
                or [n for n in inputs if any(d < 0 for d in self.engine_shape(n))] or inputs)

    def launch(self, stream_handle: int) -> bool:
        """Enqueue one inference on the stream; False when TensorRT refuses (its log says why)."""
        return bool(self.context.execute_async_v2(list(self.pointers), int(stream_handle)))


def engine_io(trt: Any, feats: Any, engine: Any) -> NamedIO:
    """The I/O adapter for ``engine``: named tensors where TensorRT has them (>= 8.5), else bindings."""
    return NamedIO(trt, engine) if feats.named_io else BindingIO(trt, engine)


def engine_tensors(trt: Any, engine: Any) -> List[Dict[str, Any]]:
    """The I/O tensors of a deserialized engine on any supported TensorRT: name, "input"/"output", engine shape
    (-1 = dynamic) and dtype ("float", "half", ... as DataType names it, lower case) - what ``inspect`` lists."""
    from edge.tensorrt.api import enum_name, features

    tensors = engine_io(trt, features(trt), engine)
    return [{"name": name, "mode": "input" if tensors.is_input(name) else "output",
             "shape": list(tensors.engine_shape(name)), "dtype": enum_name(tensors.dtype(name)).lower()}
            for name in tensors.names]
