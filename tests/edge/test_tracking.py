"""Tests for edge.tracking: IoU, assignment (SciPy and NumPy), the Kalman filter and the Tracker."""

import itertools
from typing import List, Sequence, Tuple

import numpy as np
import pytest

import edge.tracking.assignment as assignment
from edge.decoders.nms import pairwise_iou
from edge.errors import EdgeError
from edge.results import Classification, Detections
from edge.tracking import Tracker, hungarian, kalman, linear_assignment

# -- IoU and assignment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
        ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
        ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),  # touching edges
        ([0, 0, 10, 10], [2, 2, 4, 4], 4 / 100),  # inside
        ([0, 0, 0, 10], [0, 0, 0, 10], 0.0),  # no area
    ],
)
def test_pairwise_iou_values_for_tracking(a, b, expected):
    assert pairwise_iou([a], [b], dtype=np.float64)[0, 0] == pytest.approx(expected)
    assert pairwise_iou([a, b], [b, a], dtype=np.float64).shape == (2, 2)
    assert pairwise_iou(np.zeros((0, 4)), [a], dtype=np.float64).shape == (0, 1)


def brute_force_min_cost(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    return brute_force_min_cost(cost.T)


COST_TABLES = [
    ([[4, 1, 3], [2, 0, 5], [3, 2, 2]], [(0, 1), (1, 0), (2, 2)]),
    ([[1, 2], [2, 1], [0.5, 0.5]], None),  # more rows than columns
    ([[10, 10, 1, 10]], [(0, 2)]),
    ([[0.1, 0.2], [0.15, 0.9]], [(0, 1), (1, 0)]),  # greedy would take (0, 0) first
]


@pytest.mark.parametrize("cost, expected_pairs", COST_TABLES)
def test_numpy_hungarian_finds_the_optimum(cost, expected_pairs):
    cost = np.array(cost, float)
    rows, cols = hungarian(cost)
    assert len(rows) == min(cost.shape) and len(set(cols.tolist())) == len(cols)
    assert cost[rows, cols].sum() == pytest.approx(brute_force_min_cost(cost))
    if expected_pairs is not None:
        assert list(zip(rows.tolist(), cols.tolist())) == expected_pairs


def test_numpy_hungarian_matches_brute_force_on_random_tables():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = rng.integers(1, 6, size=2)
        cost = rng.integers(0, 5, size=(n, m)).astype(float) if rng.random() < 0.5 else rng.random((n, m))
        rows, cols = hungarian(cost)
        assert cost[rows, cols].sum() == pytest.approx(brute_force_min_cost(cost))


@pytest.mark.parametrize(
    "cost, max_cost, expected_pairs",
    [
        ([[0.1, 0.9], [0.9, 0.2]], 0.5, [(0, 0), (1, 1)]),
        ([[0.1, 0.9], [0.9, 0.7]], 0.5, [(0, 0)]),  # (1, 1) costs too much: unmatched
        ([[0.9, 0.9]], 0.5, []),
        ([[np.inf, 0.3], [0.2, np.inf]], 0.5, [(0, 1), (1, 0)]),  # inf: never pair
        ([[0.4, 0.1], [0.1, 0.8]], 0.5, [(0, 1), (1, 0)]),
        (np.zeros((0, 3)), 0.5, []),
    ],
)
@pytest.mark.parametrize("solver", ["numpy", "scipy"])
def test_linear_assignment_respects_max_cost_with_both_solvers(cost, max_cost, expected_pairs, solver):
    if solver == "scipy":
        pytest.importorskip("scipy")
    rows, cols = linear_assignment(np.array(cost, float), max_cost, use_scipy=solver == "scipy")
    assert list(zip(rows.tolist(), cols.tolist())) == expected_pairs


def test_scipy_and_numpy_solvers_agree_on_random_iou_tables():
    pytest.importorskip("scipy")
    rng = np.random.default_rng(1)
    for _ in range(100):
        a = rng.uniform(0, 100, size=(rng.integers(0, 8), 2))
        b = rng.uniform(0, 100, size=(rng.integers(0, 8), 2))
        cost = 1 - pairwise_iou(np.hstack([a, a + 30]), np.hstack([b, b + 30]), dtype=np.float64)
        fast = linear_assignment(cost, 0.8, use_scipy=True)
        slow = linear_assignment(cost, 0.8, use_scipy=False)
        assert cost[fast].sum() == pytest.approx(cost[slow].sum())
        assert len(fast[0]) == len(slow[0])


@pytest.mark.parametrize("cost", [np.zeros(3), np.array([[np.nan, 1.0]])])
def test_hungarian_refuses_bad_tables(cost):
    with pytest.raises(ValueError, match="cost"):
        hungarian(cost)


# -- Kalman filter ---------------------------------------------------------------------------


def test_box_conversions_round_trip():
    boxes = np.array([[10, 20, 50, 100], [0, 0, 1, 1]], float)
    xyah = kalman.xyxy_to_xyah(boxes)
    assert xyah[0].tolist() == [30, 60, 0.5, 80]
    assert np.allclose(kalman.xyah_to_xyxy(xyah), boxes)


def test_kalman_filter_learns_a_constant_velocity():
    box = np.array([[100.0, 100.0, 140.0, 180.0]])
    mean, covariance = kalman.initiate(kalman.xyxy_to_xyah(box))
    for step in range(1, 30):
        mean, covariance = kalman.predict(mean, covariance)
        mean, covariance = kalman.update(mean, covariance, kalman.xyxy_to_xyah(box + [5 * step, 2 * step] * 2))
    assert mean[0, 4:6] == pytest.approx([5, 2], abs=0.05)
    predicted, _ = kalman.predict(mean, covariance)
    assert kalman.xyah_to_xyxy(predicted)[0] == pytest.approx((box + [150, 60] * 2)[0], abs=0.5)
    assert np.allclose(covariance, np.transpose(covariance, (0, 2, 1)))  # stays symmetric


# -- Tracker ---------------------------------------------------------------------------------

Box = Tuple[float, float, float, float]


def frame(*items: Tuple[Box, float], class_ids: Sequence[int] = ()) -> Detections:
    boxes = [box for box, _ in items]
    return Detections(np.array(boxes, np.float32).reshape(-1, 4), [s for _, s in items],
                      list(class_ids) or [0] * len(items))


def moving(x: float, y: float = 100.0, size: float = 40.0) -> Box:
    return (x, y, x + size, y + size)


def run(tracker: Tracker, frames: Sequence[Detections]) -> List[List[int]]:
    ids = []
    for detections in frames:
        tracked = tracker.update(detections)
        ids.append(tracked.track_ids.tolist())
    return ids


def test_two_moving_objects_keep_their_ids():
    frames = [frame((moving(10 + 8 * t), 0.9), (moving(400 - 8 * t, 300), 0.8)) for t in range(20)]
    assert run(Tracker(), frames) == [[1, 2]] * 20


def test_crossing_objects_keep_their_ids_through_the_crossing():
    # Same size, opposite directions, vertically offset by 10 px, crossing at t = 10.
    tracker = Tracker()
    for t in range(21):
        tracked = tracker.update(frame((moving(100 + 10 * t, 100), 0.9), (moving(300 - 10 * t, 110), 0.9)))
        assert tracked.track_ids.tolist() == [1, 2], t
    assert tracked.boxes_xyxy[0, 0] == 300  # id 1 is still the object that moves right


def test_output_keeps_input_order_and_fields():
    keypoints = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    detections = Detections([[0, 0, 10, 10], [50, 50, 70, 70]], [0.7, 0.9], [1, 0], keypoints, ["a", "b"])
    tracked = Tracker().update(detections)
    assert tracked.track_ids.tolist() == [1, 2]
    assert np.array_equal(tracked.boxes_xyxy, detections.boxes_xyxy)
    assert np.array_equal(tracked.keypoints_xy, keypoints) and tracked.labels == ["a", "b"]
    assert tracked.class_ids.tolist() == [1, 0]


@pytest.mark.parametrize(
    "gap_frames, lost_frames, same_id",
    [(5, 30, True), (30, 30, True), (31, 30, False), (3, 2, False), (0, 0, True)],
)
def test_a_lost_track_comes_back_with_its_id_within_the_buffer(gap_frames, lost_frames, same_id):
    tracker = Tracker(lost_frames=lost_frames)
    steady = [frame((moving(100), 0.9))] * 3
    ids = run(tracker, steady + [frame()] * gap_frames + steady)
    assert ids[:3] == [[1]] * 3 and ids[3:3 + gap_frames] == [[]] * gap_frames
    # A new track needs two frames before it has an id (confirm_frames=2).
    assert ids[-2:] == ([[1], [1]] if same_id else [[2], [2]])
    assert ids[-3] == ([1] if same_id else [])


def test_low_score_detections_extend_tracks_but_never_start_them():
    tracker = Tracker(high_score=0.5, low_score=0.1)
    frames = [frame((moving(100 + 5 * t), 0.9)) for t in range(3)]
    frames += [frame((moving(115 + 5 * t), 0.3), (moving(500), 0.3)) for t in range(3)]  # occluded: low scores
    ids = run(tracker, frames)
    assert ids == [[1], [1], [1], [1], [1], [1]]  # the far low-score box never gets a track
    assert run(Tracker(low_score=0.4), frames[:3] + [frame((moving(115), 0.3))]) == [[1], [1], [1], []]


@pytest.mark.parametrize(
    "score, birth_score, first_frame_ids",
    [(0.65, 0.6, [1]), (0.55, 0.6, []), (0.95, 0.9, [1])],
)
def test_birth_threshold(score, birth_score, first_frame_ids):
    tracker = Tracker(birth_score=birth_score)
    assert run(tracker, [frame((moving(100), score))] * 3)[0] == first_frame_ids


@pytest.mark.parametrize("confirm_frames, expected", [(1, [[1], [1, 2], [1, 2]]), (2, [[1], [1], [1, 2]]),
                                                       (3, [[1], [1], [1]])])
def test_new_tracks_get_ids_after_confirm_frames_except_on_the_first_frame(confirm_frames, expected):
    frames = [frame((moving(100), 0.9))] + [frame((moving(100), 0.9), (moving(300), 0.9))] * 2
    assert run(Tracker(confirm_frames=confirm_frames), frames) == expected


def test_a_one_frame_false_positive_never_gets_an_id_and_ids_stay_consecutive():
    frames = [frame((moving(100), 0.9))]
    frames += [frame((moving(100), 0.9), (moving(500), 0.9))]  # flicker: one frame only
    frames += [frame((moving(100), 0.9))] * 2 + [frame((moving(100), 0.9), (moving(300), 0.9))] * 2
    assert run(Tracker(), frames) == [[1], [1], [1], [1], [1], [1, 2]]


def test_class_aware_matching_starts_a_new_track_when_the_class_changes():
    frames = [frame((moving(100), 0.9), class_ids=[0])] * 2 + [frame((moving(100), 0.9), class_ids=[1])] * 2
    assert run(Tracker(), frames) == [[1], [1], [1], [1]]
    assert run(Tracker(class_aware=True), frames) == [[1], [1], [], [2]]


def test_reset_forgets_tracks_and_restarts_ids():
    tracker = Tracker()
    run(tracker, [frame((moving(100), 0.9), (moving(300), 0.9))] * 2)
    assert tracker.active_ids.tolist() == [1, 2]
    tracker.reset()
    assert tracker.active_ids.tolist() == [] and tracker.frame_count == 0
    assert run(tracker, [frame((moving(300), 0.9))]) == [[1]]


def test_scipy_and_numpy_assignment_give_the_same_tracks(monkeypatch):
    pytest.importorskip("scipy")
    rng = np.random.default_rng(3)
    starts = rng.uniform(0, 600, size=(8, 2))
    velocities = rng.uniform(-6, 6, size=(8, 2))
    frames = []
    for t in range(40):
        keep = rng.random(8) > 0.15  # misses
        xy = starts[keep] + t * velocities[keep] + rng.normal(0, 1.5, size=(keep.sum(), 2))
        frames.append(Detections(np.hstack([xy, xy + 50]), rng.uniform(0.2, 1.0, keep.sum()), np.zeros(keep.sum())))
    with_scipy = run(Tracker(), frames)
    monkeypatch.setattr(assignment, "_scipy_checked", True)
    monkeypatch.setattr(assignment, "_scipy_solver", None)
    assert run(Tracker(), frames) == with_scipy
    assert max(max(ids, default=0) for ids in with_scipy) >= 8


class _Decoder:
    score_threshold = 0.5


class _Model:
    decoder = _Decoder()


def test_for_model_takes_the_models_threshold_and_lowers_the_decoders():
    model = _Model()
    model.decoder = _Decoder()
    tracker = Tracker.for_model(model)
    assert (tracker.high_score, tracker.birth_score, tracker.low_score) == (0.5, pytest.approx(0.6), 0.1)
    assert model.decoder.score_threshold == 0.1
    model.decoder = _Decoder()
    tracker = Tracker.for_model(model, high_score=0.7)
    assert tracker.high_score == 0.7 and tracker.birth_score == pytest.approx(0.76)
    assert Tracker.for_model(object()).high_score == 0.5  # no decoder: plain defaults


def test_for_model_twice_fits_the_same_threshold():
    """A new tracker per video must not inherit the threshold the previous one lowered."""
    model = _Model()
    model.decoder = _Decoder()
    first, second = Tracker.for_model(model), Tracker.for_model(model)
    assert repr(first) == repr(second) and second.high_score == 0.5
    assert model.decoder.score_threshold == 0.1


@pytest.mark.parametrize("threshold, birth", [(0.3, 0.44), (0.9, 0.92), (0.99, 0.992)])
def test_a_high_threshold_still_lets_tracks_be_born(threshold, birth):
    model = _Model()
    model.decoder = _Decoder()
    model.decoder.score_threshold = threshold
    tracker = Tracker.for_model(model)
    assert tracker.birth_score == pytest.approx(birth) and tracker.birth_score < 1.0
    box = Detections(np.array([[10, 10, 50, 50]]), np.array([min(0.999, birth + 0.005)]), np.array([0]))
    assert tracker.update(box).track_ids.tolist() == [1]


def test_for_model_refuses_a_classifier():
    class Classifier:
        task = "classify"

    with pytest.raises(EdgeError, match="task is 'classify'"):
        Tracker.for_model(Classifier())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"high_score": 1.5}, "high_score must be in"),
        ({"low_score": -0.1}, "low_score must be in"),
        ({"match_iou": 0.0}, "match_iou must be in"),
        ({"low_score": 0.6, "high_score": 0.5}, "above high_score"),
        ({"birth_score": 0.4}, "below high_score"),
        ({"lost_frames": -1}, "lost_frames must be an integer >= 0"),
        ({"lost_frames": 2.5}, "lost_frames must be an integer"),
        ({"confirm_frames": 0}, "confirm_frames must be an integer >= 1"),
    ],
)
def test_bad_tracker_settings_are_one_line_errors_with_a_fix(kwargs, message):
    with pytest.raises(EdgeError, match=message) as caught:
        Tracker(**kwargs)
    assert "Fix:" in str(caught.value) and "\n" not in str(caught.value)


def test_update_refuses_a_classification():
    with pytest.raises(TypeError, match="Detections"):
        Tracker().update(Classification([0], [1.0]))


def test_empty_frames_and_nan_boxes_are_harmless():
    tracker = Tracker()
    assert run(tracker, [frame(), Detections([[np.nan, 0, 1, 1]], [0.9], [0]), frame()]) == [[], [], []]
