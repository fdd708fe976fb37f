"""The digit detector: a small anchor-free CNN whose output is the YOLOv8 detection layout.

``build()`` is what ``python -m export onnx models/digit_detector/model.py:build`` imports.
Input (1, 3, 192, 192) RGB / 255. Output (1, 4 + 10, 720): for each of the 24x24 stride-8 and
12x12 stride-16 grid points, rows 0-3 are the box centre x, centre y, width and height in
model-input pixels and rows 4-13 the sigmoid score of each digit 0-9 (no objectness row) —
what edge's ``yolo`` decoder (layout "anchor_free") reads, like an Ultralytics YOLOv8 export.

Each grid point predicts its distances to the box's left, top, right and bottom edges
(softplus, in strides) and one logit per class; ``raw()`` returns those for training.
"""

from typing import List, Tuple

import torch
from torch import nn

NUM_CLASSES = 10
STRIDES = (8, 16)
INPUT_HW = (192, 192)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class DigitDetector(nn.Module):
    """Backbone to stride 16, a top-down merge into stride 8, one head per stride."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem = nn.Sequential(_conv(3, 16, 2), _conv(16, 24, 2), _conv(24, 24))  # stride 4
        self.stage8 = nn.Sequential(_conv(24, 48, 2), _conv(48, 48))  # stride 8
        self.stage16 = nn.Sequential(_conv(48, 80, 2), _conv(80, 80))  # stride 16
        self.lateral = nn.Conv2d(80, 48, 1)
        self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
        self.heads = nn.ModuleList([
            nn.Sequential(_conv(48, 48), _conv(48, 48), nn.Conv2d(48, 4 + num_classes, 1)),
            nn.Sequential(_conv(80, 64), nn.Conv2d(64, 4 + num_classes, 1)),
        ])
        for head in self.heads:  # start with low class scores (focal-loss prior), like RetinaNet
            nn.init.constant_(head[-1].bias[4:], -4.6)

    def raw(self, images: torch.Tensor) -> List[torch.Tensor]:
        """Per stride: (B, 4 + C, H, W) — raw edge distances (before softplus) and class logits."""
        x4 = self.stem(images)
        x8 = self.stage8(x4)
        x16 = self.stage16(x8)
        p8 = x8 + self.up(self.lateral(x16))
        return [self.heads[0](p8), self.heads[1](x16)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 4 + C, N): cx, cy, w, h in input pixels, then sigmoid class scores."""
        boxes, logits = decode_raw(self.raw(images))
        xyxy = boxes
        cxcywh = torch.cat([(xyxy[:, 0:2] + xyxy[:, 2:4]) / 2, xyxy[:, 2:4] - xyxy[:, 0:2]], dim=1)
        return torch.cat([cxcywh, torch.sigmoid(logits)], dim=1)


def grid_points(sizes_hw: List[Tuple[int, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(N, 2) cell-centre x, y in input pixels and (N,) stride, over the strides in order."""
    points, strides = [], []
    for (h, w), stride in zip(sizes_hw, STRIDES):
        ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                indexing="ij")
        points.append(torch.stack([xs.reshape(-1), ys.reshape(-1)], 1).add(0.5).mul(stride))
        strides.append(torch.full((h * w,), float(stride)))
    return torch.cat(points), torch.cat(strides)


def decode_raw(raw: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Raw head outputs -> (boxes (B, 4, N) x1 y1 x2 y2 in input pixels, class logits (B, C, N))."""
    points, strides = grid_points([tuple(r.shape[2:]) for r in raw])
    flat = torch.cat([r.flatten(2) for r in raw], dim=2)
    distances = nn.functional.softplus(flat[:, :4]) * strides  # l, t, r, b in pixels
    centre = points.t().unsqueeze(0)  # (1, 2, N)
    boxes = torch.cat([centre - distances[:, 0:2], centre + distances[:, 2:4]], dim=1)
    return boxes, flat[:, 4:]


def build() -> nn.Module:
    """The detector with fresh weights (load a state_dict for the trained one)."""
    return DigitDetector()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


if __name__ == "__main__":
    net = build().eval()
    print(f"{count_parameters(net)} parameters")
    print(net(torch.zeros(1, 3, *INPUT_HW)).shape)
