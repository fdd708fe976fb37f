"""PNG plots of edgebench results: latency distributions per (model, backend) and speed-ups with intervals.

matplotlib is optional: it is imported only here, inside ``write_plots``, and drawn through the Agg canvas
directly (no pyplot, so no global backend is switched for the caller).
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .report import LAYER_INCLUDES

MISSING = "matplotlib is not installed (pip install matplotlib)"


def _subtitle(results: Dict[str, Any]) -> str:
    """The environment in one line, for figure titles."""
    env = results.get("environment", {})
    jetson = env.get("jetson") or {}
    where = jetson.get("board") or env.get("cpu", "?")
    extra = [f"JetPack {jetson['jetpack']}" if jetson.get("jetpack") else "",
             f"nvpmodel {jetson['nvpmodel']}" if jetson.get("nvpmodel") else "",
             f"ORT {env['onnxruntime']}" if env.get("onnxruntime") else "",
             f"TRT {env['tensorrt']}" if env.get("tensorrt") else "", str(results.get("created_utc", ""))[:19]]
    return " · ".join([where] + [e for e in extra if e])


def _label(row: Dict[str, Any]) -> str:
    return f"{row.get('model', '?')}\n{row.get('backend', '?')}" + (" (baseline)" if row.get("baseline") else "")


def _latency_figure(results: Dict[str, Any], layer: str, rows: List[Dict[str, Any]]):
    """Box plots of raw samples where the row has them, else p50 markers with p5..p95 whiskers."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.8))
    axes = figure.add_subplot(1, 1, 1)
    lows, highs = [], []
    for position, row in enumerate(rows, start=1):
        stats = row["latency_ms"][layer]
        samples = (row.get("samples_ms") or {}).get(layer)
        if samples:
            axes.boxplot([samples], positions=[position], widths=0.6, whis=1.5, showfliers=True)
            lows.append(min(samples))
            highs.append(max(samples))
        else:
            low = stats.get("p5", stats["min"])
            axes.bar(position, stats["p50"], width=0.6, color="tab:blue", alpha=0.5)
            axes.errorbar(position, stats["p50"], yerr=[[stats["p50"] - low], [stats["p95"] - stats["p50"]]],
                          fmt="none", ecolor="black", capsize=6)
            lows.append(low)
            highs.append(stats["p95"])
    axes.set_xticks(range(1, len(rows) + 1))
    axes.set_xticklabels([_label(r) for r in rows], fontsize=8)
    if min(lows) > 0 and max(highs) / min(lows) > 10:  # a CPU baseline would flatten the fast rows
        axes.set_yscale("log")
    axes.set_ylabel(f"{layer} latency, ms")
    axes.grid(axis="y", alpha=0.3)
    said = {r["latency_ms"][layer].get("includes") or LAYER_INCLUDES[layer] for r in rows}
    includes = said.pop() if len(said) == 1 else LAYER_INCLUDES[layer]
    figure.suptitle(f"{layer} latency per call, ms: {includes}\nbox: raw samples, whiskers at 1.5 IQR; "
                    f"bar: p50, whiskers p5..p95\n{_subtitle(results)}", fontsize=9)
    return figure


def _speedup_figure(results: Dict[str, Any], rows: List[Dict[str, Any]]):
    """Speed-up over the CPU baseline per (model, backend), with the bootstrap 95% interval."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.3 * len(rows) + 2), 4.8))
    axes = figure.add_subplot(1, 1, 1)
    positions = list(range(1, len(rows) + 1))
    ratios = [r["speedup"]["ratio"] for r in rows]
    cis = [r["speedup"].get("ci95") or [r["speedup"]["ratio"]] * 2 for r in rows]
    axes.bar(positions, ratios, width=0.6, color="tab:green", alpha=0.6)
    axes.errorbar(positions, ratios, yerr=[[q - c[0] for q, c in zip(ratios, cis)],
                                           [c[1] - q for q, c in zip(ratios, cis)]],
                  fmt="none", ecolor="black", capsize=6)
    for position, ratio, ci in zip(positions, ratios, cis):
        axes.annotate(f"{ratio:.2f}×", (position, ci[1]), textcoords="offset points", xytext=(0, 4),
                      ha="center", fontsize=8)
    axes.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    axes.set_xticks(positions)
    axes.set_xticklabels([_label(r) for r in rows], fontsize=8)
    axes.set_ylabel("speed-up × (baseline inference p50 / row's)")
    axes.grid(axis="y", alpha=0.3)
    figure.suptitle(f"inference speed-up over the CPU baseline, 95% bootstrap interval\n{_subtitle(results)}",
                    fontsize=9)
    return figure


def write_plots(results: Dict[str, Any], out_dir: Path) -> Tuple[List[Path], Optional[str]]:
    """Write latency_<layer>.png per measured layer and speedup.png; (paths, None), or ([], why they were skipped)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        return [], MISSING
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok_rows = [r for r in results.get("rows", []) if r.get("status") == "ok"]
    figures = []
    for layer in ("inference", "e2e"):
        rows = [r for r in ok_rows if (r.get("latency_ms") or {}).get(layer)]
        if rows:
            figures.append((f"latency_{layer}.png", _latency_figure(results, layer, rows)))
    speedup_rows = [r for r in ok_rows if (r.get("speedup") or {}).get("ratio") is not None and not r.get("baseline")]
    if speedup_rows:
        figures.append(("speedup.png", _speedup_figure(results, speedup_rows)))
    if not figures:
        return [], "no successful row has latency statistics to plot"
    paths = []
    for name, figure in figures:
        FigureCanvasAgg(figure)
        figure.savefig(out_dir / name, dpi=120, bbox_inches="tight")  # no layout= before 3.5
        paths.append(out_dir / name)
    return paths, None
