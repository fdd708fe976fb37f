"""PyTorch -> ONNX: an importable ``module:callable`` returning an ``nn.Module`` (with an optional
weights file), or a TorchScript file.

Opsets up to 17 go through torch's TorchScript-based exporter (``dynamo=False``), which still
writes them; newer opsets need torch's dynamo exporter and the ``onnxscript`` package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError, MissingDependency

from .nested import check_leaves_are_tensors, final_names, is_flat, leaf_names, leaves, select

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
    if target.endswith(".py") and not Path(target).is_file():
        raise EdgeError("file not found", fix="check the path", where=target)
    try:
        module = _import_target(target)
    except ImportError as exc:
        fix = ("install what it imports, or fix the import" if target.endswith(".py") else
               "run from the folder that contains the package, or give path/to/file.py:callable")
        raise EdgeError(f"cannot import '{target}' ({exc})", fix=fix, where=spec) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing: their code, their fix
        raise EdgeError(f"importing '{target}' raised {type(exc).__name__}: {_first_line(exc)}",
                        fix=f"run python -c 'import {Path(target).stem}' to see the full error and fix the module",
                        where=spec) from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise EdgeError(f"'{target}' has no callable '{attribute}'", fix="check the name after ':'", where=spec)
    return function


def _import_target(target: str) -> Any:
    if not target.endswith(".py"):
        return importlib.import_module(target)
    path = Path(target)
    module_spec = importlib.util.spec_from_file_location(f"edge_export_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.path.remove(str(path.parent.resolve()))
    return module


def _first_line(exc: BaseException, limit: int = 250) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


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
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:  # noqa: BLE001 - torch.jit.load raises many types for a file that is not TorchScript
            raise EdgeError(f"not a TorchScript file ({_first_line(exc, 200)})",
                            fix="save it with torch.jit.script(model).save(path), or give module:callable "
                            "plus --weights for a state_dict", where=source) from None
        return module.eval()
    build = _import_callable(source)
    try:
        built = build()
    except Exception as exc:  # noqa: BLE001 - the user's builder failed: report it in one line with a fix
        raise EdgeError(f"building the model raised {type(exc).__name__}: {_first_line(exc)}",
                        fix="call the builder in Python to see the full error; it must return the model without "
                        "downloads or arguments", where=source) from None
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
    except Exception as exc:  # noqa: BLE001 - random bytes raise UnpicklingError, zip errors, ...: all "not weights"
        raise EdgeError(f"cannot read the weights: not a PyTorch weights file ({type(exc).__name__})",
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
                    dynamic_batch: bool, input_name: str, output_names: Optional[List[str]],
                    keep_outputs: Optional[List[str]] = None) -> List[int]:
    """Export ``module`` to ``destination`` for one float32 input of ``input_shape``.

    Nested outputs (tuples, lists, dicts) become one ONNX output per tensor, named as
    export/nested.py describes; ``keep_outputs`` exports only the named ones. Returns the indices of
    the exported leaves, for :func:`pytorch_runner`.
    """
    torch = _torch()
    example = torch.zeros(tuple(input_shape), dtype=torch.float32)
    result = _check_runs(module, example, input_shape)
    check_leaves_are_tensors(result, torch.is_tensor, "model output")
    default = leaf_names(result)
    kept = select(default, keep_outputs)
    names = final_names([default[i] for i in kept], output_names)
    if dynamic_batch:
        _check_batch_first([leaf for _, leaf in leaves(result)], kept, names, int(input_shape[0]))
    wrapped = not is_flat(result) or len(kept) != len(default)
    exported = _flattened(module, kept) if wrapped else module
    kwargs: Dict[str, Any] = {"input_names": [input_name], "opset_version": opset, "do_constant_folding": True,
                              "output_names": names}
    if opset <= 17:
        kwargs["dynamo"] = False
        if dynamic_batch:
            kwargs["dynamic_axes"] = {input_name: {0: "batch"}, **{n: {0: "batch"} for n in names}}
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
        with torch.no_grad(), warnings.catch_warnings(), _native_stdout_silenced():
            # the tracer warns about every Python-level shape computation (Keras models have many);
            # the parity check afterwards is what tells whether the export is right
            warnings.simplefilter("ignore")
            torch.onnx.export(exported, (example,), str(destination), **kwargs)
    except Exception as exc:  # noqa: BLE001 - torch raises many types; unsupported operators are user-fixable
        raise _export_error(exc, opset) from None
    finally:
        module.eval()  # the exporter restores the wrapper's training flag, which would reach the model
    _check_graph(destination, WRAPPER_PREFIX if wrapped else None)
    return kept


def _check_batch_first(found: Sequence[Any], kept: Sequence[int], names: Sequence[str], batch: int) -> None:
    """--dynamic-batch marks dimension 0 of every output as the batch: it must be one."""
    for index, name in zip(kept, names):
        shape = list(found[index].shape)
        if not shape or shape[0] != batch:
            raise EdgeError(f"output '{name}' has shape {shape} for a batch of {batch}: it is not batch-first "
                            "(a detector's (K, 4) boxes, a per-image list)", fix="drop --dynamic-batch, or export "
                            "with --keep-outputs only batch-first outputs", where="--dynamic-batch")


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Discard what C++ code writes to file descriptor 1: torch's exporter dumps its whole IR graph
    there on a failed export (its log switch is always on), burying the one-line error."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no usable descriptor 1 (an embedding host): nothing to silence
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


WRAPPER_PREFIX = "model."


def _flattened(module: Any, kept: Sequence[int]) -> Any:
    """``module`` behind a forward that returns the kept leaves of its nested output as a flat tuple."""
    torch = _torch()

    class Flattened(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = module  # attribute name = WRAPPER_PREFIX, stripped from the ONNX afterwards

        def forward(self, x: Any) -> Any:
            found = [leaf for _, leaf in leaves(self.model(x))]
            return tuple(found[i] for i in kept)

    return Flattened().eval()


def _check_graph(path: Path, prefix: Optional[str]) -> None:
    """EdgeError when the traced graph ignores its input; renames initializers 'model.x' -> 'x'
    (``prefix``) so a wrapped model keeps its own parameter names."""
    import onnx

    model = onnx.load(str(path))
    if not model.graph.input:
        raise EdgeError("the exported graph does not use its input: the outputs were traced as constants",
                        fix="remove .item(), .tolist(), .numpy() and Python-number conversions of the input from "
                        "forward(); the tracer records them as fixed values", where="export")
    if not prefix:
        return
    taken = {i.name for i in model.graph.initializer}
    renames = {n: n[len(prefix):] for n in taken if n.startswith(prefix) and n[len(prefix):] not in taken}
    if not renames:
        return
    for initializer in model.graph.initializer:
        initializer.name = renames.get(initializer.name, initializer.name)
    for node in model.graph.node:
        for index, name in enumerate(node.input):
            if name in renames:
                node.input[index] = renames[name]
    onnx.save(model, str(path))


def _check_runs(module: Any, example: Any, input_shape: Sequence[int]) -> Any:
    """Run the model once on ``example``; returns its (possibly nested) output."""
    torch = _torch()
    try:
        with torch.no_grad():
            return module(example)
    except Exception as exc:  # noqa: BLE001 - the user's forward failed: a wrong shape, most often
        raise EdgeError(f"the model does not run on an input of shape {list(input_shape)} "
                        f"({type(exc).__name__}: {_first_line(exc)})",
                        fix="give the shape it was trained on with --input-shape N,C,H,W; a model that takes a "
                        "list of images or several inputs needs a wrapper module taking one (N,C,H,W) tensor",
                        where="--input-shape") from None


def _export_error(exc: Exception, opset: int) -> EdgeError:
    from edge.files import write_error

    unwritable = write_error(exc, "--output", "the exported model")
    if unwritable is not None:
        return unwritable
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else type(exc).__name__
    if "UnsupportedOperator" in type(exc).__name__ or "is not supported" in text or "Unsupported" in text:
        return EdgeError(f"an operator cannot be expressed in ONNX opset {opset} ({first})",
                         fix="export with a newer --opset (17 is the newest TensorRT 8.5 parses), or replace the "
                         "operator in the model", where="--opset")
    return EdgeError(f"torch.onnx.export failed ({type(exc).__name__}: {first})",
                     fix="check the model exports with torch.onnx.export directly; report it if it does",
                     where="export")


def pytorch_runner(module: Any, kept: Optional[Sequence[int]] = None) -> Callable[[np.ndarray], List[np.ndarray]]:
    """A function running the source model on a numpy batch, for the parity check.

    It returns the leaves of the (possibly nested) output in export order; ``kept``: only those.
    """
    torch = _torch()

    def run(batch: np.ndarray) -> List[np.ndarray]:
        with torch.no_grad():
            result = module(torch.from_numpy(np.ascontiguousarray(batch)))
        found = [leaf.detach().cpu().numpy() for _, leaf in leaves(result)]
        return found if kept is None else [found[i] for i in kept]

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
    elements = int(np.prod([float(d) for d in shape]))
    if elements > MAX_INPUT_ELEMENTS:
        raise EdgeError(f"input shape {list(shape)} holds {elements * 4 / 2 ** 30:.3g} GiB of float32, "
                        f"more than the {MAX_INPUT_ELEMENTS * 4 // 2 ** 30} GiB export allows",
                        fix="give the size the model was trained on (e.g. 1,3,640,640)", where="--input-shape")
    return shape


# 2**28 float32 values (1 GiB): 20 times a 4K RGB frame; the export holds several copies of the input
MAX_INPUT_ELEMENTS = 1 << 28
