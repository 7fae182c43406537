"""Paired proportions: two versions' answers to the same probes (core/stats/comparison.py) or two groups' answers to the
same claims (core/stats/matched.py). McNemar's exact test of the discordant pairs and Newcombe's interval of the
paired difference."""
from __future__ import annotations

import numpy as np
from scipy import special

from core.stats.intervals import Z95, wilson


def mcnemar_exact(base_only: np.ndarray, cand_only: np.ndarray) -> np.ndarray:
    """Two-sided exact McNemar p-value per cell: 2 P(X <= min(b, c)), X ~ Binomial(b + c, 1/2), capped at 1;
    1 where there is no discordant pair. Same as statsmodels.stats.contingency_tables.mcnemar(exact=True)."""
    b = np.asarray(base_only, dtype="int64")
    c = np.asarray(cand_only, dtype="int64")
    discordant = b + c
    p = np.minimum(1.0, 2.0 * special.bdtr(np.minimum(b, c), np.maximum(discordant, 1), 0.5))
    return np.where(discordant > 0, p, 1.0)


def newcombe_paired(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray,
                    z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's (1998, method 10) interval for p2 - p1, with p1 = (a + b) / n (base) and p2 = (a + c) / n
    (candidate) from one paired 2x2 table per cell; NaN where n = 0."""
    a, b, c, d = (np.asarray(x, dtype="float64") for x in (a, b, c, d))
    n = a + b + c + d
    with np.errstate(invalid="ignore", divide="ignore"):
        p1, p2 = (a + b) / n, (a + c) / n
        l1, u1 = wilson(p1, n, z)
        l2, u2 = wilson(p2, n, z)
        margins = (a + b) * (c + d) * (a + c) * (b + d)
        phi = np.where(margins > 0, (a * d - b * c) / np.sqrt(margins), 0.0)
        below = np.sqrt(np.maximum((p2 - l2) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1) + (u1 - p1) ** 2, 0.0))
        above = np.sqrt(np.maximum((u2 - p2) ** 2 - 2 * phi * (u2 - p2) * (p1 - l1) + (p1 - l1) ** 2, 0.0))
    change = p2 - p1
    return np.maximum(change - below, -1.0), np.minimum(change + above, 1.0)
