"""How many human labels a cell needs for a corrected interval of a given width, at a judge of a given
accuracy, and how many people alone would need (`labels_needed_table`: the sizing table of `python -m core
labels-needed` and the review page)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
from scipy import special

from core.ppi.intervals import PSEUDO
from core.stats import z_quantile
from core.ppi.sample import MIN_STRATUM, PPIError


def labels_needed(half_width: float, accuracy: float, confidence: float = 0.95, pseudo: float = PSEUDO,
                  power_tuning: bool = False) -> int:
    """Human labels per cell for a corrected interval of +/- half_width at a judge of this accuracy.

    Worst case for a given accuracy: errors balanced both ways, so the rectifier's variance is
    Var(h - f) = 1 - accuracy (the Var(h)/N term is ignored: N is large). With power tuning, at DR 0.5
    where it is largest, min over lam of Var(h - lam f) = accuracy (1 - accuracy) (lam = 2 accuracy - 1), which
    is never above labelling alone (0.25): plain PPI (lam = 1) loses to people alone below 75% accuracy.
    The interval's pseudo disagreements add 2 pseudo / n^2 to the variance and its quantile is t with
    n - 1 degrees of freedom, so n is the smallest with t_{n-1} sqrt(var n + 2 pseudo) / n <= hw (started
    from the normal solution of n^2 hw^2 / z^2 = var n + 2 pseudo).
    """
    if not 0 < half_width < 1:
        raise PPIError("half_width must lie between 0 and 1")
    if not 0 <= accuracy <= 1:
        raise PPIError("accuracy must lie between 0 and 1")
    z = z_quantile(confidence)
    variance = accuracy * (1 - accuracy) if power_tuning else 1 - accuracy
    a = z * z * variance / half_width ** 2
    b = 2 * pseudo * z * z / half_width ** 2
    n = max(MIN_STRATUM, math.ceil((a + math.sqrt(a * a + 4 * b)) / 2 - 1e-9))
    level = 0.5 + confidence / 2
    while special.stdtrit(n - 1, level) * math.sqrt(variance * n + 2 * pseudo) / n > half_width:
        n += 1
    return n


def labels_without_judge(half_width: float, confidence: float = 0.95) -> int:
    """Labels per cell for the same half-width from people alone (worst case DR 0.5: Var(h) = 0.25), with
    the same t quantile as labels_needed."""
    z = z_quantile(confidence)
    n = max(MIN_STRATUM, math.ceil(z * z * 0.25 / half_width ** 2 - 1e-9))
    while special.stdtrit(n - 1, 0.5 + confidence / 2) * 0.5 / math.sqrt(n) > half_width:
        n += 1
    return n


def labels_needed_table(accuracies: Sequence[float] = (0.70, 0.80, 0.90, 0.95),
                        half_widths: Sequence[float] = (0.05, 0.10, 0.15), confidence: float = 0.95,
                        power_tuning: bool = False) -> pd.DataFrame:
    """One row per half-width: labels per cell at each judge accuracy, and labelling without a judge."""
    rows = []
    for hw in half_widths:
        row = {"half_width": hw}
        row |= {f"accuracy {acc:.2f}": labels_needed(hw, acc, confidence, power_tuning=power_tuning)
                for acc in accuracies}
        row["no judge"] = labels_without_judge(hw, confidence)
        rows.append(row)
    return pd.DataFrame(rows)

