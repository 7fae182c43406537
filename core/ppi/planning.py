"""How many human labels a cell needs for a corrected interval of a given width, at a judge of a given
accuracy, and how many people alone would need (`labels_needed_table`: the sizing table of `python -m core
labels-needed` and the review page); and, where the judge gives a probability per completion, how many an
uncertainty-weighted sample needs against a uniform one (`labels_needed_active`, core/ppi/active.py).

With the pooled rectifier (core/ppi/pooled.py) a group's interval is mostly set by its model x language's
labels, not its own: read labels_needed there as a bound for a group corrected by its own labels alone."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from core.ppi.inputs import MIN_STRATUM, PPIError
from core.ppi.intervals import PSEUDO
from core.stats import z_quantile


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



def _active_half_width(p: np.ndarray, pi: np.ndarray, z: float, pseudo: float) -> float:
    """Expected half-width of the active interval with inclusion probabilities pi, the judge's probabilities
    taken as calibrated (its verdict f = 1[p >= 0.5] is wrong with probability E (h - f)^2 = min(p, 1 - p)),
    the variance of CorrectedRates on a Poisson stratum (core/ppi/active.py)."""
    N = len(p)
    theta = float(p.mean())
    design = float(np.sum((1 - pi) / pi * np.minimum(p, 1 - p)))
    pi_bar = float(pi.mean())
    mean_weight = (1 - pi_bar) / pi_bar ** 2
    return z * math.sqrt((design + 2 * pseudo * mean_weight) / N ** 2 + theta * (1 - theta) / N)


def labels_needed_active(judge_prob: Sequence[float], half_width: float, confidence: float = 0.95,
                         floor: float | None = None, pseudo: float = PSEUDO) -> dict:
    """Labels (expected) for a corrected interval of +/- half_width over these completions, sampled by the
    judge's uncertainty (core/ppi/active.py) and uniformly, from the judge's probabilities alone: they are
    taken as calibrated, E (h - f)^2 = min(p, 1 - p) (a judge that is confidently wrong needs more; the interval
    itself never assumes it). Returns {"active": n, "uniform": n, "reachable": bool}: the smallest budgets
    whose expected half-width is within half_width; where even labelling everything is not (the
    superpopulation term theta (1 - theta) / N alone is wider), both are N and reachable is False."""
    from core.ppi.active import FLOOR, inclusion_probabilities

    if not 0 < half_width < 1:
        raise PPIError("half_width must lie between 0 and 1")
    p = np.clip(np.asarray(judge_prob, dtype="float64"), 0.0, 1.0)
    N = len(p)
    if N == 0:
        raise PPIError("no completions to plan for")
    z = z_quantile(confidence)
    floor = FLOOR if floor is None else floor

    def smallest(pis) -> tuple[int, bool]:
        if _active_half_width(p, pis(N), z, pseudo) > half_width:
            return N, False
        lo, hi = 1, N
        while lo < hi:
            mid = (lo + hi) // 2
            if _active_half_width(p, pis(mid), z, pseudo) <= half_width:
                hi = mid
            else:
                lo = mid + 1
        return lo, True

    active, ok = smallest(lambda n: inclusion_probabilities(p, n, floor))
    uniform, _ = smallest(lambda n: np.full(N, n / N))
    return {"active": active, "uniform": uniform, "reachable": ok}
