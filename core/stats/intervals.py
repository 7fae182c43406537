"""Interval primitives: the normal quantile of a confidence level and the Wilson score interval of a rate
(used for the judge's error rates, Newcombe's paired interval, and wherever a single rate needs an interval)."""
from __future__ import annotations

import numpy as np
from scipy import special

from core.stats import StatsError

Z95 = 1.959963984540054  # the two-sided 95% normal quantile


def z_quantile(confidence: float) -> float:
    """The two-sided normal quantile of a confidence level (1.96 at 0.95); refuses a level outside (0, 1)."""
    if not 0 < confidence < 1:
        raise StatsError("confidence must lie between 0 and 1, e.g. 0.95")
    return float(special.ndtri(0.5 + confidence / 2))


def wilson(p: np.ndarray, n: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval at (effective) sample size n; NaN where n = 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    bad = ~(n > 0)
    return np.where(bad, np.nan, np.clip(centre - half, 0, 1)), np.where(bad, np.nan, np.clip(centre + half, 0, 1))
