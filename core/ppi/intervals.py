"""How wide a corrected interval is: the small-sample adjustment of its variance, its quantile, and the
Wilson interval of a rate (under the judge's error rates, and Newcombe's paired interval in core/stats/comparison.py).

Small-sample adjustment (the choice, and why). With binary labels a sample in which the judge agrees
with every human has s2 = 0 and a normal interval of zero design width, although a judge that is right
97% of the time agrees with all of 20 labels half the time. Like the Wilson/Agresti-Caffo intervals
(which add pseudo-observations to a binomial), the variance (never the estimate, which stays unbiased)
is computed as if each cell's sample held `pseudo` = 1 extra disagreement each way, (h, f) = (1, 0) and
(0, 1): they are spread over the cell's strata in proportion to its labels there, so a cell made of many
strata gets the same floor as a single stratum with its labels (about 2/n_human^2 on the variance),
not one per stratum. For a cell with a perfect judge and n labels this gives a half-width of about
1.96 sqrt(2)/n, close to the "rule of three" bound 3/n. The quantile is Student's t at Satterthwaite's
degrees of freedom over the strata (sum_s v_s)^2 / sum_s v_s^2/(n_s - 1), as survey software does, which
matters for cells made of small strata. Simulated coverage of nominal 95% intervals (`_coverage_study()`:
4,000 repetitions per row, one stratum of N = 600, the judge flipping each human label with probability
d, the worst of DR 0.5, 0.9 and 0.99, truth = the superpopulation DR):

    labels  d      pseudo=0   pseudo=0.5  pseudo=1    pseudo=2
    20      0.02   0.41       1.00        1.00        1.00
    20      0.05   0.64       1.00        1.00        1.00
    20      0.10   0.85       0.97        1.00        1.00
    20      0.20   0.92       0.96        0.98        0.99
    60      0.02   0.73       0.98        0.99        1.00
    60      0.05   0.91       0.95        0.98        0.99
    60      0.10   0.94       0.96        0.97        0.99
    60      0.20   0.94       0.95        0.96        0.97
    150     0.05   0.95       0.96        0.96        0.97
    150     0.20   0.95       0.96        0.96        0.96

Without it (pseudo=0) coverage collapses exactly where the judge is good and the sample small (0.41 at 20
labels and 2% disagreement). pseudo = 0.5 is the smallest value within MC error of nominal in every row;
pseudo = 1 is chosen for a margin (real cells mix strata and the acceptance checks 93% per cell over only
200 repetitions), at a cost in width of about 2% at 150 labels and d = 0.2, more at 20 labels where the
variance estimate itself is unreliable.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from core.stats import z_quantile

PSEUDO = 1.0  # pseudo-disagreements each way per cell, in the variance only (see the module docstring)


def _coverage_study(reps: int = 4000, N: int = 600, seed: int = 0, truth: str = "superpopulation") -> pd.DataFrame:
    """The simulation behind PSEUDO (module docstring): coverage by the corrected 95% interval of one cell
    (one stratum of N, `labels` of them labelled), the judge flipping each label with probability d, for
    several pseudo values; the worst over DR 0.5, 0.9 and 0.99. `truth`: "superpopulation" (the estimand: the
    DR the items are drawn with) or "finite" (the drawn population's human DR; conservative)."""
    rng = np.random.default_rng(seed)
    z = z_quantile(0.95)
    pseudos = np.array([0.0, 0.5, 1.0, 2.0])
    rows = []
    for labels in (20, 60, 150):
        for d in (0.02, 0.05, 0.10, 0.20):
            worst = np.ones(len(pseudos))
            for dr in (0.5, 0.9, 0.99):
                h = (rng.random((reps, N)) < dr).astype(float)
                f = np.where(rng.random((reps, N)) < d, 1 - h, h)
                pick = np.argsort(rng.random((reps, N)), axis=1)[:, :labels]
                zz = np.take_along_axis(h - f, pick, axis=1)
                target = h.mean(axis=1) if truth == "finite" else dr
                theta = f.mean(axis=1) + zz.mean(axis=1)
                t = np.clip(theta, 0, 1)
                su, suu = zz.sum(axis=1)[:, None], (zz ** 2).sum(axis=1)[:, None] + 2 * pseudos
                cnt = labels + 2 * pseudos
                s2 = np.maximum(suu - su ** 2 / cnt, 0.0) / (cnt - 1)
                design = (1 - labels / N) * s2 / labels
                total = (t * (1 - t) / N)[:, None] + design
                with np.errstate(invalid="ignore", divide="ignore"):
                    df = np.where(design > 0, total ** 2 / (design ** 2 / (labels - 1)), np.inf)
                q = np.where(np.isinf(df), z, special.stdtrit(np.where(np.isinf(df), 1.0, np.maximum(df, 1.0)), 0.975))
                cover = (np.abs(theta - target)[:, None] <= q * np.sqrt(total)).mean(axis=0)
                worst = np.minimum(worst, cover)
            rows.append({"labels": labels, "d": d, **{f"pseudo={a:g}": v for a, v in zip(pseudos, worst)}})
    return pd.DataFrame(rows)
