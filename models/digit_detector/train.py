"""Train the digit detector, export it through edge's own toolchain, and measure mAP@0.5 through the runtime.

    python models/digit_detector/train.py        # ~10 min on one CPU thread; writes digit_detector.onnx

Data: ``data.py`` renders every frame from (split, index) — digits in Hershey fonts on photo
crops of the shipped samples and procedural backgrounds, with exact boxes — so nothing is
downloaded and the held-out split never overlaps the training one. Frames are letterboxed to
192x192 exactly as the runtime does it. Training: one thread, fixed seeds, deterministic ops
(same machine and torch version: same weights). Assignment: a grid point is positive for a
digit when it lies inside the digit's box, within 1.5 strides of its centre, on the stride
that suits the digit's size (stride 8 below 48 px, stride 16 from 32 px; the nearest point
always counts); the smaller digit wins a shared point. Losses: quality focal loss on the class
scores (target = IoU of the predicted box, GFL-style) and GIoU on the boxes.
"""

import argparse
import importlib.util
import json
import math
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
if "digit_detector_evaluate" not in sys.modules:  # a unique name: models/digits has a train.py too
    _spec = importlib.util.spec_from_file_location("digit_detector_evaluate", HERE / "evaluate.py")
    sys.modules["digit_detector_evaluate"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["digit_detector_evaluate"])
runtime_map = sys.modules["digit_detector_evaluate"].runtime_map
sibling = sys.modules["digit_detector_evaluate"].sibling

SEED = 0
BATCH = 16
SIZE_RANGES = {8: (0.0, 48.0), 16: (32.0, 1e9)}  # digit size (longer box side, input px) each stride learns
CENTRE_RADIUS = 1.5  # in strides


def _example(index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training frame ``index`` as the model sees it: (RGB CHW uint8, boxes in input px, classes, owners)."""
    import torch

    data, model = sibling("data"), sibling("model")
    image, boxes, classes = data.frame("train", index)
    canvas, boxes = data.letterbox(image, boxes)
    points, strides = model.grid_points([(h // s, w // s) for s in model.STRIDES for h, w in [model.INPUT_HW]])
    owners = assign(points, strides, torch.as_tensor(boxes)).numpy().astype(np.int8)
    return np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1)), boxes, classes, owners


def training_set(count: int, workers: int = 2):
    """(images uint8 (count, 3, 192, 192) RGB, boxes and classes per image, owners (count, N) int8).

    The assignment of grid points to boxes depends on the boxes only, so it is made here, once.
    """
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            items = pool.map(_example, range(count), chunksize=16)
    else:
        items = [_example(i) for i in range(count)]
    images = np.stack([item[0] for item in items])
    owners = np.stack([item[3] for item in items])
    return images, [item[1] for item in items], [item[2] for item in items], owners


def assign(points, strides, boxes):
    """Per grid point: index of its ground-truth box, or -1 (see the module docstring)."""
    import torch

    n_points = len(points)
    if len(boxes) == 0:
        return torch.full((n_points,), -1, dtype=torch.long)
    b = boxes.float()
    centre = (b[:, :2] + b[:, 2:]) / 2
    size = (b[:, 2:] - b[:, :2]).max(dim=1).values
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    px, py = points[:, 0:1], points[:, 1:2]
    inside = (px > b[:, 0]) & (px < b[:, 2]) & (py > b[:, 1]) & (py < b[:, 3])
    near = ((px - centre[:, 0]).abs() <= CENTRE_RADIUS * strides[:, None]) & \
           ((py - centre[:, 1]).abs() <= CENTRE_RADIUS * strides[:, None])
    level = torch.zeros_like(inside)
    for stride, (low, high) in SIZE_RANGES.items():
        level |= (strides[:, None] == stride) & (size >= low) & (size < high)
    candidate = inside & near & level
    for stride, (low, high) in SIZE_RANGES.items():  # the point nearest each centre always counts
        on_level = torch.nonzero(strides == stride).flatten()
        distance = (points[on_level, None, :] - centre[None]).abs().sum(-1)
        nearest = on_level[distance.argmin(0)]
        fits = (size >= low) & (size < high)
        candidate[nearest[fits], torch.nonzero(fits).flatten()] = True
    cost = torch.where(candidate, area[None].expand(n_points, -1), torch.tensor(1e12))
    best = cost.argmin(1)
    return torch.where(candidate.any(1), best, torch.full_like(best, -1))


def box_giou(a, b):
    """(IoU, GIoU) of matching rows of two (n, 4) xyxy tensors."""
    import torch

    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.max(a[:, 2:], b[:, 2:]) - torch.min(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return iou, iou - (hull - union) / hull


def loss_fn(model, images, boxes_list, classes_list, owners):
    """Quality focal loss on class scores + 2 x GIoU loss on positive boxes, per positive point.

    owners: (B, N) the ground-truth box index of each grid point, -1 for background (``assign``).
    """
    import torch

    pred_boxes, logits = sibling("model").decode_raw(model.raw(images))  # (B, 4, N), (B, C, N)
    target = torch.zeros_like(logits)
    box_losses, positives = [], 0
    for k, (boxes, classes) in enumerate(zip(boxes_list, classes_list)):
        owner = owners[k]
        pos = torch.nonzero(owner >= 0).flatten()
        if len(pos) == 0:
            continue
        gt = torch.as_tensor(boxes, dtype=torch.float32)[owner[pos]]
        iou, giou = box_giou(pred_boxes[k, :, pos].t(), gt)
        box_losses.append((1.0 - giou).sum())
        cls = torch.as_tensor(classes, dtype=torch.long)[owner[pos]]
        target[k, cls, pos] = iou.detach().clamp(min=0.0)
        positives += len(pos)
    prob = torch.sigmoid(logits)
    qfl = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    qfl = (qfl * (prob - target).abs().pow(2)).sum()
    norm = max(1, positives)
    box_loss = torch.stack(box_losses).sum() if box_losses else logits.sum() * 0
    return qfl / norm + 2.0 * box_loss / norm


def train(images: np.ndarray, boxes: List[np.ndarray], classes: List[np.ndarray], owners: np.ndarray,
          epochs: int, log=print):
    """AdamW with warm-up and cosine decay, mini-batches of 16 in a seeded order."""
    import torch

    torch.manual_seed(SEED)
    model = sibling("model").build()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=5e-4)
    order_rng = np.random.default_rng(SEED)
    steps_per_epoch = math.ceil(len(images) / BATCH)
    total, warmup = epochs * steps_per_epoch, min(300, steps_per_epoch)
    step = 0
    model.train()
    for epoch in range(epochs):
        order = order_rng.permutation(len(images))
        running = 0.0
        for start in range(0, len(order), BATCH):
            batch = order[start:start + BATCH]
            lr_scale = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total))
            for group in optimiser.param_groups:
                group["lr"] = 3e-3 * lr_scale
            x = torch.from_numpy(images[batch]).float().div_(255.0)
            loss = loss_fn(model, x, [boxes[i] for i in batch], [classes[i] for i in batch],
                           torch.from_numpy(owners[batch]).long())
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimiser.step()
            running += loss.item()
            step += 1
        log(f"epoch {epoch + 1}/{epochs}: loss {running / steps_per_epoch:.4f}", flush=True)
    return model.eval()


def export(model, output: Path) -> str:
    """``python -m export onnx`` on the trained weights (checker, shape inference, parity); its stdout."""
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        weights = Path(scratch) / "digit_detector.pt"
        torch.save(model.state_dict(), weights)
        command = [sys.executable, "-m", "export", "onnx", f"{HERE / 'model.py'}:build", "--weights", str(weights),
                   "--input-shape", "1,3,192,192", "--input-name", "images", "--output-names", "output0",
                   "--opset", "13", "--config", str(HERE / "edge_config.json"), "--output", str(output)]
        done = subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True)
    print(done.stdout, end="")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=HERE / "digit_detector.onnx")
    parser.add_argument("--images", type=int, default=6000, help="training frames (default 6000)")
    parser.add_argument("--epochs", type=int, default=11)
    parser.add_argument("--eval-images", type=int, default=500, help="held-out frames for mAP (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="processes that render the training frames")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (fixed: reproducible weights)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)  # a fixed count: same arithmetic order on every run
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    images, boxes, classes, owners = training_set(args.images, args.workers)
    data_seconds = time.perf_counter() - start
    model = train(images, boxes, classes, owners, args.epochs)
    train_seconds = time.perf_counter() - start - data_seconds
    export(model, args.output)
    metrics = runtime_map(args.output, args.eval_images)
    report = {
        "train_images": args.images, "train_objects": int(sum(len(c) for c in classes)), "epochs": args.epochs,
        "data_seconds": round(data_seconds, 1), "train_seconds": round(train_seconds, 1),
        "held_out_images": metrics["images"], "held_out_objects": metrics["objects"],
        "held_out_map50_edge_runtime": round(float(metrics["map"]), 4),
        "held_out_ap50_per_class": [None if v is None else round(float(v), 4) for v in metrics["ap"]],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
