"""Score activations shared by the decoders, numerically stable for any finite input."""

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Elementwise 1 / (1 + exp(-x)) as float64, without overflow for large |x|."""
    x = np.asarray(logits, dtype=np.float64)
    decay = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay))


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` as float64; subtracting the maximum keeps exp() from overflowing."""
    x = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)
