"""The digits classifier: a small CNN for 8x8 grayscale digits (scikit-learn's bundled set).

``build()`` is what ``python -m export onnx models/digits/model.py:build`` imports.
"""

import torch
from torch import nn


def build() -> nn.Module:
    """Two 3x3 convolutions, a 2x2 max-pool and two linear layers: 8x8x1 -> 10 class logits."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    print(f"{count_parameters(build())} parameters")
    print(build()(torch.zeros(1, 1, 8, 8)).shape)
