"""The data behind ``edge-bench precision``: calibration sets, accuracy sets and the accuracy of each
precision through the full edge pipeline (face recall/precision and IoU vs fp32, digits held-out accuracy,
top-1 agreement for the light zoo classifiers). Split from benchmarks/precision.py, which times and reports."""

import importlib.util
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIGITS_TRAIN = ROOT / "models" / "digits" / "train.py"
CALIB_FRAMES, EVAL_FRAMES, FRAME_STRIDE, DIGIT_CALIB = 40, 50, 3, 200
IOU = 0.5

# ---------------------------------------------------------------------------------------------- data sets
def _demo_frames(uri: str, count: int, stride: int = FRAME_STRIDE) -> List[Any]:
    """Every ``stride``-th frame of a demo:// source, ``count`` of them (a stride spreads them over the scene's
    cycle: zoomed in, zoomed out, leaving the frame)."""
    from edge.sources import open_source

    frames = []
    sep = "&" if "?" in uri else "?"
    with open_source(f"{uri}{sep}frames={count * stride}") as source:
        for frame in source:
            if frame.index % stride == 0:
                frames.append(frame)
    return frames


def digits_split() -> Optional[Any]:
    """models/digits/train.py loaded by path (it is in the checkout, not installed) when it and scikit-learn are
    there; None otherwise."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return None
    if not DIGITS_TRAIN.is_file():
        return None
    spec = importlib.util.spec_from_file_location("digits_train", str(DIGITS_TRAIN))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def digit_crops(seed: int, count: int) -> Tuple[List[np.ndarray], List[int]]:
    """Square crops (1.3x the ink box, as benchmarks.task_rows cuts one) of the truth digits of
    ``demo://?scene=digits``, and their classes: ``count`` crops at most."""
    crops, labels = [], []
    for frame in _demo_frames(f"demo://?scene=digits&seed={seed}", max(1, count // 3), stride=5):
        for (x0, y0, x1, y1), class_id in zip(frame.truth["objects_xyxy"], frame.truth["class_ids"]):
            cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, 0.65 * max(x1 - x0, y1 - y0)
            crop = frame.image[max(0, int(cy - half)):int(cy + half), max(0, int(cx - half)):int(cx + half)]
            crops.append(crop.copy())
            labels.append(int(class_id))
    return crops[:count], labels[:count]


def digits_eval_set() -> Dict[str, Any]:
    """The digits accuracy set: scikit-learn's held-out quarter rendered by train.py, else demo digit crops."""
    train = digits_split()
    if train is not None:
        _, _, x_test, y_test = train.split()
        return {"images": [train.render(image) for image in x_test], "labels": [int(v) for v in y_test],
                "what": f"scikit-learn digits, held-out split of models/digits/train.py ({len(y_test)} images)"}
    images, labels = digit_crops(seed=1, count=300)
    return {"images": images, "labels": labels,
            "what": f"demo://?scene=digits (seed 1) truth crops ({len(labels)}; scikit-learn not importable; the "
                    "CNN learnt scikit-learn's 8x8 digits, not these fonts: expect near chance)"}


def scene_eval_set(frames: int) -> Dict[str, Any]:
    """The face / light classifier set: the shipped samples (truth: the astronaut's face, no face in the others) and
    ``frames`` held-out demo:// frames (seed 1, not the calibration seed) with their face truth."""
    from edge.samples import ASTRONAUT_FACE_XYXY, SAMPLE_NAMES, load_sample

    names, images, truth = [], [], []
    for name in SAMPLE_NAMES:
        names.append(name)
        images.append(load_sample(name))
        truth.append([list(ASTRONAUT_FACE_XYXY)] if name == "astronaut" else [])
    for frame in _demo_frames("demo://?seed=1", frames):
        names.append(f"demo seed 1 frame {frame.index}")
        images.append(frame.image)
        truth.append([list(box) for box in frame.truth.get("faces_xyxy", [])])
    return {"names": names, "images": images, "truth": truth,
            "what": f"{len(SAMPLE_NAMES)} shipped samples + {len(names) - len(SAMPLE_NAMES)} demo:// frames (seed 1)"}


def write_calibration(kind: str, folder: Path) -> str:
    """Write a deterministic calibration set for ``kind`` ("scene" or "digits") into ``folder``; what it holds."""
    import cv2

    from edge.samples import samples_dir

    folder.mkdir(parents=True, exist_ok=True)
    if kind == "digits":
        train = digits_split()
        if train is not None:
            x_train = train.split()[0][:DIGIT_CALIB]
            for i, image in enumerate(x_train):
                cv2.imwrite(str(folder / f"digit_{i:04d}.png"), train.render(image))
            return f"{len(x_train)} images of scikit-learn digits' training split, rendered by train.py"
        crops, _ = digit_crops(seed=0, count=DIGIT_CALIB)
        for i, crop in enumerate(crops):
            cv2.imwrite(str(folder / f"digit_{i:04d}.png"), crop)
        return f"{len(crops)} truth crops of demo://?scene=digits (seed 0; scikit-learn not importable)"
    frames = _demo_frames("demo://", CALIB_FRAMES)
    for frame in frames:
        cv2.imwrite(str(folder / f"demo_{frame.index:04d}.png"), frame.image)
    samples = sorted(samples_dir().glob("*.jpg"))
    for path in samples:
        shutil.copyfile(str(path), str(folder / path.name))
    return f"{len(frames)} demo:// frames (seed 0) + {len(samples)} shipped samples"


# ---------------------------------------------------------------------------------------------- timing


def match_boxes(found_xyxy: np.ndarray, scores: np.ndarray, truth_xyxy: np.ndarray, iou: float = IOU) -> int:
    """Greedy matching, best score first, each truth box used once: how many found boxes hit a truth at >= iou."""
    from edge.decoders.nms import pairwise_iou

    if len(found_xyxy) == 0 or len(truth_xyxy) == 0:
        return 0
    overlaps = pairwise_iou(found_xyxy, truth_xyxy, dtype=np.float64)
    free, hits = np.ones(len(truth_xyxy), bool), 0
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        candidates = np.where(free, overlaps[i], -1.0)
        j = int(np.argmax(candidates))
        if candidates[j] >= iou:
            free[j], hits = False, hits + 1
    return hits


def best_ious(reference_xyxy: np.ndarray, found_xyxy: np.ndarray) -> List[float]:
    """For each reference box, its best IoU with a found box (0 when nothing was found)."""
    from edge.decoders.nms import pairwise_iou

    if len(reference_xyxy) == 0:
        return []
    if len(found_xyxy) == 0:
        return [0.0] * len(reference_xyxy)
    return [float(v) for v in pairwise_iou(reference_xyxy, found_xyxy, dtype=np.float64).max(axis=1)]


def _delta(metric: str, unit: str, fp32: float, value: float, **extra: Any) -> Dict[str, Any]:
    return dict({"metric": metric, "unit": unit, "fp32": fp32, "value": value, "delta": value - fp32}, **extra)


def face_accuracy(models: Sequence[Any], data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Recall and precision at IoU 0.5 against truth, mean IoU against fp32's boxes, the astronaut's IoU."""
    truths = [np.asarray(t, np.float64).reshape(-1, 4) for t in data["truth"]]
    found = [[model(image) for image in data["images"]] for model in models]
    total_truth = sum(len(t) for t in truths)
    rows, astronaut = [], data["names"].index("astronaut")
    for results in found:
        hits = sum(match_boxes(r.boxes_xyxy, r.scores, t) for r, t in zip(results, truths))
        boxes = sum(len(r) for r in results)
        ious = [v for ref, r in zip(found[0], results) for v in best_ious(ref.boxes_xyxy, r.boxes_xyxy)]
        astronaut_iou = best_ious(found[0][astronaut].boxes_xyxy, results[astronaut].boxes_xyxy)
        rows.append({"recall": 100.0 * hits / max(total_truth, 1), "precision": 100.0 * hits / max(boxes, 1),
                     "boxes": boxes, "mean_iou_vs_fp32": float(np.mean(ious)) if ious else 0.0,
                     "astronaut_iou_vs_fp32": max(astronaut_iou, default=0.0)})
    return [_delta("recall@IoU0.5", "%", rows[0]["recall"], row["recall"], precision_pct=row["precision"],
                   precision_fp32_pct=rows[0]["precision"], boxes=row["boxes"], truth_boxes=total_truth,
                   mean_iou_vs_fp32=row["mean_iou_vs_fp32"], astronaut_iou_vs_fp32=row["astronaut_iou_vs_fp32"])
            for row in rows]


def digits_accuracy(models: Sequence[Any], data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Accuracy (%) of each model's top class on the digits set; delta in points against fp32."""
    labels = np.asarray(data["labels"])
    scores = []
    for model in models:
        predicted = np.asarray([int(model(image).class_ids[0]) for image in data["images"]])
        scores.append(100.0 * float(np.mean(predicted == labels)))
    return [_delta("accuracy", "%", scores[0], value, images=int(labels.size)) for value in scores]


def light_agreement(models: Sequence[Any], data: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Top-1 agreement (%) with fp32 and the cosine of the raw outputs to fp32's (generated weights: agreement,
    not accuracy). ``fp32_outputs_tie`` flags the light zoo's constant weights: when fp32's outputs are all equal
    on every image, its top-1 is a tie-break and the agreement says nothing."""
    top1, outputs = [], []
    for model in models:
        classes, raw = [], []
        for image in data["images"]:
            tensor, transform = model.preprocess(image)
            out = model.infer(tensor)
            classes.append(int(model.decode(out, transform).class_ids[0]))
            raw.append(np.asarray(next(iter(out.values())), np.float64).ravel())
        top1.append(np.asarray(classes))
        outputs.append(np.stack(raw))
    ref = outputs[0]
    ties = bool(np.all(np.ptp(ref, axis=1) <= 1e-6 * np.maximum(np.abs(ref).max(axis=1), 1e-30)))
    rows = []
    for classes, out in zip(top1, outputs):
        norms = np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1), 1e-30)
        cosine = np.sum(ref * out, axis=1) / norms
        rows.append(_delta("top-1 agreement with fp32", "%", 100.0, 100.0 * float(np.mean(classes == top1[0])),
                           cosine_mean=float(np.mean(cosine)), cosine_min=float(np.min(cosine)),
                           fp32_distinct_top1=int(np.unique(top1[0]).size), fp32_outputs_tie=ties,
                           images=int(len(classes)), note="generated weights: agreement, not accuracy"))
    return rows


# ---------------------------------------------------------------------------------------------- one model
