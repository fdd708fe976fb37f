"""The PyTorch eager CPU baseline: the model's own torch source, weights from its ONNX file.

Only models with a torch source in the repository have one: the digits classifier
(``models/digits/model.py``'s ``build()``, whose ``state_dict`` names are the ONNX initializer
names). For the others (the shipped face detector is a TFLite conversion, the onnx light zoo
models are bare graphs) a generic ONNX -> torch eager interpreter is out of scope, and their
rows are skipped with :func:`unavailable_reason`'s answer.

:class:`TorchEagerBackend` is an ``edge`` backend (same input checks and timing wrapper as the
others), so its numbers compare like for like; it is not registered in ``edge.backends``.
"""

import importlib.util
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np

from edge.backends.base import Backend
from edge.errors import EdgeError

NAME = "torch-cpu"
ROOT = Path(__file__).resolve().parents[1]
#: model name in the suite -> (torch source file, builder function)
TORCH_SOURCES: Dict[str, Tuple[Path, str]] = {"digits": (ROOT / "models" / "digits" / "model.py", "build")}
NO_SOURCE = ("no PyTorch source for this model in the repository; a generic ONNX-to-PyTorch eager "
             "interpreter is out of scope")


def torch_missing() -> Optional[str]:
    """Why PyTorch cannot run here, or None."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed (pip install torch)"
    return None


def unavailable_reason(model_name: str) -> Optional[str]:
    """Why the torch baseline cannot run ``model_name`` here, or None when it can."""
    missing = torch_missing()
    if missing:
        return missing
    source = TORCH_SOURCES.get(model_name)
    if source is None:
        return NO_SOURCE
    if not source[0].is_file():
        return f"the torch source {source[0]} is missing (run from a checkout)"
    return None


def build_module(source: Path, function: str) -> Any:
    """Import ``source`` by path and call ``function()``: the untrained torch module."""
    spec = importlib.util.spec_from_file_location(f"edge_torch_source_{source.parent.name}", source)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return getattr(module, function)()


def load_onnx_weights(module: Any, onnx_path: Path) -> None:
    """Copy the ONNX initializers into the module's state_dict, matched by name; every entry must be found."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    weights = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    state = module.state_dict()
    missing = [name for name in state if name not in weights]
    if missing:
        raise EdgeError(f"the ONNX file has no initializer for torch parameter(s) {', '.join(missing[:4])}",
                        fix="export the ONNX file from this torch source (edge-export onnx)", where=str(onnx_path))
    loaded = {}
    for name, tensor in state.items():
        array = weights[name]
        if tuple(array.shape) != tuple(tensor.shape):
            raise EdgeError(f"initializer '{name}' is {list(array.shape)} in ONNX but {list(tensor.shape)} in torch",
                            fix="export the ONNX file from this torch source", where=str(onnx_path))
        loaded[name] = torch.from_numpy(np.array(array, copy=True)).to(tensor.dtype)
    module.load_state_dict(loaded)


class TorchEagerBackend(Backend):
    """PyTorch eager mode on the CPU (torch.inference_mode); options: {"model_name": suite name}."""

    name = NAME
    summary = "PyTorch eager on the CPU (models with a torch source only)"

    @classmethod
    def unavailable_reason(cls) -> Optional[str]:
        return torch_missing()

    def _prepare(self) -> None:
        import torch

        model_name = str(self.options.get("model_name", ""))
        reason = unavailable_reason(model_name)
        if reason:
            raise EdgeError(f"torch baseline cannot run '{model_name}': {reason}", where=str(self.model_path))
        if self.threads:
            torch.set_num_threads(int(self.threads))
        source, function = TORCH_SOURCES[model_name]
        self._module = build_module(source, function)
        load_onnx_weights(self._module, self.model_path)
        self._module.eval()
        self._torch = torch
        self._input_name = self.inputs[0].name
        self.device = "cpu"

    def _infer(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        with self._torch.inference_mode():
            out = self._module(self._torch.from_numpy(feeds[self._input_name]))
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        return {name: value.numpy() for name, value in zip(self.output_names, outputs)}

    def _close(self) -> None:
        self._module = None

    def describe(self) -> str:
        """One line: backend and torch version."""
        return f"{self.name} (torch {self._torch.__version__ if hasattr(self, '_torch') else '?'})"
