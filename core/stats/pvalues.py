"""Multiple-comparison adjustment of p-values: one implementation for every table that flags cells."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.stats import StatsError

CORRECTIONS: tuple[str, ...] = ("holm", "fdr_bh")


def adjust_pvalues(pvalues: Sequence[float] | np.ndarray, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values (Holm's step-down FWER or Benjamini-Hochberg FDR).

    NaN p-values (cells where no test is possible) stay NaN and do not count in the family size.
    Matches statsmodels.stats.multitest.multipletests(method="holm" | "fdr_bh").
    """
    if method not in CORRECTIONS:
        raise StatsError(f"unknown correction {method!r}; choose from {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype="float64")
    adjusted = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    m = int(finite.sum())
    if m == 0:
        return adjusted
    order = np.argsort(p[finite], kind="stable")
    ranked = p[finite][order]
    if method == "holm":
        steps = np.maximum.accumulate((m - np.arange(m)) * ranked)
    else:
        steps = np.minimum.accumulate((m / np.arange(m, 0, -1) * ranked[::-1]))[::-1]
    values = np.empty(m)
    values[order] = np.minimum(steps, 1.0)
    adjusted[finite] = values
    return adjusted
