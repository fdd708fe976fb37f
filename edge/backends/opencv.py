"""OpenCV DNN backend: the lightest CPU fallback, and the only one on boards without ONNX Runtime."""

from typing import Dict, Optional

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

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        self._net.setInput(feeds[self._input_name])
        results = self._net.forward(self._names)
        return dict(zip(self._names, results))

    def _close(self) -> None:
        self._net = None
