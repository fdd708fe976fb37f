"""Tests for edge.results: the optional track_ids column of Detections."""

import numpy as np
import pytest

from edge.results import Detections

BOXES = [[0, 0, 10, 10], [5, 5, 20, 20], [30, 30, 40, 45]]


def three(track_ids=None, keypoints=None) -> Detections:
    return Detections(BOXES, [0.9, 0.5, 0.7], [0, 1, 0], keypoints, ["face", "cat"], track_ids)


@pytest.mark.parametrize(
    "track_ids, expected",
    [
        (None, None),
        ([3, 1, 7], [3, 1, 7]),
        (np.array([[1], [2], [3]], np.int32), [1, 2, 3]),
        ((4.0, 5.0, 6.0), [4, 5, 6]),
    ],
    ids=["untracked", "list", "column-int32", "floats"],
)
def test_track_ids_are_an_int64_column_or_none(track_ids, expected):
    detections = three(track_ids)
    if expected is None:
        assert detections.track_ids is None
    else:
        assert detections.track_ids.dtype == np.int64 and detections.track_ids.tolist() == expected


def test_wrong_number_of_track_ids_is_refused():
    with pytest.raises(ValueError):
        three([1, 2])


@pytest.mark.parametrize(
    "index, expected_ids",
    [
        (1, [1]),
        (slice(0, 2), [3, 1]),
        (np.array([True, False, True]), [3, 7]),
        ([2, 0], [7, 3]),
        (np.array([], np.int64), []),
    ],
    ids=["int", "slice", "mask", "list", "empty"],
)
def test_indexing_keeps_track_ids_with_their_boxes(index, expected_ids):
    keypoints = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    detections = three([3, 1, 7], keypoints)
    selected = detections[index]
    assert selected.track_ids.tolist() == expected_ids
    rows = [[3, 1, 7].index(t) for t in expected_ids]
    assert np.array_equal(selected.boxes_xyxy, detections.boxes_xyxy[rows])
    assert np.array_equal(selected.keypoints_xy, keypoints[rows])
    assert three()[index].track_ids is None


def test_to_json_has_track_id_only_when_tracked():
    tracked = three([3, 1, 7]).to_json()["detections"]
    assert [item["track_id"] for item in tracked] == [3, 1, 7]
    assert tracked[0] == {"box_xyxy": [0.0, 0.0, 10.0, 10.0], "score": 0.9, "class_id": 0, "label": "face",
                          "track_id": 3}
    assert all("track_id" not in item for item in three().to_json()["detections"])


def test_with_track_ids_copies_without_touching_the_original():
    detections = three()
    tracked = detections.with_track_ids([9, 8, 7])
    assert tracked.track_ids.tolist() == [9, 8, 7] and detections.track_ids is None
    assert np.array_equal(tracked.boxes_xyxy, detections.boxes_xyxy) and tracked.labels == ["face", "cat"]


def test_empty_detections_have_no_track_ids():
    assert Detections.empty().track_ids is None
    assert Detections.empty().with_track_ids([]).track_ids.shape == (0,)
