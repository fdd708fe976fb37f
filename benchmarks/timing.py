"""Small, honest timing helpers: warm-up and interleaved A/B samples in microseconds (summarise them with
:func:`benchmarks.stats.brief`)."""

import time
from typing import Callable, List, Sequence

import numpy as np


def sample_us(fn: Callable[[], object], count: int, warmup: int = 20) -> np.ndarray:
    """Run ``fn`` warmup + count times; per-call durations in microseconds (time.perf_counter)."""
    for _ in range(warmup):
        fn()
    out = np.empty(count)
    clock = time.perf_counter
    for i in range(count):
        start = clock()
        fn()
        out[i] = clock() - start
    return out * 1e6


def interleaved_us(fns: Sequence[Callable[[], object]], count: int, warmup: int = 20) -> List[np.ndarray]:
    """Time several callables in alternation, the order reversed every other round (A B, B A, ...),
    so drift, noise and whatever one call leaves in the caches hit them all equally."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    out = [np.empty(count) for _ in fns]
    forward = list(zip(out, fns))
    backward = forward[::-1]
    clock = time.perf_counter
    for i in range(count):
        for samples, fn in forward if i % 2 == 0 else backward:
            start = clock()
            fn()
            samples[i] = clock() - start
    return [samples * 1e6 for samples in out]


def empty_call_overhead_us(count: int = 20000) -> float:
    """The harness's own cost per sample: median time of an empty call, in microseconds."""
    return float(np.median(sample_us(lambda: None, count, warmup=100)))
