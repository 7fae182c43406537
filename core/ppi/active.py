"""Active review sampling (Zrnic and Candes, "Active Statistical Inference", ICML 2024): label where the judge
is unsure, weight by the inverse of the inclusion probability, and the corrected DR stays unbiased with a
narrower interval than a uniform sample of the same expected size.

Where the judge gives a probability p_i = P(refused) for each completion (the `learned:` judge computes one,
core/judges/learned.py), item i is labelled with probability

    pi_i = min(1, c * max(sqrt(p_i (1 - p_i)), floor * mean sqrt(p (1 - p))))

(independent coin flips, "Poisson sampling"), c set so that sum pi_i = the label budget (capped items at 1 and
the rest rescaled). sqrt(p (1 - p)) is the standard deviation of h - p when the judge's probabilities are
calibrated, so this is Neyman's allocation item by item; the floor (a tenth of the mean by default) keeps
every item drawable, which the estimator needs, and bounds the weights when the judge is confidently wrong.
The estimator is the prediction-powered one with Horvitz-Thompson weights, the judge's probability as the
prediction:

    theta_hat = (1/N) sum_i [ p_i + xi_i (h_i - p_i) / pi_i ],      xi_i = 1 if i was labelled,

unbiased whatever the judge (E xi_i = pi_i), with design variance (1/N^2) sum_i (1 - pi_i)/pi_i (h_i - p_i)^2,
estimated without bias by (1/N^2) sum over the labelled of (1 - pi_i)/pi_i^2 (h_i - p_i)^2, plus the
superpopulation term theta (1 - theta) / N and the small-sample adjustment of core/ppi/intervals.py (one
pseudo-disagreement each way, weighted as in a uniform sample of the same expected size, (1 - pibar)/pibar^2);
normal quantile. `labels_needed_active`
(core/ppi/planning.py) sizes the budget for a target width from the probabilities alone.

What the store would need for the review page and `review sample --by-uncertainty` (not wired: the store
keeps no probability today): a `score` column (P(refused), nullable) on verdicts, written by judges that
have one; and per sampled completion its inclusion probability and the design (`poisson`) in review_sample,
because a Poisson sample is not a stratified SRS and core.ppi.CorrectedRates must not read it as one. Until
then this module takes the probability as a column `judge_prob` of one row per completion.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from core.ppi.inputs import HUMAN_VALUE, PPIError
from core.ppi.intervals import PSEUDO
from core.stats import z_quantile

FLOOR = 0.1  # the smallest weight, as a share of the mean weight (module docstring)


def uncertainty_weights(prob: np.ndarray, floor: float = FLOOR) -> np.ndarray:
    """sqrt(p (1 - p)), floored at `floor` times its mean (all equal where every p is 0 or 1)."""
    p = np.clip(np.asarray(prob, dtype="float64"), 0.0, 1.0)
    if np.isnan(p).any():
        raise PPIError("judge_prob must be a probability for every completion (none missing)")
    w = np.sqrt(p * (1 - p))
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
                 pseudo: float = PSEUDO) -> pd.DataFrame:
    """The actively sampled corrected DR per cell of `by` (module docstring).

    `items`: one row per completion with `judge_prob` (P(refused) by the judge), `inclusion_prob` (pi_i of the
    draw) and `human_label` (refused/complied where labelled, empty elsewhere), plus the `by` columns.
    Returns per cell: n, n_human, dr, ci_low, ci_high, se, dr_judge (the mean probability), note.
    """
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
    h = np.where(labelled, human == "refused", 0).astype("float64")
    if by:
        cell, keys = pd.MultiIndex.from_frame(items[by]).factorize(sort=True)
        cells = keys.to_frame(index=False)
        cells.columns = by
    else:
        cell, cells = np.zeros(len(items), dtype="int64"), pd.DataFrame(index=[0])
    C = len(cells)
    N = np.bincount(cell, minlength=C).astype("float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        resid = np.where(labelled, (h - p) / np.where(labelled, pi, 1.0), 0.0)
        weight = np.where(labelled, (1 - pi) / np.where(labelled, pi, 1.0) ** 2, 0.0)
        theta = (np.bincount(cell, weights=p, minlength=C) + np.bincount(cell, weights=resid, minlength=C)) / N
        n_human = np.bincount(cell, weights=labelled.astype(float), minlength=C)
        pi_bar = np.bincount(cell, weights=pi, minlength=C) / N  # the cell's expected share labelled
        mean_weight = (1 - pi_bar) / pi_bar ** 2
        design = (np.bincount(cell, weights=weight * (h - p) ** 2, minlength=C)
                  + 2 * pseudo * np.nan_to_num(mean_weight)) / N ** 2
        t = np.clip(theta, 0, 1)
        se = np.sqrt(design + t * (1 - t) / N)
    z = z_quantile(confidence)
    ok = n_human >= 2
    theta, se = np.where(ok, theta, np.nan), np.where(ok, se, np.nan)
    note = np.where(ok, "", "fewer than 2 human labels")
    out = pd.DataFrame({"n": N.astype("int64"), "n_human": n_human.astype("int64"), "dr": np.clip(theta, 0, 1),
                        "ci_low": np.clip(theta - z * se, 0, 1), "ci_high": np.clip(theta + z * se, 0, 1),
                        "se": se, "dr_judge": np.bincount(cell, weights=p, minlength=C) / N, "note": note})
    return pd.concat([cells.reset_index(drop=True), out], axis=1)
