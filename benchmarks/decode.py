"""Decode time of the YOLO decoders on synthetic heads: ``python -m benchmarks.decode [--count N] [--json F]``.

The decoder alone (threshold, NMS, mapping to the frame), on raw outputs shaped as Ultralytics exports
them at 640x640 ((1, 84, 8400): 4 box rows + 80 class rows, 8400 candidates) and as YOLOv5 does
((1, 25200, 85) with objectness, split so that objectness x probability gives the same scores).
Scores are synthetic; each case says how many candidates pass the threshold (0.25, Ultralytics'
default) and how many boxes NMS keeps, since that is what the time depends on:

- ``random logits``: every class score is sigmoid(N(-6, 1.5)), a few hundred candidates;
- ``200 objects``: background scores below the threshold, 200 planted detections;
- ``nothing``: every score below the threshold (the floor: one pass over the class scores);
- ``crowded``: sigmoid(N(-3, 1.5)), thousands of candidates, NMS stops at max_detections;

and the boxes decoder on an end-to-end (1, 300, 6) head (YOLOv10, YOLO26, Ultralytics nms=True).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import help_text
from .stats import brief
from .timing import sample_us

INPUT_WH = (640, 640)
THRESHOLD = 0.25
CASES = ("random logits", "200 objects", "nothing", "crowded")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _scores(case: str, shape: Tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(classes, candidates) float32 class scores for ``case``."""
    classes, count = shape
    if case == "random logits":
        return _sigmoid(rng.normal(-6.0, 1.5, shape)).astype(np.float32)
    if case == "crowded":
        return _sigmoid(rng.normal(-3.0, 1.5, shape)).astype(np.float32)
    scores = rng.uniform(0.0, 0.2, shape).astype(np.float32)
    if case == "200 objects":
        planted = rng.choice(count, 200, replace=False)
        scores[rng.integers(0, classes, 200), planted] = rng.uniform(0.3, 1.0, 200)
    return scores


def yolo_head(case: str, layout: str = "anchor_free", seed: int = 0) -> np.ndarray:
    """A synthetic raw head: (1, 84, 8400) anchor-free or (1, 25200, 85) with objectness."""
    rng = np.random.default_rng(seed)
    count = 8400 if layout == "anchor_free" else 25200
    boxes = np.concatenate([rng.uniform(0, 640, (2, count)), rng.uniform(8, 200, (2, count))]).astype(np.float32)
    scores = _scores(case, (80, count), rng)
    if layout == "anchor_free":
        return np.concatenate([boxes, scores])[None]
    # objectness x probability = the same scores: the same candidates as the anchor-free head
    objectness = scores.max(axis=0, keepdims=True)
    return np.concatenate([boxes, objectness, scores / objectness]).T[None].copy()


def decode_rows(count: int = 300) -> List[Dict[str, Any]]:
    """One row per (layout, case): p50/p95 decode time, candidates above the threshold, boxes kept."""
    from edge.decoders import build_decoder
    from edge.transform import Transform

    transform = Transform((1.0, 1.0), (0.0, 0.0), INPUT_WH, INPUT_WH)
    rows = []
    for layout in ("anchor_free", "objectness"):
        decoder = build_decoder({"type": "yolo", "layout": layout, "score_threshold": THRESHOLD}, labels=None,
                                input_wh=INPUT_WH)
        for case in CASES:
            head = yolo_head(case, layout)
            outputs = {"output0": head}
            decoder.check_outputs({"output0": head.shape})
            scores = head[0, 4:] if layout == "anchor_free" else (head[0, :, 5:] * head[0, :, 4:5]).T
            candidates = int((scores.max(axis=0) > THRESHOLD).sum())
            kept = len(decoder(outputs, transform))
            stats = brief(sample_us(lambda d=decoder, o=outputs: d(o, transform), count))
            rows.append({"decoder": "yolo", "layout": layout, "shape": list(head.shape), "case": case,
                         "threshold": THRESHOLD, "candidates": candidates, "kept": kept,
                         "p50_ms": stats["p50_us"] / 1e3, "p95_ms": stats["p95_us"] / 1e3, "n": stats["n"]})
    rows.append(_boxes_row(count, transform))
    return rows


def _boxes_row(count: int, transform: Any) -> Dict[str, Any]:
    """The boxes decoder on an end-to-end head (1, 300, 6) with 100 valid rows (YOLOv10 / YOLO26, nms=True)."""
    from edge.decoders import build_decoder

    rng = np.random.default_rng(0)
    head = np.zeros((1, 300, 6), np.float32)
    corner = rng.uniform(0, 500, (100, 2))
    head[0, :100, :4] = np.concatenate([corner, corner + rng.uniform(8, 140, (100, 2))], axis=1)
    head[0, :100, 4] = np.sort(rng.uniform(0.0, 1.0, 100))[::-1]
    head[0, :100, 5] = rng.integers(0, 80, 100)
    decoder = build_decoder({"type": "boxes", "output": "output0", "score_threshold": THRESHOLD}, labels=None,
                            input_wh=INPUT_WH)
    outputs = {"output0": head}
    stats = brief(sample_us(lambda: decoder(outputs, transform), count))
    return {"decoder": "boxes", "layout": "end2end", "shape": list(head.shape), "case": "100 valid rows",
            "threshold": THRESHOLD, "candidates": int((head[0, :, 4] > THRESHOLD).sum()),
            "kept": len(decoder(outputs, transform)), "p50_ms": stats["p50_us"] / 1e3,
            "p95_ms": stats["p95_us"] / 1e3, "n": stats["n"]}


def report(rows: List[Dict[str, Any]]) -> str:
    """A Markdown table of :func:`decode_rows`."""
    lines = ["| decoder | head | case | candidates > 0.25 | kept | p50 ms | p95 ms |",
             "|---|---|---|---:|---:|---:|---:|"]
    for row in rows:
        shape = "x".join(str(d) for d in row["shape"])
        lines.append(f"| {row['decoder']} {row['layout']} | {shape} | {row['case']} | {row['candidates']} | "
                     f"{row['kept']} | {row['p50_ms']:.3f} | {row['p95_ms']:.3f} |")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """Measure and print the Markdown table (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.decode", description=help_text(__doc__))
    parser.add_argument("--count", type=int, default=300, help="timed calls per case (default 300)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    rows = decode_rows(args.count)
    print(report(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
