"""Review sampling by the judge's uncertainty (Zrnic and Candes, "Active Statistical Inference", ICML 2024): label
where the judge is unsure, weight by the inverse of the inclusion probability, and the corrected DR stays
unbiased with a narrower interval than a uniform sample of the same expected size.

Where the judge gives a probability p_i = P(refused) for each completion (the `learned:` judge computes one,
core/judges/learned.py), item i of a stratum is labelled with probability

    pi_i = min(1, c * max(sqrt(min(p_i, 1 - p_i)), floor * mean sqrt(min(p, 1 - p))))

(independent coin flips, "Poisson sampling"), c set so that sum pi_i = the stratum's label budget (capped items
at 1 and the rest rescaled). Why this weight: the corrected DR corrects the judge's BINARY verdict f = 1[p >=
0.5] (the verdict the population counts hold), so the design variance is sum_i (1 - pi_i)/pi_i (h_i - f_i)^2,
and for a calibrated probability E (h - f)^2 = P(h != f) = min(p, 1 - p); minimising sum (1 - pi)/pi min(p,
1 - p) at a fixed sum pi gives Neyman's allocation item by item, pi proportional to sqrt(min(p, 1 - p)) (the
earlier sqrt(p (1 - p)) is the allocation for the probability itself as the prediction). The floor (a tenth
of the mean by default) keeps every item drawable, which the estimator needs, and bounds the weights when
the judge is confidently wrong.

The estimator is core.ppi.CorrectedRates with an `inclusion_prob` per labelled item (the Horvitz-Thompson
rectifier and its per-item variance, core/ppi/rates.py); `active_rates` only builds its inputs from one row per
completion. `labels_needed_active` (core/ppi/planning.py) sizes the budget for a target width from the
probabilities alone. The store side draws with `inclusion_probabilities` per stratum and stores each sampled
completion's pi.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.ppi.inputs import COUNTS, HUMAN_VALUE, STRATA, PPIError
from core.ppi.intervals import PSEUDO

FLOOR = 0.1  # the smallest weight, as a share of the mean weight (module docstring)


def uncertainty_weight(prob: np.ndarray) -> np.ndarray:
    """sqrt(min(p, 1 - p)) of each probability, unfloored (the module docstring says why)."""
    return np.sqrt(np.minimum(prob, 1 - prob))


def uncertainty_weights(prob: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """sqrt(min(p, 1 - p)): the standard deviation of h - f for the binary verdict f = 1[p >= 0.5] of a calibrated
    judge (module docstring), floored at `floor` times its mean (all equal where every p is 0 or 1)."""
    p = np.clip(np.asarray(prob, dtype="float64"), 0.0, 1.0)
    if np.isnan(p).any():
        raise PPIError("judge_prob must be a probability for every completion (none missing)")
    w = uncertainty_weight(p)
    mean = w.mean() if len(w) else 0.0
    if mean <= 0:
        return np.ones(len(w))
    return np.maximum(w, floor * mean)


def inclusion_probabilities(prob: np.ndarray, budget: float, floor: float = FLOOR) -> np.ndarray:
    """pi_i proportional to the uncertainty weight, summing to `budget` (at most len(prob)), none above 1."""
    w = uncertainty_weights(prob, floor)
    N = len(w)
    if not 0 < budget <= N:
        raise PPIError(f"the label budget must be between 0 and the {N} completions, not {budget}")
    pi = np.zeros(N)
    capped = np.zeros(N, dtype=bool)
    for _ in range(N + 1):  # each pass caps at least one more item or stops
        left = budget - capped.sum()
        free = ~capped
        pi[free] = left * w[free] / w[free].sum()
        pi[capped] = 1.0
        over = free & (pi > 1.0)
        if not over.any():
            break
        capped |= over
    return pi


def draw_active(prob: np.ndarray, budget: float, seed: int = 0, floor: float = FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """(labelled, pi): an independent draw of each item with its inclusion probability (seeded)."""
    pi = inclusion_probabilities(prob, budget, floor)
    return np.random.default_rng(seed).random(len(pi)) < pi, pi


def active_rates(items: pd.DataFrame, by: Sequence[str] = (), confidence: float = 0.95,
                 pseudo: float = PSEUDO, min_human: int = 10) -> pd.DataFrame:
    """The DR per cell of `by` corrected by a sample drawn by the judge's uncertainty: CorrectedRates on inputs
    built from one row per completion (the module docstring), so there is one estimator.

    `items`: one row per completion with `judge_prob` (P(refused) by the judge; its verdict is p >= 0.5),
    `inclusion_prob` (pi_i of the draw) and `human_label` (refused/complied where labelled, empty elsewhere),
    plus the `by` columns and any STRATA columns (those missing are one value: the draw's stratum).
    Returns per cell: the `by` columns, n, n_human, dr, ci_low, ci_high, se, dr_judge (the verdicts' DR), note.
    """
    from core.ppi.rates import CorrectedRates  # here to avoid an import cycle

    by = list(by)
    missing = [c for c in ("judge_prob", "inclusion_prob", "human_label", *by) if c not in items.columns]
    if missing:
        raise PPIError(f"items lack the columns {', '.join(missing)}")
    p = np.clip(items["judge_prob"].to_numpy(dtype="float64"), 0.0, 1.0)
    pi = items["inclusion_prob"].to_numpy(dtype="float64")
    human = items["human_label"].to_numpy(dtype=object)
    labelled = pd.notna(human) & (human != "")
    bad = labelled & ~np.isin(human, list(HUMAN_VALUE))
    if bad.any():
        raise PPIError(f"human_label must be refused or complied, not {human[bad][0]!r}")
    if np.isnan(p).any() or (labelled & ~(pi > 0)).any() or (pi > 1).any():
        raise PPIError("judge_prob must be given for every completion and inclusion_prob in (0, 1] where labelled")
    frame = items.assign(**{c: "all" for c in STRATA if c not in items.columns},
                         judge_label=np.where(p >= 0.5, "refused", "complied"))
    dims = list(dict.fromkeys([*STRATA, *by]))
    refused = p >= 0.5
    population = (frame[dims].assign(n=1, refused=refused.astype(int), complied=(~refused).astype(int), unparsed=0)
                  .groupby(dims, dropna=False, as_index=False)[list(COUNTS)].sum())
    sample = frame.loc[labelled, [*dims, "judge_label", "human_label", "inclusion_prob"]]
    table = CorrectedRates(population, sample, by, confidence=confidence, pseudo=pseudo, min_human=min_human,
                           rectifier="group").table
    return table[[*by, "n", "n_human", "dr", "ci_low", "ci_high", "se", "dr_judge", "note"]]
