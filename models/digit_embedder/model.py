"""The digit embedder: a small CNN mapping a 32x32 grey crop to a 64-number embedding.

``build()`` is what ``python -m export onnx models/digit_embedder/model.py:build`` imports: the
embedding network alone (no classifier head); edge L2-normalises its output and compares it
with a gallery by cosine similarity. ``CosineHead`` is the training-only head (CosFace margin).
"""

import torch
from torch import nn

EMBEDDING_SIZE = 64


def _block(inputs: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(),
                         nn.Conv2d(outputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(),
                         nn.MaxPool2d(2))


def build() -> nn.Module:
    """32x32x1 -> 64: three conv blocks (16, 32, 64 channels, each halving the size), then a linear layer."""
    return nn.Sequential(_block(1, 16), _block(16, 32), _block(32, 64), nn.Flatten(),
                         nn.Dropout(0.2), nn.Linear(64 * 4 * 4, EMBEDDING_SIZE))


class CosineHead(nn.Module):
    """Training head: scaled cosine logits with an additive margin on the true class (CosFace)."""

    def __init__(self, classes: int, scale: float = 16.0, margin: float = 0.2) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, EMBEDDING_SIZE) * 0.01)
        self.scale, self.margin = scale, margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = nn.functional.normalize(embeddings) @ nn.functional.normalize(self.weight).t()
        margin = nn.functional.one_hot(labels, cosine.shape[1]).to(cosine.dtype) * self.margin
        return self.scale * (cosine - margin)


if __name__ == "__main__":
    model = build()
    print(sum(p.numel() for p in model.parameters()), "parameters")
    print(model.eval()(torch.zeros(1, 1, 32, 32)).shape)
