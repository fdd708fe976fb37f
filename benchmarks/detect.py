"""A detector end to end: ``python -m benchmarks.detect [--model M] [--count N] [--json F]``.

One BGR frame in, boxes in frame pixels out, timed three ways on the same ONNX Runtime session
(one session: two would each keep a spinning thread pool and slow each other on a small machine):

- ``edge``: ``Model(frame)`` — edge's preprocessing, backend call and decoder;
- ``bare + numpy``: what a user writes by hand: letterbox with OpenCV, ``cv2.dnn.blobFromImage``,
  ``InferenceSession.run``, then confidence filter, ``cv2.dnn.NMSBoxesBatched`` and the inverse
  letterbox in NumPy (``/ ratio``, as such scripts do: up to ~0.6 px off where the resized side was
  rounded; edge and Ultralytics use the real rounded size);
- ``bare + ultralytics``: the same preprocessing and session, then Ultralytics' own
  ``non_max_suppression`` and ``scale_boxes`` (the family's reference post-processing; only where
  Ultralytics is installed — it is a test dependency, never one of edge's).

The three are interleaved (order reversed every other round) so drift hits them alike. Each row also
says how many boxes each path found on the frame, so a fast path that finds nothing shows.
The model must carry a ``yolo`` decoder with an anchor-free (1, 4+nc, N) head (the zoo's
``digit_detector``, or any Ultralytics YOLOv8 / YOLO11 export).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from edge.errors import EdgeError
from edge.preprocess import INTERPOLATION_FLAGS

from . import help_text
from .stats import brief
from .timing import interleaved_us


def _letterbox_blob(frame_bgr: np.ndarray, input_wh: Tuple[int, int], pad: int, rgb: bool,
                    scale: float, interpolation: str = "linear") -> Tuple[np.ndarray, float, Tuple[int, int]]:
    """The hand-written preprocessing: letterbox (centred), blob NCHW float32; returns (blob, ratio, pad_xy)."""
    import cv2

    height, width = frame_bgr.shape[:2]
    ratio = min(input_wh[0] / width, input_wh[1] / height)
    new_wh = (int(round(width * ratio)), int(round(height * ratio)))
    left, top = (input_wh[0] - new_wh[0]) // 2, (input_wh[1] - new_wh[1]) // 2
    resized = cv2.resize(frame_bgr, new_wh, interpolation=getattr(cv2, INTERPOLATION_FLAGS[interpolation]))
    canvas = cv2.copyMakeBorder(resized, top, input_wh[1] - new_wh[1] - top, left, input_wh[0] - new_wh[0] - left,
                                cv2.BORDER_CONSTANT, value=(pad, pad, pad))
    blob = cv2.dnn.blobFromImage(canvas, scalefactor=scale, swapRB=rgb)
    return blob, ratio, (left, top)


def _numpy_post(head: np.ndarray, threshold: float, iou: float, max_det: int, ratio: float,
                pad_xy: Tuple[int, int], frame_wh: Tuple[int, int]) -> np.ndarray:
    """Confidence filter + cv2.dnn.NMSBoxesBatched (best max_det kept) + inverse letterbox: (M, 6) rows."""
    import cv2

    rows = head[0].T  # (N, 4 + nc)
    class_ids = rows[:, 4:].argmax(axis=1)
    scores = rows[np.arange(len(rows)), 4 + class_ids]
    keep = scores > threshold
    rows, class_ids, scores = rows[keep], class_ids[keep], scores[keep]
    xywh = np.concatenate([rows[:, :2] - rows[:, 2:4] / 2, rows[:, 2:4]], axis=1)
    index = np.asarray(cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_ids.tolist(), threshold, iou),
                       dtype=np.int64).reshape(-1)
    index = index[np.argsort(-scores[index], kind="stable")][:max_det]
    boxes = xywh[index].copy()
    boxes[:, 2:] += boxes[:, :2]
    boxes = (boxes - np.tile(pad_xy, 2)) / ratio
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, frame_wh[0])
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, frame_wh[1])
    return np.concatenate([boxes, scores[index, None], class_ids[index, None]], axis=1)


def _ultralytics_post(threshold: float, iou: float, max_det: int, input_hw: Tuple[int, int],
                      frame_hw: Tuple[int, int]) -> Optional[Callable[[np.ndarray], Any]]:
    """Ultralytics' non_max_suppression + scale_boxes as a function of the raw head, or None without it."""
    try:
        import torch
        from ultralytics.utils.nms import non_max_suppression
        from ultralytics.utils.ops import scale_boxes
    except ImportError:
        return None

    def post(head: np.ndarray) -> Any:
        detections = non_max_suppression(torch.from_numpy(head), threshold, iou, max_det=max_det)[0]
        detections[:, :4] = scale_boxes(input_hw, detections[:, :4], frame_hw)
        return detections

    return post


def default_frame() -> np.ndarray:
    """A 1280x720 camera-sized frame with objects in it: frame 30 of ``demo://?scene=digits``."""
    from edge.sources import open_source

    with open_source("demo://?scene=digits&frames=31") as source:
        for frame in source:
            image = frame.image
    return image


def _as_rows(detections: Any) -> np.ndarray:
    """edge Detections -> (M, 6) x1 y1 x2 y2 score class, like the bare paths return."""
    return np.concatenate([detections.boxes_xyxy, detections.scores[:, None],
                           detections.class_ids[:, None].astype(np.float32)], axis=1)


def build_paths(model: Any, frame: np.ndarray) -> Dict[str, Callable[[], np.ndarray]]:
    """The paths to time on ``frame``, by name; each returns (M, 6) x1 y1 x2 y2 score class in frame pixels.

    model: an edge Model on the onnxruntime-cpu backend with a yolo decoder (anchor-free head).
    """
    decoder = model.decoder
    if decoder.kind != "yolo":
        raise EdgeError(f"the end-to-end comparison needs a raw YOLO head (the yolo decoder), and this model's "
                        f"decoder is '{decoder.kind}'", fix="pass --model with a YOLOv8/YOLO11-style export "
                        "(no nms=True, not end-to-end)", where=str(model.path))
    frame_hw = frame.shape[:2]
    pre = model.config.preprocess
    input_wh = model.config.input.size_wh
    session = model.backend._session  # the same session for every path
    input_name, output_name = model.config.input.name, decoder.output_names[0]
    threshold, iou, max_det = decoder.score_threshold, decoder.iou_threshold, decoder.max_detections

    def bare() -> Tuple[np.ndarray, float, Tuple[int, int]]:
        blob, ratio, pad_xy = _letterbox_blob(frame, input_wh, pre.pad_value, pre.color == "RGB", pre.scale,
                                              pre.interpolation)
        return session.run([output_name], {input_name: blob})[0], ratio, pad_xy

    def bare_numpy() -> np.ndarray:
        head, ratio, pad_xy = bare()
        return _numpy_post(head, threshold, iou, max_det, ratio, pad_xy, (frame_hw[1], frame_hw[0]))

    paths: Dict[str, Callable[[], np.ndarray]] = {"edge": lambda: _as_rows(model(frame)), "bare + numpy": bare_numpy}
    reference = _ultralytics_post(threshold, iou, max_det, (input_wh[1], input_wh[0]), frame_hw)
    if reference is not None:
        paths["bare + ultralytics"] = lambda: reference(bare()[0]).numpy()
    return paths


def measure(model_name: Optional[str], count: int, frame_bgr: Optional[np.ndarray] = None,
            threshold: Optional[float] = None) -> Dict[str, Any]:
    """Interleaved end-to-end samples of edge and the bare paths on one frame; a row of results.

    threshold: score threshold for every path (default: the model's).
    """
    from edge.model import Model

    model = Model(model_name or "digit_detector", backend="onnxruntime-cpu", score_threshold=threshold)
    try:
        frame = default_frame() if frame_bgr is None else frame_bgr
        paths = build_paths(model, frame)
        found = {name: len(fn()) for name, fn in paths.items()}
        samples = interleaved_us(list(paths.values()), count)
        stats = {name: brief(us) for name, us in zip(paths, samples)}
        edge_us = samples[0]
        return {
            "model": model.path.name, "input_wh": list(model.config.input.size_wh),
            "frame_wh": [frame.shape[1], frame.shape[0]], "threshold": model.decoder.score_threshold,
            "boxes_found": found,
            "p50_ms": {name: s["p50_us"] / 1e3 for name, s in stats.items()},
            "p95_ms": {name: s["p95_us"] / 1e3 for name, s in stats.items()},
            # paired: the median of per-round differences, not the difference of medians
            "edge_minus_ms": {name: float(np.median(edge_us - us)) / 1e3
                              for name, us in zip(paths, samples) if name != "edge"},
        }
    finally:
        model.close()


def report(row: Dict[str, Any]) -> str:
    """A Markdown table of one :func:`measure` row."""
    lines = [f"{row['model']}: {row['frame_wh'][0]}x{row['frame_wh'][1]} frame -> "
             f"{row['input_wh'][0]}x{row['input_wh'][1]} input, score > {row['threshold']:g}", "",
             "| path | boxes | p50 ms | p95 ms | edge minus this, paired median ms |", "|---|---:|---:|---:|---:|"]
    for name in row["p50_ms"]:
        delta = row["edge_minus_ms"].get(name)
        lines.append(f"| {name} | {row['boxes_found'][name]} | {row['p50_ms'][name]:.3f} | {row['p95_ms'][name]:.3f} "
                     f"| {'' if delta is None else format(delta, '+.3f')} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Measure and print the table (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.detect", description=help_text(__doc__))
    parser.add_argument("--model", help="a zoo name or .onnx with a yolo decoder (default: digit_detector)")
    parser.add_argument("--count", type=int, default=300, help="interleaved rounds (default 300)")
    parser.add_argument("--threshold", type=float, help="score threshold for every path (default: the model's)")
    parser.add_argument("--source", help="an image file to run on (default: a 1280x720 demo://?scene=digits frame)")
    parser.add_argument("--json", type=Path, help="also write the row as JSON")
    args = parser.parse_args(argv)
    try:
        if args.count < 1:
            raise EdgeError(f"--count must be at least 1, got {args.count}", fix="pass e.g. --count 300",
                            where="--count")
        frame = None
        if args.source:
            import cv2

            frame = cv2.imread(args.source)
            if frame is None:
                raise EdgeError("cannot read this image", fix="give a .jpg or .png file", where=args.source)
        row = measure(args.model, args.count, frame, args.threshold)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report(row))
    if args.json:
        args.json.write_text(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
