"""The task-model benchmark with tiny counts: its rows, pairing, inputs and flags (never its timings)."""

import json

import numpy as np
import pytest

from benchmarks.task_rows import (
    CASES,
    MASK_SIDE,
    OVERLAYS,
    _on_copies_us,
    bare_session,
    blocked_us,
    inputs,
    instance_masks,
)
from benchmarks.tasks import main, report, run


@pytest.fixture(scope="module")
def results():
    return run(count=3, block=2, warmup=1)


def test_every_model_and_pipeline_has_e2e_and_bare(results):
    rows = {row["name"]: row for row in results["rows"]}
    assert list(rows) == list(CASES)
    for name, row in rows.items():
        for path in ("e2e", "bare"):
            stats = row[path]
            assert stats["n"] == 3, (name, path)
            assert 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p95_ms"], (name, path)
        assert row["overhead_p50_ms"] == pytest.approx(row["e2e"]["p50_ms"] - row["bare"]["p50_ms"])
        assert row["kind"] == CASES[name][0]
        assert row["session_options"]["providers"] == ["CPUExecutionProvider"]
    assert {rows[n]["task"] for n in ("face_landmark", "hand_landmark_lite", "face_mesh", "hands")} == {"keypoints"}
    assert rows["selfie_segmentation"]["task"] == "segment"
    assert rows["digit_embedder"]["task"] == rows["digit_recognition"]["task"] == "embed"
    # models: one session run per call and edge's three stages; pipelines: the detector + one run per crop
    for name, (kind, _) in CASES.items():
        if kind == "model":
            assert rows[name]["bare_runs"] == 1
            assert set(rows[name]["edge_stages_p50_ms"]) == {"preprocess", "infer", "decode"}
        else:
            assert rows[name]["bare_runs"] >= 1
            assert set(rows[name]["edge_stages_p50_ms"]) == {"second_stage"}


def test_rows_find_what_the_inputs_hold(results):
    rows = {row["name"]: row for row in results["rows"]}
    assert rows["face_landmark"]["found"] == 1  # the astronaut's face crop
    assert rows["face_mesh"]["found"] == 1 and rows["face_mesh"]["bare_runs"] == 2  # one face, one crop
    assert rows["selfie_segmentation"]["found"] == 1  # the person class is present
    assert rows["digit_embedder"]["found"] == 1
    recognition = rows["digit_recognition"]
    assert recognition["found"] >= 3 and recognition["bare_runs"] == recognition["found"] + 1  # each crop embedded
    assert rows["face_mesh"]["input"] == "astronaut 1280x720"
    assert rows["face_landmark"]["input"].startswith("astronaut face crop ")


def test_overlay_rows(results):
    overlays = {row["name"]: row for row in results["overlays"]}
    assert list(overlays) == list(OVERLAYS)
    for name, row in overlays.items():
        assert row["n"] == 3 and 0 < row["p50_ms"] <= row["p95_ms"], name
        assert row["frame_wh"] == [1280, 720]
    masks = overlays["instance_masks"]
    assert masks["what"] == f"10 masks of {MASK_SIDE}x{MASK_SIDE}"
    assert masks["target_p50_ms"] == 3.0 and masks["meets_target"] == (masks["p50_ms"] <= 3.0)
    assert overlays["keypoints"]["what"] == "1 x 468 points"
    assert overlays["identities"]["what"].endswith("named") and "target_p50_ms" not in overlays["identities"]


def test_report_lists_every_row(results):
    text = report(results)
    for name in list(CASES) + list(OVERLAYS):
        assert f"| {name} |" in text
    assert "p50 <= 3 ms: " in text
    assert json.loads(json.dumps(results)) == results  # plain JSON
    loads = results["environment"]["load_average"]
    assert len(loads) == 2 and all(value is None or value >= 0 for value in loads)
    assert results["count"] == 3 and results["block"] == 2 and results["frame_wh"] == [1280, 720]


def test_bare_session_has_edge_options_and_gives_edge_outputs():
    from edge.model import Model

    image = inputs()["face crop"]
    with Model("face_landmark", backend="onnxruntime-cpu", threads=1) as model:
        session, facts = bare_session(model)
        tensor = model.preprocess(image)[0].copy()
        ours = model.infer(tensor)
        names = [o.name for o in model.backend.outputs]
        theirs = dict(zip(names, session.run(names, {model.config.input.name: tensor})))
        expected = model.backend._session_options()
    assert facts["intra_op_num_threads"] == expected.intra_op_num_threads == 1
    assert facts["graph_optimization_level"] == str(expected.graph_optimization_level).split(".")[-1]
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(theirs[name], ours[name], rtol=0, atol=1e-6, err_msg=name)


def test_inputs_are_camera_frames_and_crops():
    images = inputs()
    assert images["frame"].shape == images["digits frame"].shape == (720, 1280, 3)
    assert images["face crop"].shape == (131, 129, 3)  # the hand-measured face box with a 25 % margin
    assert images["digit crop"].shape[0] == images["digit crop"].shape[1] > 32
    assert all(image.dtype == np.uint8 for image in images.values())


def test_blocked_us_runs_blocks_in_alternating_order():
    calls = []
    samples = blocked_us([lambda: calls.append("a"), lambda: calls.append("b")], count=5, block=2, warmup=1)
    assert "".join(calls) == "ab" + "aabb" + "bbaa" + "ab"  # warm-up, then rounds of blocks, reversed every round
    assert [s.shape for s in samples] == [(5,), (5,)] and all((s > 0).all() for s in samples)
    calls.clear()
    blocked_us([lambda: calls.append("a"), lambda: calls.append("b")], count=3, block=1, warmup=0)
    assert "".join(calls) == "abbaab"  # block 1: benchmarks.timing.interleaved_us


def test_each_overlay_call_gets_a_fresh_copy():
    frame = np.full((4, 6, 3), 7, np.uint8)
    seen = []

    def scribble(scene):
        seen.append(bool((scene == 7).all()))
        scene[:] = 0

    samples = _on_copies_us([(frame, scribble), (frame, scribble)], count=4, warmup=2)
    assert seen == [True] * 12 and (frame == 7).all()
    assert [s.shape for s in samples] == [(4,), (4,)]


def test_instance_masks_lie_in_their_boxes():
    segmentation = instance_masks(seed=3)
    assert segmentation.masks.shape == (10, 720, 1280) and len(segmentation) == 10
    for box, mask in zip(segmentation.instances.boxes_xyxy, segmentation.masks):
        x1, y1, x2, y2 = box.astype(int)
        assert x2 - x1 == y2 - y1 == MASK_SIDE and 0 <= x1 and x2 <= 1280 and 0 <= y1 and y2 <= 720
        inside = np.count_nonzero(mask[y1:y2, x1:x2])
        assert inside == np.count_nonzero(mask) > 0.25 * np.pi * (0.6 * MASK_SIDE) ** 2 * 0.9
    again = instance_masks(seed=3)
    assert np.array_equal(again.masks, segmentation.masks)


@pytest.mark.parametrize("argv, flag", [(["--models", "selfie,face_mesh"], "--models"),
                                        (["--overlays", "masks"], "--overlays"),
                                        (["--count", "0"], "--count"), (["--block", "0"], "--block"),
                                        (["--threads", "0"], "--threads")])
def test_bad_flags_are_one_line_errors(capsys, argv, flag):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {flag} | ") and "Fix: " in lines[0]
    assert captured.out == ""


def test_cli_writes_json_and_markdown(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--models", "digit_embedder,face_mesh", "--overlays", "instance_masks", "--count", "2",
                 "--warmup", "0", "--json", str(tmp_path / "t.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    data = json.loads((tmp_path / "t.json").read_text())
    assert [row["name"] for row in data["rows"]] == ["digit_embedder", "face_mesh"]
    assert [row["name"] for row in data["overlays"]] == ["instance_masks"]
    assert json.loads((out / "tasks.json").read_text()) == data
    assert (out / "tasks.md").read_text() == printed
    assert main(["--models", "digit_embedder", "--no-overlays", "--count", "1", "--warmup", "0"]) == 0
    assert "overlay" not in capsys.readouterr().out
