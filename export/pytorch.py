"""PyTorch -> ONNX: an importable ``module:callable`` returning an ``nn.Module`` (with an optional
weights file), or a TorchScript file.

Opsets up to 17 go through torch's TorchScript-based exporter (``dynamo=False``), which still
writes them; newer opsets need torch's dynamo exporter and the ``onnxscript`` package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError, MissingDependency

TORCH_FIX = "pip install torch (on a training machine; the board only needs the exported .onnx)"
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise MissingDependency("torch", "PyTorch export", TORCH_FIX) from None
    return torch


def _import_callable(spec: str) -> Callable[[], Any]:
    """'package.module:callable' or 'path/to/file.py:callable' -> the callable."""
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise EdgeError(f"'{spec}' is not of the form module:callable",
                        fix="e.g. mypackage.models:build_model or path/to/model.py:build_model", where="SOURCE")
    try:
        if target.endswith(".py"):
            path = Path(target)
            if not path.is_file():
                raise EdgeError("file not found", fix="check the path", where=target)
            module_spec = importlib.util.spec_from_file_location(f"edge_export_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
            sys.path.insert(0, str(path.parent.resolve()))
            try:
                module_spec.loader.exec_module(module)  # type: ignore[union-attr]
            finally:
                sys.path.remove(str(path.parent.resolve()))
        else:
            module = importlib.import_module(target)
    except ImportError as exc:
        raise EdgeError(f"cannot import '{target}' ({exc})",
                        fix="run from the folder that contains the package, or give path/to/file.py:callable",
                        where=spec) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise EdgeError(f"'{target}' has no callable '{attribute}'", fix="check the name after ':'", where=spec)
    return function


def load_pytorch(source: str, weights: Optional[Path] = None) -> Any:
    """The nn.Module to export, in eval mode: from a TorchScript file or a module:callable (+ weights)."""
    torch = _torch()
    path = Path(source)
    if path.suffix.lower() in TORCHSCRIPT_SUFFIXES and ":" not in source:
        if not path.is_file():
            raise EdgeError("TorchScript file not found", fix="check the path", where=source)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still loads
                module = torch.jit.load(str(path), map_location="cpu")
        except (RuntimeError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise EdgeError(f"not a TorchScript file ({first})",
                            fix="save it with torch.jit.script(model).save(path), or give module:callable "
                            "plus --weights for a state_dict", where=source) from None
        return module.eval()
    built = _import_callable(source)()
    if not isinstance(built, torch.nn.Module):
        raise EdgeError(f"the callable returned {type(built).__name__}, not a torch.nn.Module",
                        fix="make it return the model (an nn.Module instance)", where=source)
    if weights is not None:
        _load_weights(built, Path(weights))
    return built.eval()


def _load_weights(module: Any, weights: Path) -> None:
    torch = _torch()
    if not weights.is_file():
        raise EdgeError("weights file not found", fix="check the path", where=str(weights))
    try:
        state = torch.load(str(weights), map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, EOFError, OSError) as exc:
        raise EdgeError(f"cannot read the weights ({type(exc).__name__})",
                        fix="save them with torch.save(model.state_dict(), path)", where=str(weights)) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict):
        raise EdgeError(f"the weights file holds a {type(state).__name__}, not a state_dict",
                        fix="save model.state_dict(), not the whole model", where=str(weights))
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = "; ".join(lines[1:3]) if len(lines) > 1 else lines[0] if lines else "mismatch"
        raise EdgeError(f"the weights do not match the model ({detail[:300]})",
                        fix="use the callable that built the model these weights were trained with",
                        where=str(weights)) from None


def pytorch_to_onnx(module: Any, destination: Path, input_shape: Sequence[int], *, opset: int,
                    dynamic_batch: bool, input_name: str, output_names: Optional[List[str]]) -> Path:
    """Export ``module`` to ``destination`` for one float32 input of ``input_shape``."""
    torch = _torch()
    example = torch.zeros(tuple(input_shape), dtype=torch.float32)
    count = _check_runs(module, example, input_shape)
    if not output_names:
        output_names = ["output"] if count == 1 else [f"output{i}" for i in range(count)]
    elif len(output_names) != count:
        raise EdgeError(f"--output-names gives {len(output_names)} names but the model has {count} outputs",
                        fix=f"give {count} comma-separated names", where="--output-names")
    kwargs: Dict[str, Any] = {"input_names": [input_name], "opset_version": opset, "do_constant_folding": True,
                              "output_names": list(output_names)}
    if opset <= 17:
        kwargs["dynamo"] = False
        if dynamic_batch:
            kwargs["dynamic_axes"] = {input_name: {0: "batch"}, **{n: {0: "batch"} for n in output_names}}
    else:
        try:
            import onnxscript  # noqa: F401
        except ImportError:
            raise MissingDependency("onnxscript", f"exporting opset {opset} (torch's dynamo exporter)",
                                    "pip install onnxscript, or use --opset 17") from None
        kwargs["dynamo"] = True
        if dynamic_batch:
            kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about every Python-level shape computation (Keras models have many);
            # the parity check afterwards is what tells whether the export is right
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), str(destination), **kwargs)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; unsupported operators are user-fixable
        raise _export_error(exc, opset) from None
    return destination


def _check_runs(module: Any, example: Any, input_shape: Sequence[int]) -> int:
    """Run the model once on ``example``; returns how many outputs it gives."""
    torch = _torch()
    try:
        with torch.no_grad():
            result = module(example)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0][:250] if str(exc).strip() else type(exc).__name__
        raise EdgeError(f"the model does not run on an input of shape {list(input_shape)} ({first})",
                        fix="give the shape it was trained on with --input-shape N,C,H,W",
                        where="--input-shape") from None
    return len(result) if isinstance(result, (list, tuple)) else 1


def _export_error(exc: Exception, opset: int) -> EdgeError:
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    if "UnsupportedOperator" in type(exc).__name__ or "is not supported" in text or "Unsupported" in text:
        return EdgeError(f"an operator cannot be expressed in ONNX opset {opset} ({first})",
                         fix="export with a newer --opset (17 is the newest TensorRT 8.5 parses), or replace the "
                         "operator in the model", where="--opset")
    return EdgeError(f"torch.onnx.export failed ({type(exc).__name__}: {first})",
                     fix="check the model exports with torch.onnx.export directly; report it if it does",
                     where="export")


def pytorch_runner(module: Any) -> Callable[[np.ndarray], List[np.ndarray]]:
    """A function running the source model on a numpy batch, for the parity check."""
    torch = _torch()

    def run(batch: np.ndarray) -> List[np.ndarray]:
        with torch.no_grad():
            result = module(torch.from_numpy(np.ascontiguousarray(batch)))
        outputs = result if isinstance(result, (list, tuple)) else [result]
        return [o.detach().cpu().numpy() for o in outputs]

    return run


def input_shape_from(text: Optional[str], configured: Optional[Sequence[Any]]) -> Tuple[int, ...]:
    """--input-shape 'N,C,H,W' (or the edge config's input.shape); EdgeError when neither is given."""
    if text:
        try:
            shape = tuple(int(v) for v in text.replace("x", ",").split(",") if v.strip())
        except ValueError:
            raise EdgeError(f"--input-shape {text!r} is not a list of integers", fix="e.g. --input-shape 1,3,224,224",
                            where="--input-shape") from None
    elif configured:
        shape = tuple(1 if not isinstance(d, int) else d for d in configured)
    else:
        raise EdgeError("a PyTorch model does not record its input shape",
                        fix="give it with --input-shape N,C,H,W (or input.shape in --config)", where="--input-shape")
    if len(shape) != 4 or any(d <= 0 for d in shape):
        raise EdgeError(f"input shape {list(shape)} is not 4 positive sizes",
                        fix="e.g. --input-shape 1,3,224,224 (batch first)", where="--input-shape")
    return shape
