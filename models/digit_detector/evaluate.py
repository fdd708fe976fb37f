"""mAP@0.5 of the digit detector, measured through the edge runtime on held-out frames.

    python models/digit_detector/evaluate.py                 # the committed model, 500 held-out frames
    python models/digit_detector/evaluate.py --images 100 --model path/to.onnx

The metric is written here (no pycocotools): per class, detections over all images sorted by
score (ties: image order), each matched greedily to the unmatched ground-truth box of the same
class with the highest IoU >= 0.5, then the area under the precision-recall curve with
precision made monotone (all-point interpolation, as PASCAL VOC 2010+ and COCO's per-threshold
AP without the 101-point sampling); mAP is the mean over classes that have ground truth.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
IOU_THRESHOLD = 0.5
EVAL_SCORE_THRESHOLD = 0.05  # mAP integrates over thresholds: keep low-score detections


def sibling(name: str):
    """models/digit_detector/<name>.py as a module, under a name no other zoo script uses."""
    key = f"digit_detector_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of two sets of x1 y1 x2 y2 boxes."""
    a = np.asarray(a_xyxy, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b_xyxy, np.float64).reshape(-1, 4)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """All-point interpolated AP: area under the precision envelope over recall steps."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


Prediction = Tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes_xyxy (n, 4), scores (n,), class_ids (n,)
Truth = Tuple[np.ndarray, np.ndarray]  # boxes_xyxy (m, 4), class_ids (m,)


def mean_average_precision(predictions: Sequence[Prediction], truths: Sequence[Truth],
                           num_classes: int = 10, iou_threshold: float = IOU_THRESHOLD) -> Dict[str, object]:
    """{"map": mAP over classes with ground truth, "ap": per-class AP (None: no ground truth)}."""
    ap: List[object] = []
    for cls in range(num_classes):
        records = []  # (score, image, box)
        totals = 0
        for image, ((boxes, scores, classes), (_, truth_classes)) in enumerate(zip(predictions, truths)):
            totals += int(np.sum(np.asarray(truth_classes) == cls))
            for box, score in zip(np.asarray(boxes)[np.asarray(classes) == cls],
                                  np.asarray(scores)[np.asarray(classes) == cls]):
                records.append((-float(score), image, box))
        if totals == 0:
            ap.append(None)
            continue
        records.sort(key=lambda r: (r[0], r[1]))
        used = [np.zeros(int(np.sum(np.asarray(t[1]) == cls)), bool) for t in truths]
        hits = np.zeros(len(records))
        for k, (_, image, box) in enumerate(records):
            truth_boxes, truth_classes = truths[image]
            mine = np.asarray(truth_boxes).reshape(-1, 4)[np.asarray(truth_classes) == cls]
            if not len(mine):
                continue
            ious = box_iou(box[None], mine)[0]
            ious[used[image]] = -1.0
            best = int(np.argmax(ious))
            if ious[best] >= iou_threshold:
                used[image][best] = True
                hits[k] = 1
        true_pos = np.cumsum(hits)
        recall = true_pos / totals
        precision = true_pos / np.arange(1, len(records) + 1)
        ap.append(average_precision(recall, precision))
    present = [v for v in ap if v is not None]
    return {"map": float(np.mean(present)) if present else 0.0, "ap": ap}


def recall_precision(predictions: Sequence[Prediction], truths: Sequence[Truth], score_threshold: float,
                     iou_threshold: float = IOU_THRESHOLD) -> Tuple[float, float]:
    """(recall, precision) of the detections scoring above ``score_threshold``.

    A hit is a detection of the right class at IoU >= ``iou_threshold``; each truth box and each
    detection counts once.
    """
    found = total = kept = 0
    for (boxes, scores, classes), (truth_boxes, truth_classes) in zip(predictions, truths):
        keep = np.asarray(scores) > score_threshold
        boxes, classes = np.asarray(boxes).reshape(-1, 4)[keep], np.asarray(classes)[keep]
        kept += len(classes)
        used = np.zeros(len(classes), bool)
        for box, cls in zip(np.asarray(truth_boxes).reshape(-1, 4), truth_classes):
            total += 1
            ious = box_iou(box[None], boxes)[0] if len(boxes) else np.zeros(0)
            ious[(classes != cls) | used] = -1.0
            if len(ious) and ious.max() >= iou_threshold:
                used[int(np.argmax(ious))] = True
                found += 1
    return found / max(1, total), found / max(1, kept)


def runtime_predictions(model_path: Path, split: str, count: int, backend: str = "onnxruntime-cpu",
                        score_threshold: float = EVAL_SCORE_THRESHOLD, start: int = 0
                        ) -> Tuple[List[Prediction], List[Truth]]:
    """Held-out frames through edge.load_model (its preprocessing and yolo decoder): predictions and truth."""
    sys.path.insert(0, str(ROOT))
    import edge

    data = sibling("data")
    predictions: List[Prediction] = []
    truths: List[Truth] = []
    with edge.load_model(model_path, backend=backend, score_threshold=score_threshold) as model:
        for index in range(start, start + count):
            image, boxes, classes = data.frame(split, index)
            result = model(image)
            predictions.append((result.boxes_xyxy, result.scores, result.class_ids))
            truths.append((boxes, classes))
    return predictions, truths


def runtime_map(model_path: Path, count: int = 500, backend: str = "onnxruntime-cpu",
                score_threshold: float = EVAL_SCORE_THRESHOLD) -> Dict[str, object]:
    """mAP@0.5 of an ONNX file on the first ``count`` held-out frames, through the edge runtime."""
    predictions, truths = runtime_predictions(model_path, "held_out", count, backend, score_threshold)
    metrics = mean_average_precision(predictions, truths)
    metrics["images"] = count
    metrics["objects"] = int(sum(len(t[1]) for t in truths))
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=HERE / "digit_detector.onnx")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--backend", default="onnxruntime-cpu")
    parser.add_argument("--threshold", type=float, default=0.3, help="score threshold for recall and precision")
    args = parser.parse_args()
    predictions, truths = runtime_predictions(args.model, "held_out", args.images, args.backend)
    metrics = mean_average_precision(predictions, truths)
    recall, precision = recall_precision(predictions, truths, args.threshold)
    report = {"images": args.images, "objects": int(sum(len(t[1]) for t in truths)),
              "map50": round(float(metrics["map"]), 4),
              "ap50_per_class": [None if v is None else round(float(v), 4) for v in metrics["ap"]],
              f"recall_at_{args.threshold}": round(recall, 4), f"precision_at_{args.threshold}": round(precision, 4)}
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
