"""ByteTrack-style multi-object tracking: ids that persist across frames.

Each frame, every track's box is predicted by a Kalman filter, then detections are associated
in two stages, by IoU: confident detections first (against all tracks, lost ones included),
then the remaining low-score detections against the tracks still unmatched, which keeps a track
alive through a partial occlusion that lowers its score. A new confident detection starts a
track that gets an id once it has been matched ``confirm_frames`` frames in a row (on the
first frame at once); a track unmatched for more than ``lost_frames`` frames is dropped.
"""

from typing import Any, Optional, Tuple

import numpy as np

from edge.decoders.nms import pairwise_iou
from edge.errors import EdgeError
from edge.results import Detections
from edge.tracking import kalman
from edge.tracking.assignment import linear_assignment, linear_assignment_ready

# Unconfirmed tracks have one box of history; ByteTrack matches them with a looser IoU than stage 2.
_UNCONFIRMED_MATCH_IOU = 0.3
_EMPTY = np.zeros(0, np.int64)


def _check_fraction(name: str, value: float, low_open: bool = False) -> float:
    value = float(value)
    ok = (0.0 < value <= 1.0) if low_open else (0.0 <= value <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise EdgeError(f"tracker {name} must be in {interval}, got {value}", fix=f"pass e.g. {name}=0.5",
                        where="Tracker")
    return value


class Tracker:
    """Gives detections ids that persist across frames; ``update(detections)`` once per frame.

    high_score: detections at or above it are associated first and may start tracks.
    low_score: detections in [low_score, high_score) only extend existing tracks; below, ignored.
    birth_score: minimum score for a detection to start a track (>= high_score).
    match_iou: minimum IoU between a predicted track box and a confident detection.
    low_match_iou: minimum IoU for the second, low-score stage (stricter: those are less sure).
    lost_frames: how many frames a track without a detection is kept before it is dropped.
    confirm_frames: consecutive matches a new track needs before it gets an id (1 = at once).
    class_aware: only match a detection to a track of the same class id.

    ``update`` returns the detections that belong to confirmed tracks, in their input order, with
    ``track_ids`` set; ids start at 1 and increase. ``reset()`` forgets every track.
    """

    def __init__(self, high_score: float = 0.5, low_score: float = 0.1, birth_score: float = 0.6,
                 match_iou: float = 0.2, low_match_iou: float = 0.5, lost_frames: int = 30,
                 confirm_frames: int = 2, class_aware: bool = False) -> None:
        self.high_score = _check_fraction("high_score", high_score)
        self.low_score = _check_fraction("low_score", low_score)
        self.birth_score = _check_fraction("birth_score", birth_score)
        self.match_iou = _check_fraction("match_iou", match_iou, low_open=True)
        self.low_match_iou = _check_fraction("low_match_iou", low_match_iou, low_open=True)
        if self.low_score > self.high_score:
            raise EdgeError(f"tracker low_score {self.low_score} is above high_score {self.high_score}",
                            fix="pass low_score <= high_score", where="Tracker")
        if self.birth_score < self.high_score:
            raise EdgeError(f"tracker birth_score {self.birth_score} is below high_score {self.high_score}",
                            fix="pass birth_score >= high_score", where="Tracker")
        for name, value, minimum in (("lost_frames", lost_frames, 0), ("confirm_frames", confirm_frames, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise EdgeError(f"tracker {name} must be an integer >= {minimum}, got {value!r}",
                                fix=f"pass e.g. {name}={max(minimum, 2)}", where="Tracker")
        self.lost_frames = int(lost_frames)
        self.confirm_frames = int(confirm_frames)
        self.class_aware = bool(class_aware)
        linear_assignment_ready()  # import the solver now, not inside the first frame
        self.reset()

    @classmethod
    def for_model(cls, model: Any, **options: Any) -> "Tracker":
        """A tracker fitted to a detection model's score threshold (what the camera app's --track uses).

        Confident detections are those the model reports by default (``high_score`` = its decoder's
        score threshold; ``birth_score`` a fifth of the way from there to 1, as ByteTrack's 0.5 -> 0.6);
        the decoder's threshold is then lowered to ``low_score`` so that the second association stage
        sees the weak detections, as ByteTrack intends. The model's own threshold is remembered on its
        decoder, so a second call (a new tracker for the next video) fits the same threshold again.
        ``options`` override any of these.
        """
        if getattr(model, "task", "detect") != "detect":
            raise EdgeError(f"a tracker follows detected objects, but this model's task is '{model.task}'",
                            fix="track a detection model", where="Tracker.for_model")
        decoder = getattr(model, "decoder", None)
        threshold = getattr(decoder, "tracking_high_score", None)
        if threshold is None:
            threshold = getattr(decoder, "score_threshold", None)
        if threshold is not None:
            options.setdefault("high_score", float(threshold))
            high = float(options["high_score"])
            options.setdefault("birth_score", round(high + 0.2 * (1.0 - high), 4))
            options.setdefault("low_score", min(0.1, high))
        tracker = cls(**options)
        if threshold is not None:
            decoder.tracking_high_score = threshold  # type: ignore[union-attr]
            if tracker.low_score < decoder.score_threshold:  # type: ignore[union-attr]
                decoder.score_threshold = tracker.low_score  # type: ignore[union-attr]
        return tracker

    def reset(self) -> None:
        """Forget every track; the next id is 1 again."""
        self._mean = np.zeros((0, kalman.STATE_DIM))
        self._covariance = np.zeros((0, kalman.STATE_DIM, kalman.STATE_DIM))
        self._ids = np.zeros(0, np.int64)  # 0 while a track is unconfirmed
        self._class_ids = np.zeros(0, np.int64)
        self._lost = np.zeros(0, bool)  # not matched in the latest frame
        self._hits = np.zeros(0, np.int64)  # consecutive frames matched
        self._last_seen = np.zeros(0, np.int64)  # frame number of the latest match
        self._next_id = 1
        self.frame_count = 0

    def __repr__(self) -> str:
        return (f"Tracker(high_score={self.high_score}, low_score={self.low_score}, birth_score={self.birth_score}, "
                f"match_iou={self.match_iou}, low_match_iou={self.low_match_iou}, lost_frames={self.lost_frames}, "
                f"confirm_frames={self.confirm_frames}, class_aware={self.class_aware})")

    @property
    def active_ids(self) -> np.ndarray:
        """Ids of the confirmed tracks currently kept (matched in the latest frame or lost)."""
        return np.sort(self._ids[self._ids > 0])

    def update(self, detections: Detections) -> Detections:
        """Associate one frame's detections with the tracks; returns the tracked ones with track_ids."""
        if not isinstance(detections, Detections):
            raise TypeError(f"Tracker.update takes Detections, got {type(detections).__name__}")
        self.frame_count += 1
        mean = self._mean.copy()
        mean[self._lost, 7] = 0.0  # a lost box keeps drifting but stops growing or shrinking
        self._mean, self._covariance = kalman.predict(mean, self._covariance)
        boxes = detections.boxes_xyxy.astype(np.float64)
        scores, class_ids = detections.scores, detections.class_ids
        finite = np.isfinite(boxes).all(axis=1)
        high = finite & (scores >= self.high_score)
        low = finite & (scores >= self.low_score) & ~high
        track_boxes = kalman.xyah_to_xyxy(self._mean)
        confirmed = self._ids > 0
        matched_tracks, matched_dets = [], []

        def associate(tracks: np.ndarray, dets: np.ndarray, min_iou: float) -> None:
            rows, cols = self._match(tracks, dets, track_boxes, boxes, class_ids, min_iou)
            matched_tracks.append(rows)
            matched_dets.append(cols)

        associate(np.flatnonzero(confirmed), np.flatnonzero(high), self.match_iou)
        free_tracks = np.ones(len(self._ids), bool)
        free_tracks[np.concatenate(matched_tracks)] = False
        free_dets = np.ones(len(detections), bool)
        free_dets[np.concatenate(matched_dets)] = False
        associate(np.flatnonzero(confirmed & ~self._lost & free_tracks), np.flatnonzero(low), self.low_match_iou)
        associate(np.flatnonzero(~confirmed), np.flatnonzero(high & free_dets), _UNCONFIRMED_MATCH_IOU)
        track_rows = np.concatenate(matched_tracks)
        det_rows = np.concatenate(matched_dets)
        self._apply_matches(track_rows, det_rows, boxes, class_ids)
        free_dets[det_rows] = False
        born = np.flatnonzero(free_dets & high & (scores >= self.birth_score))
        det_rows = np.concatenate([det_rows, self._birth(born, boxes, class_ids)])
        track_of_det = np.concatenate([track_rows, np.arange(len(self._ids) - len(born), len(self._ids))])
        ids = self._ids[track_of_det]
        self._drop_stale()
        keep = ids > 0
        order = np.argsort(det_rows[keep], kind="stable")
        return detections[det_rows[keep][order]].with_track_ids(ids[keep][order])

    # -- steps -------------------------------------------------------------------------------

    def _match(self, tracks: np.ndarray, dets: np.ndarray, track_boxes: np.ndarray, boxes: np.ndarray,
               class_ids: np.ndarray, min_iou: float) -> Tuple[np.ndarray, np.ndarray]:
        """Optimal IoU matching of tracks (indices) to detections (indices); returns matched index pairs."""
        if len(tracks) == 0 or len(dets) == 0:
            return _EMPTY, _EMPTY
        cost = 1.0 - pairwise_iou(track_boxes[tracks], boxes[dets], dtype=np.float64)
        if self.class_aware:
            cost[self._class_ids[tracks][:, None] != class_ids[dets][None, :]] = np.inf
        # A tiny tolerance so that an IoU of exactly min_iou matches despite 1 - x rounding.
        rows, cols = linear_assignment(cost, 1.0 - min_iou + 1e-9)
        return tracks[rows], dets[cols]

    def _apply_matches(self, track_rows: np.ndarray, det_rows: np.ndarray, boxes: np.ndarray,
                       class_ids: np.ndarray) -> None:
        """Kalman-correct matched tracks, confirm those with enough hits, mark the others lost."""
        matched = np.zeros(len(self._ids), bool)
        matched[track_rows] = True
        if len(track_rows):
            mean, covariance = kalman.update(self._mean[track_rows], self._covariance[track_rows],
                                             kalman.xyxy_to_xyah(boxes[det_rows]))
            self._mean[track_rows], self._covariance[track_rows] = mean, covariance
            self._class_ids[track_rows] = class_ids[det_rows]
            self._last_seen[track_rows] = self.frame_count
        self._hits = np.where(matched, self._hits + 1, 0)
        self._lost = ~matched
        self._confirm(np.flatnonzero(matched & (self._ids == 0) & (self._hits >= self.confirm_frames)))
        # An unconfirmed track gets one chance per frame: unmatched, it is dropped at once.
        self._keep(matched | (self._ids > 0), track_rows)

    def _birth(self, dets: np.ndarray, boxes: np.ndarray, class_ids: np.ndarray) -> np.ndarray:
        """Start a track per detection index in ``dets``; returns ``dets``."""
        mean, covariance = kalman.initiate(kalman.xyxy_to_xyah(boxes[dets]))
        start = len(self._ids)
        self._mean = np.concatenate([self._mean, mean])
        self._covariance = np.concatenate([self._covariance, covariance])
        self._ids = np.concatenate([self._ids, np.zeros(len(dets), np.int64)])
        self._class_ids = np.concatenate([self._class_ids, class_ids[dets]])
        self._lost = np.concatenate([self._lost, np.zeros(len(dets), bool)])
        self._hits = np.concatenate([self._hits, np.ones(len(dets), np.int64)])
        self._last_seen = np.concatenate([self._last_seen, np.full(len(dets), self.frame_count, np.int64)])
        if self.confirm_frames <= 1 or self.frame_count == 1:
            self._confirm(np.arange(start, len(self._ids)))
        return dets

    def _confirm(self, rows: np.ndarray) -> None:
        self._ids[rows] = np.arange(self._next_id, self._next_id + len(rows))
        self._next_id += len(rows)

    def _drop_stale(self) -> None:
        self._keep(self.frame_count - self._last_seen <= self.lost_frames, None)

    def _keep(self, keep: np.ndarray, track_rows: Optional[Any]) -> None:
        """Keep only tracks where ``keep``; ``track_rows`` (matched rows) are renumbered in place."""
        if keep.all():
            return
        if track_rows is not None and len(track_rows):
            new_index = np.cumsum(keep) - 1
            track_rows[:] = new_index[track_rows]
        for name in ("_mean", "_covariance", "_ids", "_class_ids", "_lost", "_hits", "_last_seen"):
            setattr(self, name, getattr(self, name)[keep])
