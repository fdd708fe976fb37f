"""The decode benchmark's rows: shapes, candidate counts and kept boxes (never its timings)."""

from benchmarks.decode import CASES, decode_rows, report, yolo_head


def test_decode_rows_cover_every_case_and_layout():
    rows = decode_rows(count=2)
    assert [(r["layout"], r["case"]) for r in rows[:-1]] == [(layout, case) for layout in ("anchor_free", "objectness")
                                                             for case in CASES]
    assert rows[-1]["decoder"] == "boxes" and rows[-1]["candidates"] == rows[-1]["kept"] > 0
    by_case = {(r["layout"], r["case"]): r for r in rows}
    for layout in ("anchor_free", "objectness"):
        assert by_case[(layout, "nothing")]["candidates"] == 0 and by_case[(layout, "nothing")]["kept"] == 0
        assert by_case[(layout, "200 objects")]["candidates"] == 200
        assert by_case[(layout, "crowded")]["kept"] == 300  # max_detections
    assert all(r["p50_ms"] > 0 and r["p95_ms"] >= r["p50_ms"] for r in rows)
    assert "| yolo anchor_free | 1x84x8400 | random logits |" in report(rows)


def test_heads_have_the_exported_shapes():
    assert yolo_head("nothing").shape == (1, 84, 8400)
    assert yolo_head("nothing", "objectness").shape == (1, 25200, 85)
