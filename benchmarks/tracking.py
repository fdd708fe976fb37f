"""Tracking quality against a synthetic source's truth: identity switches per 100 frames.

    python -m benchmarks.tracking                                   # face model on demo://, 300 frames
    python -m benchmarks.tracking --source "demo://?scene=digits&frames=600" --model digit_detector
    python -m benchmarks.tracking --source "demo://?scene=digits" --oracle 0.1   # the tracker alone

Each frame, truth objects are matched one-to-one to tracked boxes by IoU >= 0.5 as CLEAR MOT
does (an object keeps last frame's track while their IoU stays >= 0.5; the others are paired by
best total IoU). An *identity switch* is a truth object matched to a different track id than
the last time it was matched; a *fragmentation* is a truth object that was tracked, went
untracked while in view, and was tracked again. ``matched_fraction`` is the share of truth boxes covered by a track.
The scoring (:func:`score_tracking`) takes plain arrays and is reused by the tests.
"""

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any, Dict, Hashable, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from edge.decoders.nms import pairwise_iou
from edge.errors import EdgeError
from edge.results import Detections
from edge.tracking.assignment import linear_assignment

from . import help_text

#: one frame: (truth ids, truth boxes (N, 4) xyxy, track ids, track boxes (M, 4) xyxy)
FrameTracks = Tuple[Sequence[Hashable], Any, Sequence[int], Any]


@dataclass
class TrackingScore:
    """Counts over a sequence; see the module docstring for the definitions."""

    frames: int = 0
    truth_objects: int = 0
    truth_boxes: int = 0
    matched_boxes: int = 0
    id_switches: int = 0
    fragmentations: int = 0
    track_ids: int = 0
    unmatched_track_boxes: int = 0

    @property
    def id_switches_per_100_frames(self) -> float:
        """Identity switches per 100 frames."""
        return 100.0 * self.id_switches / self.frames if self.frames else 0.0

    @property
    def matched_fraction(self) -> float:
        """Share of truth boxes matched to a track box (1.0 without truth)."""
        return self.matched_boxes / self.truth_boxes if self.truth_boxes else 1.0

    def to_dict(self) -> Dict[str, Any]:
        """Counts and the derived rates, JSON-ready."""
        return dict(asdict(self), id_switches_per_100_frames=round(self.id_switches_per_100_frames, 3),
                    matched_fraction=round(self.matched_fraction, 4))

    def text(self) -> str:
        """One human-readable line."""
        return (f"{self.frames} frames, {self.truth_objects} truth objects, {self.track_ids} track ids: "
                f"{self.id_switches} identity switches ({self.id_switches_per_100_frames:.2f} per 100 frames), "
                f"{self.fragmentations} fragmentations, {100 * self.matched_fraction:.1f}% of truth boxes tracked, "
                f"{self.unmatched_track_boxes} track boxes without truth")


def score_tracking(frames: Iterable[FrameTracks], min_iou: float = 0.5) -> TrackingScore:
    """Score a sequence of frames (truth ids and boxes, track ids and boxes) against its truth."""
    score = TrackingScore()
    last_track: Dict[Hashable, int] = {}  # truth id -> track id it was last matched to
    interrupted: Dict[Hashable, bool] = {}  # truth id -> lost while in view since its last match
    seen_truth, seen_tracks = set(), set()
    for truth_ids, truth_xyxy, track_ids, track_xyxy in frames:
        truth_ids, track_ids = list(truth_ids), [int(t) for t in track_ids]
        truth_boxes = np.asarray(truth_xyxy, np.float64).reshape(-1, 4)
        track_boxes = np.asarray(track_xyxy, np.float64).reshape(-1, 4)
        if len(truth_ids) != len(truth_boxes) or len(track_ids) != len(track_boxes):
            raise ValueError("each frame needs one id per truth box and one track id per track box")
        score.frames += 1
        score.truth_boxes += len(truth_ids)
        seen_truth.update(truth_ids)
        seen_tracks.update(track_ids)
        matched = _match_frame(truth_ids, truth_boxes, track_ids, track_boxes, last_track, min_iou)
        score.matched_boxes += len(matched)
        score.unmatched_track_boxes += len(track_ids) - len(matched)
        for row, truth_id in enumerate(truth_ids):
            if row not in matched:
                if truth_id in last_track:
                    interrupted[truth_id] = True
                continue
            track_id = track_ids[matched[row]]
            if truth_id in last_track and last_track[truth_id] != track_id:
                score.id_switches += 1
            if interrupted.pop(truth_id, False):
                score.fragmentations += 1
            last_track[truth_id] = track_id
    score.truth_objects = len(seen_truth)
    score.track_ids = len(seen_tracks)
    return score


def _match_frame(truth_ids: List[Hashable], truth_boxes: np.ndarray, track_ids: List[int], track_boxes: np.ndarray,
                 last_track: Dict[Hashable, int], min_iou: float) -> Dict[int, int]:
    """Truth row -> track row for one frame, the CLEAR MOT way: a truth object keeps last frame's track
    while their IoU stays >= min_iou; the rest are paired by best total IoU."""
    iou = pairwise_iou(truth_boxes, track_boxes, dtype=np.float64)
    column_of_track = {track_id: col for col, track_id in enumerate(track_ids)}
    matched: Dict[int, int] = {}
    for row, truth_id in enumerate(truth_ids):
        col = column_of_track.get(last_track.get(truth_id, -1))  # type: ignore[arg-type]
        if col is not None and iou[row, col] >= min_iou and col not in matched.values():
            matched[row] = col
    rows = np.array([r for r in range(len(truth_ids)) if r not in matched], np.int64)
    cols = np.array([c for c in range(len(track_ids)) if c not in matched.values()], np.int64)
    if len(rows) and len(cols):
        pair_rows, pair_cols = linear_assignment(1.0 - iou[np.ix_(rows, cols)], 1.0 - min_iou + 1e-9)
        matched.update(zip(rows[pair_rows].tolist(), cols[pair_cols].tolist()))
    return matched


def truth_objects(truth: Dict[str, Any]) -> Tuple[List[Hashable], np.ndarray]:
    """(ids, (N, 4) boxes) of the objects in a frame's truth.

    ``{"objects_xyxy": [...], "object_ids": [...]}`` (multi-object scenes) gives real ids; other
    ``<name>_xyxy`` lists (``faces_xyxy``) hold one object each, identified by name and position.
    """
    if "objects_xyxy" in truth and "object_ids" in truth:
        return list(truth["object_ids"]), np.asarray(truth["objects_xyxy"], np.float64).reshape(-1, 4)
    ids: List[Hashable] = []
    boxes: List[Sequence[float]] = []
    for key in sorted(k for k in truth if k.endswith("_xyxy")):
        for position, box in enumerate(truth[key]):
            ids.append(f"{key}[{position}]")
            boxes.append(box)
    return ids, np.asarray(boxes, np.float64).reshape(-1, 4)


def oracle_detections(truth: Dict[str, Any], rng: np.random.Generator, miss_rate: float = 0.1,
                      jitter: float = 0.05) -> Detections:
    """Detections made from the truth: each box kept with probability 1 - miss_rate, its corners moved
    by up to ``jitter`` of its size, scores uniform in [0.3, 1) (some fall to the low-score stage)."""
    _, boxes = truth_objects(truth)
    boxes = boxes[rng.random(len(boxes)) >= miss_rate]
    size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
    boxes = boxes + size * rng.uniform(-jitter, jitter, size=boxes.shape)
    class_ids = np.zeros(len(boxes), np.int64)
    return Detections(boxes, rng.uniform(0.3, 1.0, len(boxes)), class_ids)


def _frames_with_truth(frames: Iterable[Any], max_frames: int, source: str) -> Iterable[Any]:
    for frame in frames:
        if frame.index >= max_frames:
            break
        if not frame.truth:
            raise EdgeError("this source has no ground truth", fix="use a demo:// source", where=source)
        yield frame


def measure(source: str, model: Optional[str] = None, backend: str = "auto", max_frames: int = 300,
            tracker_options: Optional[Dict[str, Any]] = None, oracle_miss_rate: Optional[float] = None,
            seed: int = 0, score_threshold: Optional[float] = None) -> TrackingScore:
    """Run a detector with ``Tracker.for_model`` over a source that knows its truth, and score it.

    oracle_miss_rate: instead of a model, detect with :func:`oracle_detections` (seeded by ``seed``)
    to measure the tracker alone. score_threshold: the model's reporting threshold (default: its own),
    which becomes the tracker's high_score.
    """
    from edge.model import Model
    from edge.sources import open_source
    from edge.tracking import Tracker

    with open_source(source) as frames:
        if oracle_miss_rate is not None:
            rng = np.random.default_rng(seed)
            tracker = Tracker(**(tracker_options or {}))
            return score_tracking(
                _score_input(tracker.update(oracle_detections(f.truth, rng, oracle_miss_rate)), f.truth)
                for f in _frames_with_truth(frames, max_frames, source))
        with Model(model, backend=backend, score_threshold=score_threshold) as detector:
            if detector.task != "detect":
                raise EdgeError(f"tracking needs a detector, but this model's task is '{detector.task}'",
                                fix="pass --model with a detection model", where="--model")
            tracker = Tracker.for_model(detector, **(tracker_options or {}))
            return score_tracking(_score_input(tracker.update(detector(f.image)), f.truth)
                                  for f in _frames_with_truth(frames, max_frames, source))


def _score_input(tracked: Detections, truth: Dict[str, Any]) -> FrameTracks:
    truth_ids, truth_boxes = truth_objects(truth)
    return truth_ids, truth_boxes, tracked.track_ids.tolist(), tracked.boxes_xyxy  # type: ignore[union-attr]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point: prints the score (stdout, one line; --json for the counts); 2 on a user error."""
    parser = argparse.ArgumentParser(prog=f"python -m {__package__}.tracking", description=help_text(__doc__))
    parser.add_argument("--source", default="demo://", help="a source with truth (default demo://)")
    parser.add_argument("--model", help="a detector: .onnx file or zoo name (default: the face detector)")
    parser.add_argument("--backend", default="auto", help="as in python -m edge.camera (default auto)")
    parser.add_argument("--threshold", type=float, help="the model's score threshold (default: its own)")
    parser.add_argument("--max-frames", type=int, default=300, metavar="N", help="frames to score (default 300)")
    parser.add_argument("--oracle", type=float, metavar="MISS_RATE",
                        help="no model: detect with the truth boxes, jittered, each missed with this probability "
                             "(measures the tracker alone)")
    parser.add_argument("--class-aware", action="store_true", help="match detections only to tracks of their class")
    parser.add_argument("--seed", type=int, default=0, help="random seed of --oracle (default 0)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON instead")
    args = parser.parse_args(argv)
    try:
        if args.max_frames < 1:
            raise EdgeError(f"--max-frames must be at least 1, got {args.max_frames}", fix="pass e.g. 300",
                            where="--max-frames")
        if args.oracle is not None and not 0.0 <= args.oracle < 1.0:
            raise EdgeError(f"--oracle is a miss rate in [0, 1), got {args.oracle}", fix="pass e.g. --oracle 0.1",
                            where="--oracle")
        score = measure(args.source, args.model, args.backend, args.max_frames, oracle_miss_rate=args.oracle,
                        tracker_options={"class_aware": args.class_aware}, seed=args.seed,
                        score_threshold=args.threshold)
    except EdgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    detector = "oracle" if args.oracle is not None else args.model
    print(json.dumps(dict(score.to_dict(), source=args.source, model=detector)) if args.json else score.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
