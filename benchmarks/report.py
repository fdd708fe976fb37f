"""edgebench/2 results as a Markdown report, a flat CSV and files on disk, validated before anything is written.

``validate`` walks ``benchmarks/schema.json`` itself (the subset of JSON Schema it uses), so the written
results and the schema cannot drift apart; the tests check the same files with the full ``jsonschema``.
"""

import csv as _csv
import io
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

SCHEMA_ID = "edgebench/2"
#: the formats a reader takes: edgebench/1 rows were measured one after another (no probe, no rounds, speed-ups
#: from independently measured medians) but their latency statistics mean the same
READABLE = (SCHEMA_ID, "edgebench/1")
SCHEMA_PATH = Path(__file__).with_name("schema.json")
LAYERS = ("compute", "inference", "e2e")
#: What each layer includes when a row's stats do not say (see SCHEMA.md).
LAYER_INCLUDES = {
    "compute": "GPU compute only, between CUDA events",
    "inference": "the backend call: host-to-device copy + compute + device-to-host copy",
    "e2e": "preprocess + inference + decode of one frame",
}
STAT_COLUMNS = ("n", "min", "p50", "p50_ci_lo", "p50_ci_hi", "p90", "p95", "p99", "max", "mean", "std", "cv_pct",
                "outliers")
DASH = "—"


# ---------------------------------------------------------------- validation


def load_schema() -> Dict[str, Any]:
    """The edgebench/2 JSON Schema shipped next to this module (it reads edgebench/1 files too)."""
    try:
        return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    except OSError as error:
        raise RuntimeError(f"{SCHEMA_PATH} is missing ({error}). Fix: install edge with benchmarks/schema.json "
                           "as package data, or run from the repository.") from error


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _type_ok(value: Any, name: str) -> bool:
    if name == "integer":  # as in JSON Schema, 200.0 is an integer
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _check(value: Any, spec: Dict[str, Any], where: str, root: Dict[str, Any], errors: List[str]) -> None:
    """Append to ``errors`` what in ``value`` breaks ``spec`` (type, const, enum, required, properties, items)."""
    if "$ref" in spec:
        node: Any = root
        for part in spec["$ref"].lstrip("#/").split("/"):
            node = node[part]
        spec = node
    types = spec.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        if not any(_type_ok(value, name) for name in names):
            errors.append(f"{where}: expected {' or '.join(names)}, got {type(value).__name__} {value!r:.40}")
            return
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{where}: {value} is not a finite number (JSON has no NaN or Inf)")
    if "const" in spec and value != spec["const"]:
        errors.append(f"{where}: must be {spec['const']!r}, got {value!r}")
    if "enum" in spec and value not in spec["enum"]:
        errors.append(f"{where}: must be one of {spec['enum']}, got {value!r}")
    if "minimum" in spec and _type_ok(value, "number") and value < spec["minimum"]:
        errors.append(f"{where}: must be >= {spec['minimum']}, got {value!r}")
    if isinstance(value, dict):
        errors.extend(f"{where}: missing required field '{key}'" for key in spec.get("required", ())
                      if key not in value)
        properties = spec.get("properties", {})
        extra = spec.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], f"{where}.{key}", root, errors)
            elif isinstance(extra, dict):
                _check(item, extra, f"{where}.{key}", root, errors)
    if isinstance(value, list):
        if len(value) < spec.get("minItems", 0) or len(value) > spec.get("maxItems", len(value)):
            errors.append(f"{where}: expected {spec.get('minItems')}..{spec.get('maxItems')} items, got {len(value)}")
        if "items" in spec:
            for index, item in enumerate(value):
                _check(item, spec["items"], f"{where}[{index}]", root, errors)


def _check_row_meaning(row: Dict[str, Any], where: str, errors: List[str]) -> None:
    """Rules the JSON Schema cannot say: a reason on failed rows, ordered statistics and intervals."""
    if row.get("status") in ("failed", "skipped"):
        reason = row.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            errors.append(f"{where}: a {row['status']} row needs a one-line 'reason'")
        elif "\n" in reason.strip():
            errors.append(f"{where}.reason: must be one line (put tracebacks in the log, not the results)")
    for layer, stats in (row.get("latency_ms") or {}).items():
        if not isinstance(stats, dict) or not all(_type_ok(stats.get(k), "number") for k in ("min", "p50", "max")):
            continue
        ci = stats.get("p50_ci95")
        if not stats["min"] <= stats["p50"] <= stats["max"]:
            errors.append(f"{where}.latency_ms.{layer}: min <= p50 <= max does not hold")
        if isinstance(ci, list) and len(ci) == 2 and all(_type_ok(v, "number") for v in ci) and ci[0] > ci[1]:
            errors.append(f"{where}.latency_ms.{layer}.p50_ci95: low end {ci[0]} above high end {ci[1]}")


def validate(results: Any) -> List[str]:
    """What is wrong with an edgebench/2 (or /1) results dict, one line each (empty when it is valid)."""
    schema = load_schema()
    errors: List[str] = []
    _check(results, schema, "results", schema, errors)
    if isinstance(results, dict) and isinstance(results.get("rows"), list):
        for index, row in enumerate(results["rows"]):
            if isinstance(row, dict):
                _check_row_meaning(row, f"results.rows[{index}]", errors)
    return errors


# ---------------------------------------------------------------- formatting


def fmt_ms(value: Optional[float]) -> str:
    """Milliseconds with about three significant digits: 0.123, 4.56, 45.6, 456."""
    if value is None:
        return DASH
    magnitude = abs(value)
    digits = 3 if magnitude < 1 else 2 if magnitude < 10 else 1 if magnitude < 100 else 0
    return f"{value:.{digits}f}"


def _cell(text: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    return str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _stats(row: Dict[str, Any], layer: str) -> Optional[Dict[str, Any]]:
    return (row.get("latency_ms") or {}).get(layer)


def _p50_with_ci(stats: Optional[Dict[str, Any]]) -> str:
    if not stats:
        return DASH
    lo, hi = stats["p50_ci95"]
    return f"{fmt_ms(stats['p50'])} [{fmt_ms(lo)}, {fmt_ms(hi)}]"


def _speedup(row: Dict[str, Any]) -> str:
    if row.get("baseline"):
        return "1× (baseline)"
    speedup = row.get("speedup")
    if not speedup or "ratio" not in speedup:
        return DASH
    text = f"{speedup['ratio']:.2f}×"
    if speedup.get("ci95"):
        text += f" [{speedup['ci95'][0]:.2f}, {speedup['ci95'][1]:.2f}]"
    return text


def _status(row: Dict[str, Any]) -> str:
    status = row.get("status", "?")
    if status != "ok":
        return f"**{status}**: {row.get('reason') or 'no reason given'}"
    notes = []
    if row.get("unstable"):
        notes.append("UNSTABLE: " + "; ".join(row["unstable"]))
    elif row.get("stable") is False:
        notes.append("UNSTABLE (clocks changed or throttled)")
    drift = row.get("drift") or {}
    if drift.get("flagged"):
        notes.append(f"DRIFT: {drift.get('reason')}" + (" (re-measured)" if drift.get("remeasured") else ""))
    if row.get("round_spread_pct") is not None:
        notes.append(f"rounds ±{row['round_spread_pct'] / 2:.1f} %")
    return ", ".join(["ok"] + notes)


def _cold_start(row: Dict[str, Any]) -> str:
    cold = row.get("cold_start_ms") or {}
    return f"{fmt_ms(cold.get('load'))} / {fmt_ms(cold.get('first_inference'))}" if cold else DASH


def _memory(row: Dict[str, Any]) -> str:
    """The worker's peak resident memory (device memory is not measured: see SCHEMA.md, ``memory_mb``)."""
    host = (row.get("memory_mb") or {}).get("host_peak")
    return DASH if host is None else f"{host:.0f}"


def _spread(stats: Optional[Dict[str, Any]]) -> str:
    return f"{stats['n']} · {stats['cv_pct']:.1f}% · {stats['outliers']}" if stats else DASH


def environment_lines(results: Dict[str, Any]) -> List[str]:
    """The header: when, how, on what, and the harness's own cost."""
    env = results.get("environment", {})
    software = ", ".join(f"{key} {env[key]}" for key in ("python", "numpy", "onnxruntime", "opencv", "tensorrt",
                                                          "cuda", "torch") if env.get(key))
    lines = [f"- run: {results.get('created_utc', '?')} · `{results.get('command', '?')}`",
             f"- machine: {env.get('cpu', '?')}, {env.get('cores', '?')} cores"
             + (f", {env['threads']} threads" if env.get("threads") else ""),
             f"- software: {software}"]
    jetson = env.get("jetson")
    if jetson:
        parts = [f"{key} {jetson[key]}" for key in ("board", "jetpack", "l4t", "nvpmodel", "jetson_clocks",
                                                      "gpu_mhz", "emc_mhz") if jetson.get(key) is not None]
        lines.append(f"- Jetson: {', '.join(parts)}")
        if jetson.get("jetson_clocks") is False:
            lines.append("- jetson_clocks was off: clocks may scale during the run, so expect wider intervals")
    if results.get("harness_overhead_us") is not None:
        lines.append(f"- harness overhead: {results['harness_overhead_us']:.2f} µs per sample (median empty timed "
                     "call; included in every latency, not subtracted)")
    return lines


def _layer_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """One line per measured layer: what it includes, as each row says, else as SCHEMA.md defines it."""
    lines = []
    for layer in LAYERS:
        said: Dict[str, List[str]] = {}
        for row in rows:
            stats = _stats(row, layer)
            if stats:
                said.setdefault(stats.get("includes") or LAYER_INCLUDES[layer], []).append(row.get("backend", "?"))
        if len(said) == 1:
            lines.append(f"- **{layer}**: {next(iter(said))}")
        elif said:
            lines.append(f"- **{layer}**: " + "; ".join(f"{text} ({', '.join(backends)})"
                                                       for text, backends in said.items()))
    return lines


def markdown(results: Dict[str, Any]) -> str:
    """The report: environment header, machine speed, the A/A self-test on record, what the layers include, one
    table row per measured (model, backend) and one line per reason rows were skipped."""
    from .drift import speed_line
    from .selftest import record_line

    rows = results.get("rows", [])
    shown = [row for row in rows if row.get("status") != "skipped"]
    lines = [f"# edge benchmark ({results.get('schema', SCHEMA_ID)})", ""] + environment_lines(results)
    if results.get("schema") != "edgebench/1":
        lines += [f"- {speed_line(results.get('machine_speed'))}", f"- {record_line(results.get('selftest'))}"]
    lines += ["", "Latency layers (each includes the one before):"] + _layer_lines(rows)
    lines += ["", "p50 [95% CI]: median with a percentile-bootstrap interval; n · CV · outliers: samples, "
              "std / mean, samples beyond 1.5 IQR (kept, not dropped); speed-up: median of the per-block ratios "
              "baseline / row over blocks measured in the same rounds [bootstrap interval over blocks]; cold start: "
              "load / first inference; memory: host peak; rounds ±: half the spread of the per-round p50s.", ""]
    header = ["model", "backend", "device / precision", "cold start ms", "inference p50 ms [CI]", "p95 ms",
              "n · CV · outliers", "e2e p50 ms", "pipeline FPS", "speed-up [CI]", "host peak MB", "status"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---|" + "---:|" * 8 + "---|"]
    for row in shown:
        inference, e2e = _stats(row, "inference"), _stats(row, "e2e")
        backend = row.get("backend", "?") + (" (baseline)" if row.get("baseline") else "")
        fps = row.get("pipeline_fps")
        cells = [row.get("model", "?"), backend, f"{row.get('device') or DASH} / {row.get('precision') or DASH}",
                 _cold_start(row), _p50_with_ci(inference), fmt_ms(inference["p95"]) if inference else DASH,
                 _spread(inference), fmt_ms(e2e["p50"]) if e2e else DASH,
                 DASH if fps is None else f"{fps:.1f}", _speedup(row), _memory(row), _status(row)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    skipped = skipped_lines(rows)
    if skipped:
        lines += ["", "Skipped (cannot run here), one line per reason:"] + skipped
    for row in rows:
        measured = row.get("pipeline_efficiency")
        if measured:
            lines += ["", _efficiency_line(row["model"], measured)]
    if any(row.get("stable") is False or row.get("unstable") for row in rows):
        lines += ["", "UNSTABLE rows: their layers contradict each other, or the clocks changed or the board "
                  "throttled while they ran; do not compare them with other runs."]
    if any((row.get("drift") or {}).get("flagged") for row in rows):
        lines += ["", "DRIFT rows: the machine's speed moved beyond the threshold while they were measured (those "
                  "marked re-measured: in the measurement kept too); their latencies are less certain than their "
                  "intervals say, and compare does not call changes on them."]
    return "\n".join(lines) + "\n"


def skipped_lines(rows: Sequence[Dict[str, Any]]) -> List[str]:
    """One line per distinct reason of the skipped rows: the reason, then the backends and models it covers."""
    by_reason: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        if row.get("status") == "skipped":
            by_reason.setdefault(row.get("reason") or "no reason given", []).append(row)
    lines = []
    for reason, group in by_reason.items():
        backends = ", ".join(dict.fromkeys(r.get("backend", "?") for r in group))
        models = list(dict.fromkeys(r.get("model", "?") for r in group))
        which = ", ".join(models) if len(models) <= 3 else f"{len(models)} models"
        lines.append(f"- {backends} ({len(group)} rows, {which}): {_cell(reason)}")
    return lines


def _efficiency_line(model: str, measured: Dict[str, Any]) -> str:
    """The camera loop against its stages timed alone (benchmarks/pipeline_metric.py)."""
    size = "x".join(str(v) for v in measured["clip"]["size"])
    line = (f"Camera loop, {model} on {measured['backend']}, a {size} clip: {measured['pipeline_fps']:.1f} FPS = "
            f"{100 * measured['throughput_share']:.0f} % of the bound from its stages timed alone "
            f"({measured['bound_fps']:.0f} FPS, slowest alone: {measured['slowest_alone']})")
    if measured.get("latency_multiple") is not None:
        line += (f"; capture-to-result p50 {measured['latency_p50_ms']:.2f} ms = {measured['latency_multiple']:.2f}x "
                 f"the sum of the stages alone ({measured['sum_alone_p50_ms']:.2f} ms)")
    return line + "."


def csv_columns() -> List[str]:
    """The CSV header, in its stable order."""
    columns = ["created_utc", "model", "backend", "baseline", "status", "reason", "device", "precision",
               "input_shape", "cold_load_ms", "cold_first_inference_ms"]
    columns += [f"{layer}_{name}" for layer in LAYERS for name in STAT_COLUMNS]
    columns += ["pipeline_fps", "host_peak_mb", "speedup_baseline", "speedup", "speedup_ci_lo",
                "speedup_ci_hi", "power_avg_mw", "mj_per_inference", "fps_per_watt", "max_temp_c", "throttled",
                "stable", "speedup_method", "round_spread_pct", "drift_moved_pct", "drift_flagged", "unstable"]
    return columns


def _flat(row: Dict[str, Any], created: str) -> Dict[str, Any]:
    cold = row.get("cold_start_ms") or {}
    memory, speedup, power = row.get("memory_mb") or {}, row.get("speedup") or {}, row.get("power") or {}
    drift = row.get("drift") or {}
    ci = speedup.get("ci95") or [None, None]
    flat = {"created_utc": created, "model": row.get("model"), "backend": row.get("backend"),
            "baseline": bool(row.get("baseline")), "status": row.get("status"), "reason": row.get("reason"),
            "device": row.get("device"), "precision": row.get("precision"),
            "input_shape": "x".join(str(d) for d in row["input_shape"]) if row.get("input_shape") else None,
            "cold_load_ms": cold.get("load"), "cold_first_inference_ms": cold.get("first_inference"),
            "pipeline_fps": row.get("pipeline_fps"), "host_peak_mb": memory.get("host_peak"),
            "speedup_baseline": speedup.get("baseline"),
            "speedup": speedup.get("ratio"), "speedup_ci_lo": ci[0], "speedup_ci_hi": ci[1],
            "power_avg_mw": power.get("avg_mw"), "mj_per_inference": power.get("mj_per_inference"),
            "fps_per_watt": power.get("fps_per_watt"), "max_temp_c": power.get("max_temp_c"),
            "throttled": power.get("throttled"), "stable": row.get("stable"), "speedup_method": speedup.get("method"),
            "round_spread_pct": row.get("round_spread_pct"), "drift_moved_pct": drift.get("moved_pct"),
            "drift_flagged": drift.get("flagged"), "unstable": "; ".join(row.get("unstable") or [])}
    for layer in LAYERS:
        stats = _stats(row, layer) or {}
        lo_hi = stats.get("p50_ci95") or [None, None]
        for name in STAT_COLUMNS:
            value = lo_hi[0] if name == "p50_ci_lo" else lo_hi[1] if name == "p50_ci_hi" else stats.get(name)
            flat[f"{layer}_{name}"] = value
    return flat


def csv(results: Dict[str, Any]) -> str:
    """One line per row with flat columns (``csv_columns()``); empty cells for what a row does not have."""
    buffer = io.StringIO()
    writer = _csv.DictWriter(buffer, fieldnames=csv_columns(), lineterminator="\n")
    writer.writeheader()
    for row in results.get("rows", []):
        writer.writerow(_flat(row, results.get("created_utc", "")))
    return buffer.getvalue()


def write_all(results: Dict[str, Any], out_dir: Path) -> List[Path]:
    """Validate, then write results.json, results.csv, plots (with matplotlib) and results.md; the paths written.

    Raises ValueError listing the problems when ``results`` is not valid edgebench/2, before writing anything.
    """
    errors = validate(results)
    if errors:
        raise ValueError(f"not writing invalid {SCHEMA_ID} results ({len(errors)} problems):\n  "
                         + "\n  ".join(errors[:20]))
    from .plots import write_plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "results.json", out_dir / "results.csv"]
    paths[0].write_text(json.dumps(results, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    paths[1].write_text(csv(results), encoding="utf-8")
    plots, skipped = write_plots(results, out_dir)
    text = markdown(results)
    if skipped:
        text += f"\nPlots skipped: {skipped}\n"
    elif plots:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
    (out_dir / "results.md").write_text(text, encoding="utf-8")
    return paths + [out_dir / "results.md"] + plots
