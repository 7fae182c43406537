"""Rows of a table in segments (the cells that share a baseline: a model's groups): DefenseRates'
deviations (core/stats/rates.py) use them for every model and language in one pass instead of a Python loop per
baseline."""
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
