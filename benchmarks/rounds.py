"""Rounds of the suite: every model's rows measured together (``benchmarks.group``), ``repeat`` times over, the
(model, round)s the drift flag caught measured again (the ``remeasure`` most drifted), and the rounds merged
into one row per (model, backend).

Each round starts fresh worker processes, so the spread of a row's per-round medians (``round_spread_pct``)
holds everything that differs between two runs of the same commit a few seconds or minutes apart: the
machine's speed, the process's placement and memory layout. ``compare`` judges a change against it.
"""

import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .drift import Probe
from .group import finish_row, measure_group

Rows = Dict[str, Dict[str, Any]]


def _worst_move(rows: Rows) -> float:
    """The largest probe movement over a model's ok rows (they share one window)."""
    return max([(r.get("drift") or {}).get("moved_pct", 0.0) for r in rows.values()] or [0.0])


def _flagged(rows: Rows) -> bool:
    """Whether the drift flag caught any of a model's rows."""
    return any((r.get("drift") or {}).get("flagged") for r in rows.values())


def run_rounds(specs: Sequence[Dict[str, Any]], options: Any, env: Dict[str, str], threads: int,
               progress: Optional[Callable[[int, int, str], None]], log: Callable[[str], None],
               total: int) -> Dict[str, Any]:
    """Every round of every model, then the ``options.remeasure`` most drifted flagged (model, round)s measured
    again (the measurement whose probe moved least is kept): {"rows": {(model, backend): [row per round]},
    "probe": the run's probe series}."""
    models: List[str] = list(dict.fromkeys(spec["model"] for spec in specs))
    groups = {model: [s for s in specs if s["model"] == model and s["verdict"] is None] for model in models}
    series: List[List[float]] = []
    measured: Dict[Any, Rows] = {}  # (model, round index) -> rows by backend
    started = time.perf_counter()
    step = 0
    with Probe(threads) as probe:
        def timed_probe() -> float:
            value = probe.round()
            series.append([time.perf_counter() - started, value])
            return value

        def measure(model: str, label: str) -> Rows:
            nonlocal step
            if progress:
                progress(min(step, total - 1), total,
                         f"{label}: {model} · {', '.join(s['backend'] for s in groups[model]) or 'nothing to run'}")
            step += 1
            return measure_group(groups[model], options, env, timed_probe, log, options.drift_threshold)

        for round_index in range(options.repeat):
            for model in models:
                if groups[model]:
                    measured[(model, round_index)] = measure(model, f"round {round_index + 1}/{options.repeat}")
        flagged = sorted((key for key, rows in measured.items() if _flagged(rows)),
                         key=lambda key: -_worst_move(measured[key]))
        for model, round_index in flagged[:options.remeasure]:
            log(f"[{model}] the machine's speed moved while round {round_index + 1} was measured: measuring again")
            again = measure(model, f"again, round {round_index + 1}")
            calmer = _worst_move(again) < _worst_move(measured[(model, round_index)])
            if calmer and all(row.get("status") == "ok" for row in again.values()):
                measured[(model, round_index)] = again
            for row in measured[(model, round_index)].values():
                if row.get("drift"):
                    row["drift"]["remeasured"] = 1
    by_key: Dict[Any, List[Dict[str, Any]]] = {}
    for (model, _), rows in sorted(measured.items(), key=lambda item: item[0][1]):
        for backend, row in rows.items():
            by_key.setdefault((model, backend), []).append(row)
    return {"rows": by_key, "probe": series}


def merge(rounds: Sequence[Dict[str, Any]], seed: int = 0) -> Dict[str, Any]:
    """One row from its rounds: failed if any round failed; else all samples and blocks together, the
    per-round medians and their spread, drift and unstable reasons of every round."""
    failed = next(((i, r) for i, r in enumerate(rounds) if r.get("status") != "ok"), None)
    if failed is not None:
        index, row = failed
        if len(rounds) > 1:
            row["reason"] = f"round {index + 1}: {row.get('reason') or 'no reason given'}"
        return row
    first = dict(rounds[0])
    if len(rounds) == 1:
        return first
    blocks: List[Dict[str, List[float]]] = []
    for row in rounds:
        blocks += _blocks_of(row)
    merged = finish_row(first, blocks, first.get("block"), seed)
    p50s = [r["latency_ms"]["inference"]["p50"] for r in rounds]
    merged["rounds"] = {"n": len(rounds), "inference_p50": p50s,
                        "blocks": [len(r["blocks_ms"]["inference"]) for r in rounds],
                        "e2e_p50": [r["latency_ms"]["e2e"]["p50"] for r in rounds if "e2e" in r["latency_ms"]]}
    merged["round_spread_pct"] = 100 * (max(p50s) - min(p50s)) / float(np.median(p50s))
    merged["memory_mb"] = {"host_peak": max((r.get("memory_mb") or {}).get("host_peak") or 0 for r in rounds)}
    stables = [r.get("stable") for r in rounds]
    merged["stable"] = False if False in stables else (True if all(s is True for s in stables) else None)
    drifts = [r["drift"] for r in rounds if r.get("drift")]
    if drifts:
        worst = max(drifts, key=lambda d: d["moved_pct"])
        flagged = [d for d in drifts if d["flagged"]]
        merged["drift"] = dict(worst, flagged=bool(flagged),
                               reason=max(flagged, key=lambda d: d["moved_pct"])["reason"] if flagged else None,
                               remeasured=sum(d.get("remeasured", 0) for d in drifts))
    return merged


def _blocks_of(row: Dict[str, Any]) -> List[Dict[str, List[float]]]:
    """A measured row's samples cut back into its blocks (``blocks_n``: the calls of each block per layer)."""
    sizes = row["blocks_n"]
    out: List[Dict[str, List[float]]] = [{} for _ in range(max(len(n) for n in sizes.values()))]
    for layer, values in row["samples_ms"].items():
        at = 0
        for i, n in enumerate(sizes.get(layer, [])):
            out[i][layer] = values[at:at + n]
            at += n
    return out
