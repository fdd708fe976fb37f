"""The paired design: what is compared is measured in the same time window.

``interleave`` runs the rows of one model (its backends and the baseline) round-robin in short blocks:
each round every row measures a block of calls of each latency layer (inference, then e2e, the order of
the rows and of the layers reversed every other round), and the calibration probe is timed before the
round. Block i of every row comes from round i, so blocks pair: a speed-up is the median of the
per-block ratios (``paired_speedup``) with a bootstrap interval over blocks, and a slow phase of the
machine scales both sides of each ratio alike instead of landing on whichever row ran during it.

A row is anything with ``run_block(calls, layers) -> {layer: [ms, ...]}`` (``benchmarks.group``'s
worker processes; the tests' synthetic rows on a fake clock). A row whose block raises is dropped from
the rounds after it, with its reason; the others go on.
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

from .stats import paired_ratio

#: target number of blocks per row (bootstrap over blocks needs a fair number of them)
TARGET_BLOCKS = 20
LAYERS = ("inference", "e2e")
#: (outer layer, the layer it contains): a layer never faster than the one it contains
CONTAINS = (("e2e", "inference"), ("inference", "compute"))


def block_size(count: int, target_blocks: int = TARGET_BLOCKS) -> int:
    """Calls per block for ``count`` samples per layer: about ``target_blocks`` blocks, at least 1 call."""
    return max(1, math.ceil(count / target_blocks))


@dataclass
class Interleaved:
    """What ``interleave`` measured: per row, its blocks ({layer: [ms, ...]} each, in round order) or the
    reason it stopped; the probe's series [[seconds since start, ms], ...]."""

    blocks: Dict[str, List[Dict[str, List[float]]]] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)
    probe: List[List[float]] = field(default_factory=list)


def interleave(rows: Dict[str, Any], count: int, block: int, probe: Optional[Callable[[], float]] = None,
               now: Callable[[], float] = lambda: 0.0, budget_s: Optional[float] = None,
               layers: Sequence[str] = LAYERS) -> Interleaved:
    """Measure ``rows`` (name -> row) in rounds of one block each until every row has ``count`` samples per
    layer (or, with ``budget_s``, until that much of ``now`` has passed, at least 3 rounds).

    ``probe()`` (milliseconds) is timed at the start of every round and once after the last; ``now()`` gives
    the series' time axis (seconds).
    """
    out = Interleaved(blocks={name: [] for name in rows})
    names = list(rows)
    started = now()
    done = 0
    round_index = 0
    while True:
        if budget_s is None and done >= count:
            break
        if budget_s is not None and round_index >= 3 and now() - started >= budget_s:
            break
        calls = block if budget_s is not None else min(block, count - done)
        if probe is not None:
            out.probe.append([now() - started, float(probe())])
        order = names if round_index % 2 == 0 else names[::-1]
        layer_order = list(layers) if round_index % 2 == 0 else list(layers)[::-1]
        for name in order:
            if name in out.failed:
                continue
            try:
                out.blocks[name].append(rows[name].run_block(calls, layer_order))
            except Exception as exc:  # noqa: BLE001 - a row that breaks mid-run fails alone
                out.failed[name] = str(exc) or type(exc).__name__
        if len(out.failed) == len(names):
            break
        done += calls
        round_index += 1
    if probe is not None and out.probe:
        out.probe.append([now() - started, float(probe())])
    return out


def medians(blocks: Sequence[Dict[str, List[float]]], layer: str) -> List[float]:
    """The per-block medians of one layer (blocks without that layer are skipped)."""
    import numpy as np

    return [float(np.median(b[layer])) for b in blocks if b.get(layer)]


def paired_speedup(base_blocks: Sequence[float], blocks: Sequence[float], seed: int = 0) -> Optional[Dict[str, Any]]:
    """Speed-up of a row over the baseline from their per-block medians of the same rounds: the median of
    base / row over the blocks both have, with a bootstrap interval over blocks. None without a shared block."""
    pairs = min(len(base_blocks), len(blocks))
    if pairs == 0:
        return None
    return paired_ratio(list(base_blocks)[:pairs], list(blocks)[:pairs], seed=seed)


def layer_consistency(block_medians: Dict[str, Sequence[float]], seed: int = 0) -> List[str]:
    """Why the layers of a row contradict each other, one line per pair: an outer layer (e2e) measured faster
    than a layer it contains (inference) beyond the interval of their paired per-block ratio. Empty when
    consistent."""
    reasons = []
    for outer, inner in CONTAINS:
        a, b = block_medians.get(outer) or [], block_medians.get(inner) or []
        pairs = min(len(a), len(b))
        if pairs == 0:
            continue
        ratio = paired_ratio(list(a)[:pairs], list(b)[:pairs], seed=seed)
        if ratio["ci95"][1] < 1.0:
            reasons.append(f"{outer} measured faster than the {inner} it contains: {outer}/{inner} = "
                           f"{ratio['ratio']:.2f} [{ratio['ci95'][0]:.2f}, {ratio['ci95'][1]:.2f}] over "
                           f"{ratio['blocks']} paired blocks")
    return reasons


def interval_consistency(latency: Dict[str, Dict[str, Any]]) -> List[str]:
    """The same check on what the report shows: an outer layer's p50 interval wholly below the p50 interval of a
    layer it contains, one line per pair (empty when consistent)."""
    reasons = []
    for outer, inner in CONTAINS:
        a, b = latency.get(outer), latency.get(inner)
        if a and b and a["p50_ci95"][1] < b["p50_ci95"][0]:
            reasons.append(f"{outer} p50 {a['p50']:.4g} ms [{a['p50_ci95'][0]:.4g}, {a['p50_ci95'][1]:.4g}] below the "
                           f"{inner} p50 it contains, {b['p50']:.4g} ms [{b['p50_ci95'][0]:.4g}, "
                           f"{b['p50_ci95'][1]:.4g}]")
    return reasons


def flatten(blocks: Sequence[Dict[str, List[float]]]) -> Dict[str, List[float]]:
    """All samples of each layer, in the order taken."""
    out: Dict[str, List[float]] = {}
    for block in blocks:
        for layer, values in block.items():
            out.setdefault(layer, []).extend(float(v) for v in values)
    return out
