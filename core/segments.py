"""Rows of a table in segments (the cells that share a baseline: a model's groups) and reductions within each
segment, vectorised over all segments at once: DefenseRates' deviations and disparity (core/metrics.py) use
them for every model and language in one pass instead of a Python loop per baseline."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def segments(keys: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Group rows by `columns`: (segment index per row, row order sorting rows by segment, segment starts, keys).

    With no columns every row belongs to one segment (the whole table).
    """
    if columns:
        index = keys.groupby(list(columns), sort=True, observed=True, dropna=False).ngroup().to_numpy()
        labels = keys[list(columns)].drop_duplicates().sort_values(list(columns)).reset_index(drop=True)
    else:
        index = np.zeros(len(keys), dtype="int64")
        labels = pd.DataFrame(index=[0])
    order = np.argsort(index, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(index[order]) != 0]) if len(index) else np.array([], dtype="int64")
    return index, order, starts, labels


def segment_argext(values: np.ndarray, starts: np.ndarray, func) -> np.ndarray:
    """Position (in `values`) of the first max/min within each segment of a segment-sorted array."""
    ends = np.r_[starts[1:], len(values)]
    return np.array([start + int(func(values[start:end])) for start, end in zip(starts, ends)], dtype="int64")


def segment_std(values: np.ndarray, order: np.ndarray, starts: np.ndarray, counts: np.ndarray, ddof: int) -> np.ndarray:
    """Standard deviation of each segment of the rows of a (cells, k) array, per column; NaN where counts <= ddof."""
    sorted_values = values[order]
    sums = np.add.reduceat(sorted_values, starts, axis=0)
    squares = np.add.reduceat(sorted_values ** 2, starts, axis=0)
    counts = counts[:, None]
    mean = sums / counts
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.maximum(squares / counts - mean ** 2, 0.0) * counts / (counts - ddof)
    return np.where(counts > ddof, np.sqrt(variance), np.nan)
