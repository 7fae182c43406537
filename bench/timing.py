"""Timing helpers the benchmarks share."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_s(func: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall seconds of `repeats` calls, and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result
