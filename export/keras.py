"""Keras -> ONNX: ``.keras`` files and legacy ``.h5`` files, through Keras 3 on the torch backend.

On the torch backend a Keras model is a ``torch.nn.Module``, so it goes through the same
exporter as PyTorch models, with no TensorFlow install (which would cost ~600 MB in CI and on
a training laptop). Keras models take channels-last input: the ONNX input stays NHWC.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from edge.errors import EdgeError, MissingDependency

from .nested import leaves

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise MissingDependency("keras", "Keras export",
                                "pip install keras torch (Keras 3 on the torch backend)") from None
    if keras.backend.backend() != "torch":
        raise EdgeError(f"Keras is running on the '{keras.backend.backend()}' backend",
                        fix="set KERAS_BACKEND=torch before Python starts (export KERAS_BACKEND=torch)",
                        where="keras")
    return keras


def load_keras(path: Path) -> Any:
    """Load a .keras or legacy .h5 model (not compiled: only inference is needed)."""
    keras = _keras()
    if not path.is_file():
        raise EdgeError("Keras model file not found", fix="check the path", where=str(path))
    try:
        model = keras.models.load_model(str(path), compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras, h5py and zipfile raise many types for a bad or foreign file
        first = str(exc).strip().splitlines()[0][:250] if str(exc).strip() else type(exc).__name__
        raise EdgeError(f"Keras cannot load this file ({first})",
                        fix="save the model with model.save('model.keras'); custom layers must be importable",
                        where=str(path)) from None
    model.eval()
    return model


def keras_input_shape(model: Any) -> Tuple[int, ...]:
    """The model's image input shape with batch 1, e.g. (1, 28, 28, 1)."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        raise EdgeError(f"the Keras model has {len(inputs)} inputs; edge exports single-image models",
                        fix="export a model with one image input", where="keras")
    dims = tuple(inputs[0].shape)
    if len(dims) != 4 or any(d is None for d in dims[1:]):
        raise EdgeError(f"the Keras input shape {dims} is not (batch, height, width, channels) with fixed sizes",
                        fix="build the model with keras.Input((H, W, C)), or give --input-shape 1,H,W,C",
                        where="keras")
    return (1,) + tuple(int(d) for d in dims[1:])


def keras_runner(model: Any, kept: Optional[Sequence[int]] = None) -> Callable[[np.ndarray], List[np.ndarray]]:
    """A function running the Keras model on a numpy batch, for the parity check: the leaves of its
    (possibly nested) output in export order (export/nested.py); ``kept``: only those."""
    keras = _keras()

    def run(batch: np.ndarray) -> List[np.ndarray]:
        result = model(np.ascontiguousarray(batch), training=False)
        found = [np.asarray(keras.ops.convert_to_numpy(leaf)) for _, leaf in leaves(result)]
        return found if kept is None else [found[i] for i in kept]

    return run
