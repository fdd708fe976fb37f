"""ONNX Runtime backends: the CPU provider, and the CUDA and TensorRT execution providers.

``get_available_providers()`` is a compile-time list: a provider whose libraries fail to
load is dropped at session creation with only a log warning. So every backend here checks
``session.get_providers()`` after creating the session, and an explicitly requested GPU
provider that did not load is an error, never a silent CPU run.
"""

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from edge.backends.base import Backend
from edge.backends.ort_placement import capture_placement, placement_note
from edge.errors import EdgeError
from edge.settings import cache_dir

ORT_FIX = "pip install 'edge[cpu]' (or 'edge[gpu]' on an x86 machine with an NVIDIA GPU)"
GPU_FIX = ("install onnxruntime-gpu built for this CUDA (on a Jetson: the wheel for your JetPack from the "
           "Jetson AI Lab index) and uninstall the CPU-only onnxruntime")
PROVIDER_NAMES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "tensorrt": "TensorrtExecutionProvider"}


def _ort():
    import onnxruntime

    return onnxruntime


def _ort_errors() -> Tuple[type, ...]:
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidProtobuf", "InvalidGraph", "NoSuchFile", "InvalidArgument", "RuntimeException",
             "NotImplemented", "EPFail")
    return tuple(getattr(state, n) for n in names if hasattr(state, n)) + (RuntimeError, ValueError)


def provider_options(provider: str, options: Dict[str, Any]) -> Dict[str, Any]:
    """The options passed to one execution provider, from backend options (device, precision, cache)."""
    device_id = int(options.get("device", 0))
    if provider == "tensorrt":
        engines = cache_dir() / "ort-tensorrt"
        return {
            "device_id": device_id,
            "trt_fp16_enable": options.get("precision", "fp16") == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engines),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(engines),
            "trt_max_workspace_size": int(options.get("workspace_mib", 1024)) << 20,
        }
    if provider == "cuda":
        return {"device_id": device_id}
    return {}


#: session config key (ONNX Runtime 1.7+; older builds ignore unknown keys) for the intra-op pool's busy-waiting
SPINNING_KEY = "session.intra_op.allow_spinning"


def set_spinning(session_options: Any, spinning: bool) -> bool:
    """Let the intra-op pool spin between calls or not; False where this ONNX Runtime cannot be told.

    A spinning pool keeps its worker threads busy-waiting for the next run(): a lone benchmark loop gains a
    little, a pipeline loses the cores its capture and drawing threads need (the backend option
    ``spinning: False``, which the camera pipeline passes).
    """
    add = getattr(session_options, "add_session_config_entry", None)
    if add is None:
        return False
    add(SPINNING_KEY, "1" if spinning else "0")
    return True


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime with the best provider this build can really load (TensorRT, CUDA, CPU)."""

    name = "onnxruntime"
    summary = "ONNX Runtime, best provider that loads (TensorRT > CUDA > CPU)"
    #: providers tried, best first; the last one must be CPU unless the backend is GPU-only
    providers: Tuple[str, ...] = ("tensorrt", "cuda", "cpu")
    #: whether a run on a lesser provider than the first is acceptable
    requires_first = False

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        try:
            ort = _ort()
        except ImportError:
            return "the Python module 'onnxruntime' is not installed"
        available = ort.get_available_providers()
        if cls.requires_first and PROVIDER_NAMES[cls.providers[0]] not in available:
            short = ", ".join(p.replace("ExecutionProvider", "") for p in available)
            return f"this onnxruntime build has no {PROVIDER_NAMES[cls.providers[0]]} (it has {short})"
        return None

    @classmethod
    def install_hint(cls) -> str:
        try:
            _ort()
        except ImportError:
            return ORT_FIX
        return GPU_FIX

    def _session_options(self, log_severity: int = 3) -> Any:
        ort = _ort()
        session_options = ort.SessionOptions()
        session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session_options.intra_op_num_threads = int(self.threads or 0)
        session_options.log_severity_level = log_severity  # failures are checked below, not read from logs
        if self.options.get("spinning") is False:
            set_spinning(session_options, False)
        return session_options

    def _wanted(self) -> List[Any]:
        available = _ort().get_available_providers()
        wanted = [p for p in self.providers if PROVIDER_NAMES[p] in available]
        return [(PROVIDER_NAMES[p], provider_options(p, self.options)) for p in wanted]

    def _prepare(self) -> None:
        wanted = self._wanted()
        if any(name == "TensorrtExecutionProvider" for name, _ in wanted):
            (cache_dir() / "ort-tensorrt").mkdir(parents=True, exist_ok=True)
        def create(log_severity: int) -> Any:
            return _ort().InferenceSession(str(self.model_path), sess_options=self._session_options(log_severity),
                                           providers=wanted)

        self.placement: Dict[str, int] = {}
        try:
            if len(wanted) > 1 or self.options.get("report_placement"):  # a GPU provider may share the graph
                self._session, self.placement = capture_placement(create)
            else:
                self._session = create(3)
        except _ort_errors() as exc:
            detail = str(exc).replace("[ONNXRuntimeError] : ", "").strip().splitlines()[0][:300]
            raise EdgeError(f"ONNX Runtime cannot load this model ({detail})",
                            fix="check the file is a complete ONNX model (re-export it), or try --backend opencv",
                            where=str(self.model_path)) from None
        self.active_providers = list(self._session.get_providers())
        first = PROVIDER_NAMES[self.providers[0]]
        if self.requires_first and self.active_providers[0] != first:
            self._session = None
            raise EdgeError(f"{first} is compiled into onnxruntime but did not load (running on "
                            f"{', '.join(self.active_providers)})",
                            fix=f"check CUDA/cuDNN/TensorRT libraries match this onnxruntime build; {GPU_FIX}",
                            where=f"backend {self.name}")
        self.device = {"TensorrtExecutionProvider": "gpu (TensorRT EP)", "CUDAExecutionProvider": "gpu (CUDA EP)"}.get(
            self.active_providers[0], "cpu")
        self._names = [o.name for o in self.outputs]
        note = placement_note(self.placement, self.name)
        if note:
            self.notes.append(note)

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        try:
            return dict(zip(self._names, self._session.run(self._names, feeds)))
        except _ort_errors() as exc:  # e.g. a dynamic model run at a size its graph cannot take
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            shapes = ", ".join(f"{name} {list(array.shape)}" for name, array in feeds.items())
            raise EdgeError(f"ONNX Runtime failed to run the model on {shapes} ({first[:300]})",
                            fix="check the input size in the edge config against the model (YOLO sizes are "
                                "multiples of its stride, usually 32); edge-export inspect MODEL shows its "
                                "inputs", where=str(self.model_path)) from None

    def _close(self) -> None:
        self._session = None

    def describe(self) -> str:
        cpu_nodes = self.placement.get("CPUExecutionProvider", 0) if len(self.placement) > 1 else 0
        split = f"; {cpu_nodes} of {sum(self.placement.values())} nodes on CPU" if cpu_nodes else ""
        return f"{self.name} ({', '.join(self.active_providers)}{split})"


class OnnxRuntimeCPUBackend(OnnxRuntimeBackend):
    """ONNX Runtime on the CPU provider only."""

    name = "onnxruntime-cpu"
    summary = "ONNX Runtime, CPU execution provider"
    providers = ("cpu",)
    requires_first = True


class OnnxRuntimeCUDABackend(OnnxRuntimeBackend):
    """ONNX Runtime on the CUDA execution provider (nodes it lacks run on the CPU provider)."""

    name = "onnxruntime-cuda"
    summary = "ONNX Runtime, CUDA execution provider"
    providers = ("cuda", "cpu")
    requires_first = True


class OnnxRuntimeTensorRTBackend(OnnxRuntimeBackend):
    """ONNX Runtime on the TensorRT execution provider, engines cached under ~/.cache/edge."""

    name = "onnxruntime-tensorrt"
    summary = "ONNX Runtime, TensorRT execution provider (engine cache in ~/.cache/edge/ort-tensorrt)"
    providers = ("tensorrt", "cuda", "cpu")
    requires_first = True
