"""OpenCV DNN backend: the lightest CPU fallback, and the only one on boards without ONNX Runtime.

Reduced-precision files (checked with OpenCV 5.0.0 on the face detector written by edge.quantize):

- fp16 (float16 weights, float32 inputs/outputs): loads and runs on the new engine, the default (the
  classic engine refuses CV_16F tensors); outputs within 0.08 of ONNX Runtime's, the same detections.
- int8 ``--target cpu`` (uint8 activations, Q/DQ around every operator with int8 kernels): loads and runs
  on int8 layers; the same detections as ONNX Runtime's int8, logits as far from its as int8 is from fp32.
- int8 ``--target tensorrt`` (int8 activations, only Conv/Gemm inputs quantized): loads, but the first
  forward fails (an int8 max-pool layer is handed a float tensor: pool2_int8_layer.cpp, "inptype ==
  CV_8SC1 || inptype == CV_8UC1"); forcing the classic engine runs it with logits off by 40.

Since OpenCV finds such faults only on the first forward, ``prepare`` runs one forward on zeros for Q/DQ
files: one it cannot run is a one-line error naming ONNX Runtime (``auto`` skips it), not a crash later.
"""

from typing import Any, Dict, Optional

import numpy as np

from edge.backends.base import Backend
from edge.cv import import_cv2
from edge.errors import EdgeError

# Operators whose output sizes depend on the data (detectors with NMS inside, control flow): OpenCV's
# DNN module cannot plan their shapes and has been seen to kill the process (SIGFPE on torchvision's
# SSDLite), which no Python error handling can turn into a message. Refused before loading.
DATA_DEPENDENT_OPERATORS = ("If", "Loop", "NonMaxSuppression", "NonZero", "Scan")


class OpenCVBackend(Backend):
    """cv2.dnn on the CPU. Thread count is process-wide in OpenCV (cv2.setNumThreads)."""

    name = "opencv"
    summary = "OpenCV DNN (cv2.dnn) on the CPU"

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        try:
            import_cv2()
        except ImportError:
            return "the Python module 'cv2' is not installed"
        return None

    @classmethod
    def install_hint(cls) -> str:
        from edge.cv import CV2_FIX

        return CV2_FIX

    def _prepare(self) -> None:
        cv2 = import_cv2()

        dynamic = [op for op in DATA_DEPENDENT_OPERATORS if op in self.operators]
        if dynamic:
            raise EdgeError(f"OpenCV DNN cannot run graphs whose output sizes depend on the data "
                            f"(this one has {', '.join(dynamic)})",
                            fix="use --backend onnxruntime (or tensorrt on a Jetson)", where=str(self.model_path))
        if self.threads:
            cv2.setNumThreads(int(self.threads))
        try:
            self._net = cv2.dnn.readNetFromONNX(str(self.model_path))
        except cv2.error as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise EdgeError(f"OpenCV DNN cannot load this model ({first})",
                            fix="try --backend onnxruntime, or simplify the model (opset <= 17, static shapes)",
                            where=str(self.model_path)) from None
        if len(self.inputs) != 1:
            raise EdgeError(f"OpenCV DNN runs single-input models; this one has {len(self.inputs)} inputs",
                            fix="use --backend onnxruntime", where=str(self.model_path))
        self._input_name = self.inputs[0].name
        self._names = [o.name for o in self.outputs]
        self.device = "cpu"
        if any(op in self.operators for op in ("QuantizeLinear", "DequantizeLinear")):
            self._trial_forward(cv2)  # costs one inference at start-up: only where OpenCV is known to fail late

    def _trial_forward(self, cv2: Any) -> None:
        """One forward on zeros of the input's shape (static, else the edge config's; skipped if unknown)."""
        spec = self.inputs[0]
        config = self.options.get("edge_config")
        shape = tuple(spec.shape)
        if config is not None and len(config.input.shape) == len(shape):
            shape = tuple(d if isinstance(d, int) else c for d, c in zip(shape, config.input.shape))
        if not all(isinstance(d, int) and d > 0 for d in shape):
            return
        try:
            self._infer({self._input_name: np.zeros(shape, dtype=spec.dtype)})
        except cv2.error as exc:
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            first = lines[-1].strip()[:200] if lines else type(exc).__name__
            quantized = any(op in self.operators for op in ("QuantizeLinear", "DequantizeLinear"))
            kind = "this int8 (Q/DQ) model" if quantized else "this model"
            raise EdgeError(f"OpenCV DNN loads {kind} but cannot run it ({first})",
                            fix="use --backend onnxruntime-cpu (ONNX Runtime runs every Q/DQ placement), or for "
                            "OpenCV quantize with edge-export quantize --target cpu" if quantized
                            else "use --backend onnxruntime-cpu",
                            where=str(self.model_path)) from None

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        self._net.setInput(feeds[self._input_name])
        results = self._net.forward(self._names)
        return dict(zip(self._names, results))

    def _close(self) -> None:
        self._net = None
