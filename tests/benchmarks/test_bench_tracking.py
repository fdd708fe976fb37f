"""Tests for benchmarks.tracking: the identity-switch metric on hand-made sequences, and its CLI."""

import json

import numpy as np
import pytest

from benchmarks.tracking import main, oracle_detections, score_tracking, truth_objects

A = [0, 0, 10, 10]
B = [100, 100, 120, 120]
A_NEAR = [1, 0, 11, 10]  # IoU with A: 90/110 = 0.82
A_FAR = [6, 0, 16, 10]  # IoU with A: 40/160 = 0.25, below 0.5


def frames(*items):
    """items: (truth ids, truth boxes, track ids, track boxes) per frame."""
    return list(items)


SEQUENCES = [
    # name, frames, (id switches, fragmentations, matched boxes, truth boxes, unmatched track boxes)
    ("perfect", frames((["a"], [A], [1], [A]), (["a"], [A], [1], [A_NEAR])), (0, 0, 2, 2, 0)),
    ("one switch", frames((["a"], [A], [1], [A]), (["a"], [A], [2], [A]), (["a"], [A], [2], [A])), (1, 0, 3, 3, 0)),
    ("switch back counts again", frames((["a"], [A], [1], [A]), (["a"], [A], [2], [A]), (["a"], [A], [1], [A])),
     (2, 0, 3, 3, 0)),
    ("missed then same id: fragmentation", frames((["a"], [A], [1], [A]), (["a"], [A], [], []), (["a"], [A], [1], [A])),
     (0, 1, 2, 3, 0)),
    ("missed then new id: both", frames((["a"], [A], [1], [A]), (["a"], [A], [], []), (["a"], [A], [2], [A])),
     (1, 1, 2, 3, 0)),
    ("out of view is no fragmentation", frames((["a"], [A], [1], [A]), ([], [], [], []), (["a"], [A], [1], [A])),
     (0, 0, 2, 2, 0)),
    ("poor overlap is a miss", frames((["a"], [A], [1], [A_FAR]),), (0, 0, 0, 1, 1)),
    ("two objects swap ids", frames((["a", "b"], [A, B], [1, 2], [A, B]), (["a", "b"], [A, B], [2, 1], [A, B])),
     (2, 0, 4, 4, 0)),
    ("box order does not matter", frames((["a", "b"], [A, B], [2, 1], [B, A]), (["a", "b"], [A, B], [1, 2], [A, B])),
     (0, 0, 4, 4, 0)),
    ("late first match is no switch", frames((["a"], [A], [], []), (["a"], [A], [5], [A])), (0, 0, 1, 2, 0)),
    ("extra track box", frames((["a"], [A], [1, 2], [A, B]),), (0, 0, 1, 1, 1)),
]


@pytest.mark.parametrize("name, sequence, expected", SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_score_counts(name, sequence, expected):
    score = score_tracking(sequence)
    got = (score.id_switches, score.fragmentations, score.matched_boxes, score.truth_boxes,
           score.unmatched_track_boxes)
    assert got == expected


def test_rates_and_json():
    sequence = [(["a"], [A], [1 + (t >= 50)], [A]) for t in range(200)]  # one switch in 200 frames
    score = score_tracking(sequence)
    assert score.id_switches_per_100_frames == 0.5 and score.matched_fraction == 1.0
    assert (score.truth_objects, score.track_ids, score.frames) == (1, 2, 200)
    data = score.to_dict()
    assert data["id_switches_per_100_frames"] == 0.5 and json.loads(json.dumps(data)) == data
    assert "0.50 per 100 frames" in score.text()
    assert score_tracking([]).matched_fraction == 1.0 and score_tracking([]).id_switches_per_100_frames == 0.0


def test_mismatched_ids_and_boxes_are_refused():
    with pytest.raises(ValueError, match="one id per"):
        score_tracking([(["a", "b"], [A], [], [])])


@pytest.mark.parametrize(
    "truth, expected_ids, expected_count",
    [
        ({"faces_xyxy": [A]}, ["faces_xyxy[0]"], 1),
        ({"faces_xyxy": []}, [], 0),
        ({"objects_xyxy": [A, B], "object_ids": [7, 3], "class_ids": [1, 2]}, [7, 3], 2),
        ({"other": 1}, [], 0),
    ],
)
def test_truth_objects_reads_both_truth_layouts(truth, expected_ids, expected_count):
    ids, boxes = truth_objects(truth)
    assert ids == expected_ids and boxes.shape == (expected_count, 4)
    if expected_count:
        assert np.array_equal(boxes[0], A)


def test_cli_on_the_demo_scene(capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    assert main(["--source", "demo://", "--backend", "onnxruntime-cpu", "--max-frames", "60", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["frames"] == 60 and data["truth_objects"] == 1
    assert data["id_switches"] == 0 and data["matched_fraction"] >= 0.95  # the face stays in view


def test_cli_user_errors_exit_2(capsys):
    pytest.importorskip("onnxruntime")
    assert main(["--max-frames", "0"]) == 2
    assert main(["--model", "digits", "--backend", "onnxruntime-cpu", "--max-frames", "1"]) == 2
    assert capsys.readouterr().err.count("Fix:") == 2


@pytest.mark.parametrize("miss_rate, expected_count", [(0.0, 2), (0.999, 0)])
def test_oracle_detections_jitter_and_miss_truth_boxes(miss_rate, expected_count):
    truth = {"objects_xyxy": [A, B], "object_ids": [1, 2]}
    detections = oracle_detections(truth, np.random.default_rng(0), miss_rate, jitter=0.05)
    assert len(detections) == expected_count
    if expected_count:
        assert np.abs(detections.boxes_xyxy - np.array([A, B])).max() <= 0.05 * 20 + 1e-4
        assert ((detections.scores >= 0.3) & (detections.scores < 1)).all()


def test_oracle_run_on_the_demo_scene_tracks_the_face_without_switches(capsys):
    pytest.importorskip("cv2")
    assert main(["--source", "demo://", "--oracle", "0", "--max-frames", "40", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["model"], data["id_switches"], data["fragmentations"], data["track_ids"]) == ("oracle", 0, 0, 1)
    assert data["matched_fraction"] == 1.0
    assert main(["--oracle", "1.5"]) == 2


def test_a_kept_correspondence_wins_over_a_better_overlapping_duplicate():
    # Track 2 is a duplicate box on object "a" that overlaps it better in frame 2: still no switch,
    # because track 1 still overlaps "a" by IoU >= 0.5 (CLEAR MOT keeps valid correspondences).
    sequence = [(["a"], [A], [1], [A]), (["a"], [A], [1, 2], [A_NEAR, A])]
    score = score_tracking(sequence)
    assert (score.id_switches, score.matched_boxes, score.unmatched_track_boxes) == (0, 2, 1)
