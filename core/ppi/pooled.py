"""The pooled rectifier: the judge's error measured on a model x language's WHOLE review sample and applied to
each of its groups, so that a group needs few or no labels of its own (CorrectedRates(rectifier="pooled"), and
the default "auto" where the data do not contradict it).

Why. The per-group rectifier (core/ppi/rates.py) corrects a group with its own labels only: unbiased whatever
the judge, but a 10% sample of a 300-answer group is 30 labels and a +/- 0.15 interval. If the judge errs the
same way in every group of a model x language ("pool": run x model x language x kind, the strata without the
group), the pool's hundreds of labels can correct each group.

What "errs the same way" means decides the estimator, and the obvious candidates fail on realistic audits:

* additive: theta_c = judge mean_c + the pool's mean(h - f). Biased as soon as groups' DRs differ: under a
  judge whose error rates P(judge | human) are the same in every group, the rectifier is theta (1 - J) - a0,
  linear in the group's DR (J = sensitivity + specificity - 1, a0 the false-refusal rate).
* confusion matrix / calibration: theta_c = sum_j share_c(j) P_pool(human refused | judge said j). Assumes
  P(human | judge) is the same in every group, which a judge with group-independent error rates breaks as
  soon as DRs differ (the predictive values move with the prevalence): it shrinks every group towards the
  pool's DR by a factor 1 - J (q1 - q0), 80% for the `refusal` judge on GPTFuzz (J = 0.46). A disparity audit
  that shrinks disparities is the wrong tool (the table below: coverage 0.00 for the extreme groups).
* misclassification inversion (Rogan-Gladen): theta_c = (judge mean_c - a0) / J with pooled error rates.
  Right under group-independent error rates, but it divides the group's own judge noise by J: with a weak
  judge it is no narrower than the per-group rectifier.

Coverage of each group's human DR (worst group / mean) and width relative to the per-group rectifier, 13
groups of 300, 10% sample, 400 repetitions, the judge's error rates equal in every group (a numpy prototype
of these estimators, run while choosing; only the chosen one is kept, with `_coverage_study()` below):

    judge     DR spread | additive         | confusion matrix | Rogan-Gladen     | linear (below, no tau^2)
    moderate  0         | 0.98/0.99  0.41  | 0.98/0.99  0.38  | 0.98/0.99  0.54  | 0.98/0.99  0.49
    moderate  0.5-0.9   | 0.60/0.88  0.42  | 0.01/0.55  0.39  | 0.97/0.99  0.55  | 0.96/0.98  0.55
    weak      0         | 0.94/0.95  0.37  | 0.96/0.97  0.34  | 0.96/0.98  0.76  | 0.98/0.98  0.48
    weak      0.5-0.9   | 0.08/0.56  0.38  | 0.00/0.37  0.36  | 0.96/0.98  0.78  | 0.93/0.96  0.64

Both invariances (and the additive one) make a group's DR a LINEAR function of its judge DR within the pool
(theta = q0 + (q1 - q0) fbar under the first, (fbar - a0) / J under the second). So the pooled rectifier
estimates that line from the data rather than assuming its slope (Mundlak's contextual-effect regression of
the human label on the judge's label):

    h_i = alpha_P + lam_P f_i + beta_P fbar_g(i) + e_i,     theta_c = sum_{pieces p of c} N_p (lam_P fbar_p
                                                              + alpha_P + beta_P fbar_p) / N_c,

lam_P the within-stratum regression slope of h on f (clipped to [0, 1]; it only changes the variance: the
fitted line absorbs any fixed lam), (alpha, beta) fitted by least squares over the pool's labels with each
label's own piece's judge DR fbar_p as the covariate (a piece is a stratum x cell pair; fbar_p is known from
the population). Every label counts once (weights N_p n_s/N_s per piece, whose HT expansion cancels), so the
estimate is a fixed linear function of the sample: its design variance is exact,

    Var_design = sum_P a_cP' G_P [sum_{s in P} n_s (1 - n_s/N_s) Cov_s(x z)] G_P a_cP / N_c^2,

a_cP = sum_{p in c, P} N_p x_p, x = (1, fbar), z = h - lam f, G_P the inverse normal matrix, Cov_s the sample
covariance over the stratum's labels with the pool's one pseudo-disagreement each way (core/ppi/intervals.py);
cells that share a pool share (alpha, beta), so `CorrectedRates.covariance()` has off-diagonal terms.
The superpopulation term is the larger of the line's own noise, s^2 Var_c(f) / N_c with s = lam + beta the
slope of theta on fbar (s^2 less its estimation variance), and theta (1 - theta) / N_c: the first is the
variance for the superpopulation DR, the second bounds the cell's own residual around the line (for the
finite population's DR) under either invariance. Heterogeneity the line does not explain is estimated by
moments from the lack-of-fit ANOVA (tau^2, between pieces, above their sampling noise, truncated at 0) and
added to each piece (a "robust" variance in the random-effects sense; Satterthwaite's degrees of freedom
count it with the k - 2 of its estimate, so an interval that leans on it uses a t quantile); the same
ANOVA's F test (the pool's pieces' mean z around the line, within-piece variance pooled, df k - 2 and n - k,
no finite-population correction: its null is the superpopulation's) checks the line.

`auto` (the default) pools a cell when (1) its grouping splits pools (a cell that is a whole pool gains
nothing), (2) every pool it touches has >= min_human labels in >= MIN_GROUPS (8) labelled groups (a line
through fewer points cannot be checked: on GPTFuzz's 6 length groups, whose judge errors differ a lot, the
test at 6 groups let a badly wrong line through in 4% of samples and those cells' coverage fell to 0.91),
and (3) the F test does not reject at GATE_ALPHA. A cell without min_human labels of its own is pooled
whatever (3) says (given (2)), so every cell gets an estimate; tau^2 then carries the spread between groups
into its interval, and its note says so. Cells that span pools (by group across models) are pooled when every
pool they touch is. A per-cell check (CELL_ALPHA > 0: a cell whose own labels contradict the pooled line,
|pooled - own| > z sd with the two estimates' covariance counted exactly, keeps its own) was tried and is off
by default: at 0.05 it left every scenario's worst group where it was, cost 2% of width on GPTFuzz and
lowered the mean coverage (0.985 to 0.973: a pre-test's selection).

The rule was chosen by simulation (`_coverage_study()`: 13 groups of 300 answers in one model x language; DRs
equal (spread 0) or spread over 0.5-0.9 (0.4); the judge's false-compliance rate varying linearly across the
groups by X points around 0.15 ("spread"; moderate judge, false refusal 0.10) or 0.165 (weak judge, false
refusal 0.376, the `refusal` judge on GPTFuzz), or one group X points above the rest ("one"); a fresh
population and a stratified 10% or 20% sample in each of 200 repetitions; truth = each group's human DR in
its population). Per scenario: the worst group's coverage / the mean over groups, and the mean width
relative to the per-group rectifier's (auto with the lack-of-fit test at 0.2 or at 0.05):

    judge     DRs  errors    X     sample | per group | pooled (always)  | auto, F at 0.2   | auto, F at 0.05
    --------  ---  -------   ----  ------ | --------- | ---------------- | ---------------- | ----------------
    moderate  0.0  spread    0.0   10%    | 0.96/0.99 | 0.99/1.00  0.54  | 0.98/0.99  0.58  | 0.99/0.99  0.54
    moderate  0.0  spread    0.0   20%    | 0.97/0.99 | 0.99/1.00  0.66  | 0.98/0.99  0.67  | 0.99/1.00  0.65
    moderate  0.0  spread    0.02  10%    | 0.97/0.99 | 0.98/0.99  0.54  | 0.97/0.99  0.58  | 0.98/0.99  0.54
    moderate  0.0  spread    0.02  20%    | 0.97/0.99 | 0.98/1.00  0.69  | 0.97/0.99  0.71  | 0.97/0.99  0.68
    moderate  0.0  spread    0.05  10%    | 0.98/0.99 | 0.98/0.99  0.55  | 0.98/0.99  0.60  | 0.98/0.99  0.55
    moderate  0.0  spread    0.05  20%    | 0.97/0.99 | 0.97/0.99  0.66  | 0.97/0.99  0.68  | 0.97/0.99  0.66
    moderate  0.0  spread    0.1   10%    | 0.97/0.99 | 0.97/0.99  0.55  | 0.96/0.98  0.61  | 0.97/0.99  0.55
    moderate  0.0  spread    0.1   20%    | 0.97/0.99 | 0.98/0.99  0.68  | 0.97/0.99  0.71  | 0.98/0.99  0.68
    moderate  0.4  one       0.05  10%    | 0.98/0.99 | 0.94/0.99  0.64  | 0.94/0.98  0.68  | 0.94/0.99  0.64
    moderate  0.4  one       0.05  20%    | 0.97/0.99 | 0.95/0.99  0.86  | 0.95/0.98  0.85  | 0.95/0.99  0.84
    moderate  0.4  one       0.1   10%    | 0.97/0.99 | 0.75/0.97  0.69  | 0.79/0.97  0.75  | 0.76/0.97  0.69
    moderate  0.4  one       0.1   20%    | 0.96/0.99 | 0.77/0.98  0.96  | 0.86/0.98  0.90  | 0.80/0.97  0.88
    moderate  0.4  spread    0.0   10%    | 0.97/0.99 | 0.97/0.99  0.63  | 0.95/0.98  0.66  | 0.97/0.99  0.63
    moderate  0.4  spread    0.0   20%    | 0.96/0.99 | 0.99/1.00  0.84  | 0.98/0.99  0.84  | 0.99/0.99  0.83
    moderate  0.4  spread    0.02  10%    | 0.97/0.99 | 0.98/0.99  0.65  | 0.97/0.98  0.69  | 0.98/0.99  0.65
    moderate  0.4  spread    0.02  20%    | 0.97/0.99 | 0.98/1.00  0.86  | 0.97/0.99  0.85  | 0.98/0.99  0.84
    moderate  0.4  spread    0.05  10%    | 0.98/0.99 | 0.97/0.99  0.67  | 0.96/0.99  0.71  | 0.97/0.99  0.67
    moderate  0.4  spread    0.05  20%    | 0.97/0.98 | 0.98/0.99  0.92  | 0.96/0.98  0.89  | 0.96/0.98  0.88
    moderate  0.4  spread    0.1   10%    | 0.96/0.99 | 0.95/0.98  0.75  | 0.94/0.98  0.80  | 0.94/0.98  0.74
    moderate  0.4  spread    0.1   20%    | 0.95/0.98 | 0.96/0.99  1.04  | 0.93/0.98  0.94  | 0.94/0.98  0.94
    weak      0.0  spread    0.0   10%    | 0.96/0.98 | 0.96/0.99  0.51  | 0.96/0.98  0.56  | 0.96/0.99  0.51
    weak      0.0  spread    0.0   20%    | 0.96/0.98 | 0.97/0.98  0.60  | 0.96/0.97  0.62  | 0.96/0.98  0.60
    weak      0.0  spread    0.02  10%    | 0.96/0.98 | 0.97/0.99  0.52  | 0.96/0.98  0.55  | 0.97/0.98  0.52
    weak      0.0  spread    0.02  20%    | 0.94/0.98 | 0.97/0.99  0.61  | 0.97/0.98  0.64  | 0.97/0.99  0.61
    weak      0.0  spread    0.05  10%    | 0.96/0.98 | 0.97/0.99  0.52  | 0.96/0.98  0.57  | 0.97/0.99  0.52
    weak      0.0  spread    0.05  20%    | 0.95/0.98 | 0.97/0.98  0.58  | 0.95/0.98  0.61  | 0.97/0.98  0.58
    weak      0.0  spread    0.1   10%    | 0.94/0.97 | 0.96/0.98  0.52  | 0.94/0.97  0.56  | 0.95/0.98  0.52
    weak      0.0  spread    0.1   20%    | 0.95/0.98 | 0.97/0.99  0.63  | 0.96/0.98  0.67  | 0.97/0.98  0.62
    weak      0.4  one       0.05  10%    | 0.95/0.97 | 0.95/0.98  0.79  | 0.94/0.96  0.81  | 0.94/0.97  0.77
    weak      0.4  one       0.05  20%    | 0.94/0.97 | 0.96/0.99  1.13  | 0.94/0.97  0.97  | 0.95/0.97  0.99
    weak      0.4  one       0.1   10%    | 0.97/0.98 | 0.83/0.97  0.86  | 0.87/0.96  0.87  | 0.83/0.96  0.82
    weak      0.4  one       0.1   20%    | 0.95/0.98 | 0.88/0.99  1.22  | 0.95/0.97  0.98  | 0.91/0.97  0.99
    weak      0.4  spread    0.0   10%    | 0.96/0.98 | 0.95/0.98  0.77  | 0.94/0.97  0.79  | 0.94/0.97  0.75
    weak      0.4  spread    0.0   20%    | 0.95/0.98 | 0.98/0.99  1.11  | 0.95/0.98  0.97  | 0.95/0.98  0.99
    weak      0.4  spread    0.02  10%    | 0.95/0.97 | 0.96/0.98  0.82  | 0.94/0.97  0.83  | 0.95/0.98  0.79
    weak      0.4  spread    0.02  20%    | 0.94/0.97 | 0.97/0.99  1.14  | 0.94/0.97  0.97  | 0.95/0.98  0.99
    weak      0.4  spread    0.05  10%    | 0.94/0.97 | 0.94/0.98  0.84  | 0.93/0.96  0.84  | 0.93/0.96  0.81
    weak      0.4  spread    0.05  20%    | 0.94/0.97 | 0.98/0.99  1.23  | 0.94/0.97  0.99  | 0.96/0.98  1.01
    weak      0.4  spread    0.1   10%    | 0.97/0.98 | 0.92/0.98  0.97  | 0.92/0.97  0.91  | 0.92/0.97  0.89
    weak      0.4  spread    0.1   20%    | 0.95/0.98 | 0.97/0.99  1.38  | 0.95/0.98  1.00  | 0.96/0.98  1.02

Reading it. Where the groups' judge errors differ by up to 10 points spread over the groups, every rule
keeps the worst group within Monte Carlo error of nominal (the worst of 13 groups at exactly 95% lands near
0.92 over 200 repetitions by chance; the hardest corner, weak judge, DRs spread, 10 points, 10% sample,
gives 0.917 for F.05 and 0.930 for F.2 over 1,000), the mean well above it. F.05's width, relative to the
per-group rectifier's: 0.51-0.55 at 10% and 0.58-0.68 at 20% where the DRs are alike; where they spread the
line's slope costs, 0.63-0.74 (moderate judge) and 0.75-0.89 (weak) at 10%, and at 20% with the weak judge
nothing is left to gain (0.99-1.02: the test then mostly sends the groups to their own labels). Always
pooling with the robust variance covers as well but is wider than the per-group rectifier where errors
differ (up to 1.38): the test earns its place there. The level: F.05 and F.2 cover alike (0.92 against 0.93
in the hardest corner), F.2 costs 4-6 points of width where the groups err alike, and on GPTFuzz in 13
hashed groups (tests/ppi/test_pooled.py) F.2 gives 0.64 of today's width, F.05 0.59, the issue's acceptance
being 0.60: GATE_ALPHA = 0.05.

What no pooling rule does: protect ONE group whose judge misses 10 points more refusals than the others'
(the "one" rows, 0.10): worst group 0.76-0.83 at 10% (30 labels), 0.80-0.91 at 20% (F.2: 0.79-0.87 and
0.86-0.95). Its own 30 labels cannot tell a 10-point error from noise (the per-cell check's z is about 1.2),
yet it moves the pooled estimate by about two of its standard errors; a per-cell check at CELL_ALPHA 0.2
gets 0.82 for 0.65 of the per-group width on GPTFuzz. At 5 points it is covered (0.94). Where one group is
suspected, the judge's error by group (core.ppi.judge_error, `review bias`) and rectifier="group" (exact)
are the tools.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from core.ppi.inputs import MIN_STRATUM, STRATA
from core.ppi.moments import combine_codes, index_ranges

POOL: tuple[str, ...] = tuple(c for c in STRATA if c != "group")  # run_id, model, language, kind
SCOPES: tuple[str, ...] = ("auto", "pooled", "group")
MIN_GROUPS = 8  # auto pools only where this many groups have labels: fewer cannot check a line
CELL_ALPHA = 0.0  # auto: > 0 lets a cell whose own labels contradict the pooled line at this level keep them
GATE_ALPHA = 0.05  # the lack-of-fit test's level under "auto" (module docstring: the simulation behind it)
LANGUAGE_NAMES = {"en": "English", "pt": "Portuguese"}


def language_name(code) -> str:
    return LANGUAGE_NAMES.get(str(code), str(code))


@dataclass
class PoolFit:
    """The pooled line of every pool: per pool (NP), per stratum (S) and per piece (P) arrays."""

    pools: pd.DataFrame  # POOL columns, one row per pool
    pool_of_s: np.ndarray  # (S,)
    pool_of_p: np.ndarray  # (P,)
    fitted_p: np.ndarray  # (P,) bool: the piece's stratum has >= MIN_STRATUM labels
    x: np.ndarray  # (P, 2): 1, the piece's judge mean
    lam: np.ndarray  # (NP,)
    beta: np.ndarray  # (NP, 2)
    G: np.ndarray  # (NP, 2, 2)
    Q_s: np.ndarray  # (S, 2, 2): stratum s's share of Var(beta)
    M: np.ndarray  # (NP, 2, 2): Var(beta), design
    labels: np.ndarray  # (NP,) labels in the pool's usable strata
    groups: np.ndarray  # (NP,) labelled pieces
    slope: np.ndarray  # (NP,) bool: the line has a slope (else intercept only)
    s2: np.ndarray  # (NP,) squared slope of theta on fbar, less its estimation variance
    F: np.ndarray
    df1: np.ndarray
    df2: np.ndarray
    p_value: np.ndarray
    tau2: np.ndarray

    def table(self) -> pd.DataFrame:
        """One row per pool: labels, groups, lam, slope, the lack-of-fit test and tau^2."""
        return self.pools.assign(labels=self.labels.astype("int64"), groups=self.groups.astype("int64"),
                                 lam=self.lam, slope=np.where(self.slope, self.lam + self.beta[:, 1], np.nan),
                                 F=self.F, df1=self.df1, df2=self.df2, p_value=self.p_value, tau2=self.tau2)


def fit_pools(strata: pd.DataFrame, s_of: np.ndarray, N_p: np.ndarray, F_p: np.ndarray, mom: dict,
              N_s: np.ndarray, n_s: np.ndarray, pseudo: float) -> PoolFit:
    """The pooled line of each pool from the pieces' population counts and sample moments (module docstring)."""
    S, P = len(N_s), len(s_of)
    codes, radix = [], []
    for column in POOL:
        code, values = pd.factorize(strata[column], sort=True, use_na_sentinel=False)
        codes.append(code.astype("int64"))
        radix.append(max(len(values), 1))
    _, first, pool_of_s = np.unique(combine_codes(codes, radix), return_index=True, return_inverse=True)
    pool_of_s = pool_of_s.astype("int64").reshape(-1)
    pools = strata[list(POOL)].iloc[first].reset_index(drop=True)
    NP = len(pools)
    pp = pool_of_s[s_of] if P else np.zeros(0, dtype="int64")
    usable_s = n_s >= MIN_STRATUM
    fitted = usable_s[s_of] & (N_p > 0) if P else np.zeros(0, dtype=bool)
    fw = fitted.astype("float64")
    # lam: the within-stratum regression slope of h on f over the pool's usable strata
    st = {k: np.bincount(s_of, weights=mom[k] * fw, minlength=S) for k in ("m", "sh", "sf", "shf", "sff")}
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.where(st["m"] > 0, st["shf"] - st["sh"] * st["sf"] / st["m"], 0.0)
        var = np.where(st["m"] > 0, st["sff"] - st["sf"] ** 2 / st["m"], 0.0)
    num, den = np.bincount(pool_of_s, weights=cov, minlength=NP), np.bincount(pool_of_s, weights=var, minlength=NP)
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where(den > 1e-12, np.clip(num / den, 0.0, 1.0), 1.0)
    lp = lam[pp]
    Sz = mom["sh"] - lp * mom["sf"]
    Szz = mom["sh"] - 2 * lp * mom["shf"] + lp ** 2 * mom["sff"]  # h is 0/1, so sum h^2 = sum h
    with np.errstate(invalid="ignore", divide="ignore"):
        fbar = np.where(N_p > 0, F_p / N_p, 0.0)
        omega = np.where(fitted, N_p * n_s[s_of] / N_s[s_of], 0.0)
    x = np.stack([np.ones(P), fbar], axis=1)
    XX = np.stack([np.bincount(pp, weights=omega * x[:, i] * x[:, j], minlength=NP) for i, j in ((0, 0), (0, 1),
                                                                                                  (1, 1))], axis=1)
    groups = np.bincount(pp, weights=(fitted & (mom["m"] > 0)).astype(float), minlength=NP)
    k_fit = np.bincount(pp, weights=fw, minlength=NP)
    det = XX[:, 0] * XX[:, 2] - XX[:, 1] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        spread = np.where(XX[:, 0] > 0, det / XX[:, 0] ** 2, 0.0)  # weighted variance of fbar
    slope = (k_fit >= 3) & (spread > 1e-10)
    G = np.zeros((NP, 2, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        G[:, 0, 0] = np.where(slope, XX[:, 2] / det, np.where(XX[:, 0] > 0, 1 / XX[:, 0], 0.0))
        G[:, 0, 1] = G[:, 1, 0] = np.where(slope, -XX[:, 1] / det, 0.0)
        G[:, 1, 1] = np.where(slope, XX[:, 0] / det, 0.0)
    rhs = np.stack([np.bincount(pp, weights=fw * x[:, i] * Sz, minlength=NP) for i in (0, 1)], axis=1)
    beta = np.einsum("pij,pj->pi", G, rhs)
    labels = np.bincount(pp, weights=mom["m"] * fw, minlength=NP)
    # design: per stratum, the sample covariance of x z (plus the pool's pseudo items)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(fitted & (labels[pp] > 0), pseudo * mom["m"] / labels[pp], 0.0)
    zs = fw * Sz + w * (1 - lp)
    zz = fw * Szz + w * (1 + lp ** 2)
    T1 = np.stack([np.bincount(s_of, weights=x[:, i] * zs, minlength=S) for i in (0, 1)], axis=1)
    T2 = np.zeros((S, 2, 2))
    for i, j in ((0, 0), (0, 1), (1, 1)):
        T2[:, i, j] = T2[:, j, i] = np.bincount(s_of, weights=x[:, i] * x[:, j] * zz, minlength=S)
    cnt = n_s + np.bincount(s_of, weights=2 * w, minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        C = (T2 - T1[:, :, None] * T1[:, None, :] / cnt[:, None, None]) / (cnt - 1)[:, None, None]
        scale = np.where(usable_s, n_s * (1 - n_s / N_s), 0.0)
    C = np.where(usable_s[:, None, None], C, 0.0) * scale[:, None, None]
    Gs = G[pool_of_s] if S else np.zeros((0, 2, 2))
    Q_s = Gs @ C @ Gs
    M = np.zeros((NP, 2, 2))
    for i, j in ((0, 0), (0, 1), (1, 0), (1, 1)):
        M[:, i, j] = np.bincount(pool_of_s, weights=Q_s[:, i, j], minlength=NP)
    s2 = np.where(slope, np.maximum((lam + beta[:, 1]) ** 2 - M[:, 1, 1], 0.0), lam ** 2)
    F, df1, df2, p_value, tau2 = _lack_of_fit(pp, NP, x, mom["m"] * fw, Sz * fw, Szz * fw, slope)
    return PoolFit(pools, pool_of_s, pp, fitted, x, lam, beta, G, Q_s, M, labels, groups, slope, s2, F, df1, df2,
                   p_value, tau2)


def _lack_of_fit(pp: np.ndarray, NP: int, x: np.ndarray, m: np.ndarray, Sz: np.ndarray, Szz: np.ndarray,
                 slope: np.ndarray):
    """Per pool: the ANOVA F test of the labelled pieces' mean z around the pool's line (weights = labels,
    within-piece variance pooled; no finite-population correction: the null is the superpopulation's, where a
    piece's sample mean varies by s2/m around the line) and the method-of-moments tau^2 (truncated at 0)."""
    has = m > 0
    k = np.bincount(pp, weights=has.astype(float), minlength=NP)
    n = np.bincount(pp, weights=m, minlength=NP)
    XX = np.stack([np.bincount(pp, weights=m * x[:, i] * x[:, j], minlength=NP) for i, j in ((0, 0), (0, 1),
                                                                                             (1, 1))], axis=1)
    det = XX[:, 0] * XX[:, 2] - XX[:, 1] ** 2
    two = slope & (det > 1e-12 * np.maximum(XX[:, 0], 1) ** 2)
    G = np.zeros((NP, 2, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        G[:, 0, 0] = np.where(two, XX[:, 2] / det, np.where(XX[:, 0] > 0, 1 / XX[:, 0], 0.0))
        G[:, 0, 1] = G[:, 1, 0] = np.where(two, -XX[:, 1] / det, 0.0)
        G[:, 1, 1] = np.where(two, XX[:, 0] / det, 0.0)
    b = np.einsum("pij,pj->pi", G, np.stack([np.bincount(pp, weights=x[:, i] * Sz, minlength=NP) for i in (0, 1)],
                                            axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        zbar = np.where(has, Sz / m, 0.0)
        resid = zbar - np.einsum("pi,pi->p", x, b[pp])
        Qb = np.bincount(pp, weights=np.where(has, m * resid ** 2, 0.0), minlength=NP)
        lev = np.einsum("pi,pij,pj->p", x, G[pp], x)
        d = np.where(has, m - m ** 2 * lev, 0.0)
        within_ss = np.bincount(pp, weights=np.where(has, Szz - Sz ** 2 / np.where(has, m, 1), 0.0), minlength=NP)
        params = np.where(two, 2, 1)
        df1, df2 = k - params, n - k
        s2w = np.where(df2 > 0, np.maximum(within_ss, 0.0) / df2, np.nan)
        noise = s2w * np.bincount(pp, weights=np.where(has, d / np.where(has, m, 1), 0.0), minlength=NP)
        sum_d = np.bincount(pp, weights=d, minlength=NP)
        testable = (df1 >= 1) & (df2 >= 1)
        F = np.where(testable & (noise > 0), Qb / noise, np.where(Qb > 1e-12, np.inf, 0.0))
        p = np.where(noise > 0, special.fdtrc(np.maximum(df1, 1), np.maximum(df2, 1), np.where(np.isfinite(F), F, 0)),
                     np.where(Qb > 1e-12, 0.0, 1.0))
        tau2 = np.where(testable & (sum_d > 0), np.maximum(0.0, (Qb - np.nan_to_num(noise)) / sum_d), 0.0)
    p = np.where(testable, p, np.nan)
    F = np.where(testable, F, np.nan)
    return F, df1, df2, p, tau2


@dataclass
class PooledCells:
    """The pooled estimate of every cell of a partition of the pieces (module docstring): theta (unclipped),
    design variance and Satterthwaite's sum, the superpopulation and heterogeneity terms, and per cell and
    pool A[c, P] = a_cP / N_c (the cell's loading on the pool's line)."""

    theta: np.ndarray
    design: np.ndarray
    var_sq: np.ndarray
    superpop: np.ndarray
    tau: np.ndarray
    N: np.ndarray
    A: np.ndarray  # (C, NP, 2)
    touches: np.ndarray  # (C, NP) bool
    judge_mean: np.ndarray
    lam: np.ndarray  # N-weighted lam of the pools the cell touches

    @property
    def total(self) -> np.ndarray:
        return self.design + self.superpop + self.tau


def pooled_cells(fit: PoolFit, c_of: np.ndarray, C: int, N_p: np.ndarray, F_p: np.ndarray, F2_p: np.ndarray,
                 s_of: np.ndarray, n_s: np.ndarray) -> PooledCells:
    """Every cell's pooled estimate under the partition c_of of the pieces (cells need no labels of their own)."""
    NP = len(fit.lam)
    pp = fit.pool_of_p
    live = N_p > 0
    key = c_of.astype("int64") * max(NP, 1) + pp
    uniq, inv = np.unique(key[live], return_inverse=True)
    R = len(uniq)
    pc, pool = uniq // max(NP, 1), uniq % max(NP, 1)
    Nl, xl = N_p[live], fit.x[live]
    a = np.stack([np.bincount(inv, weights=Nl * xl[:, i], minlength=R) for i in (0, 1)], axis=1)
    N_cP = np.bincount(inv, weights=Nl, minlength=R)
    F_cP = np.bincount(inv, weights=F_p[live], minlength=R)
    F2_cP = np.bincount(inv, weights=F2_p[live], minlength=R)
    tw = np.bincount(inv, weights=Nl ** 2, minlength=R)
    N = np.bincount(pc, weights=N_cP, minlength=C)
    num = fit.lam[pool] * F_cP + np.einsum("ri,ri->r", a, fit.beta[pool])
    design_r = np.einsum("ri,rij,rj->r", a, fit.M[pool], a)
    # Satterthwaite: every (cell, pool) pair x the usable strata of the pool
    order = np.argsort(fit.pool_of_s, kind="stable")
    usable = (n_s >= MIN_STRATUM)[order]
    order = order[usable]
    counts = np.bincount(fit.pool_of_s[order], minlength=NP)
    starts = np.cumsum(counts) - counts
    idx, owner = index_ranges(starts[pool], counts[pool])
    s_rows = order[idx] if len(idx) else np.zeros(0, dtype="int64")
    quad = np.einsum("ri,rij,rj->r", a[owner], fit.Q_s[s_rows], a[owner]) if len(idx) else np.zeros(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        vsq_rows = quad ** 2 / (n_s[s_rows] - 1)
        theta = np.bincount(pc, weights=num, minlength=C) / N
        design = np.bincount(pc, weights=design_r, minlength=C) / N ** 2
        var_sq = np.bincount(pc[owner], weights=vsq_rows, minlength=C) / N ** 4
        vf = np.where(N_cP > 0, F2_cP / N_cP - (F_cP / N_cP) ** 2, 0.0)
        line = np.bincount(pc, weights=fit.s2[pool] * vf * N_cP, minlength=C) / N ** 2
        t = np.clip(theta, 0, 1)
        superpop = np.maximum(line, np.where(N > 0, t * (1 - t) / N, np.nan))
        tau = np.bincount(pc, weights=fit.tau2[pool] * tw, minlength=C) / N ** 2
        # tau^2 is estimated from the pool's k groups (df k - 2): Satterthwaite counts it with those df
        df_tau = np.where(fit.df1[pool] >= 1, fit.df1[pool], np.inf)
        var_sq = var_sq + np.bincount(pc, weights=(fit.tau2[pool] * tw) ** 2 / df_tau, minlength=C) / N ** 4
        judge_mean = np.bincount(pc, weights=F_cP, minlength=C) / N
        lam = np.bincount(pc, weights=fit.lam[pool] * N_cP, minlength=C) / N
    A = np.zeros((C, NP, 2))
    touches = np.zeros((C, NP), dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        A[pc, pool] = a / N[pc][:, None]
    touches[pc, pool] = True
    return PooledCells(theta, design, var_sq, superpop, tau, N, A, touches, judge_mean, lam)


def combo_design_var(fit: PoolFit, A: np.ndarray) -> np.ndarray:
    """Design variance of linear combinations of pooled estimates, given their loadings A (K, NP, 2) on the
    pools' lines (e.g. A[c1] - A[c2] for a difference): sum over pools of A' Var(beta) A."""
    return np.einsum("kpi,pij,kpj->k", A, fit.M, A)


def cross_cov(fit: PoolFit, A: np.ndarray, pairs_c: np.ndarray, pairs_b: np.ndarray, b_of_piece: np.ndarray,
              lam_b: np.ndarray, N_b: np.ndarray, mom: dict, s_of: np.ndarray, N_s: np.ndarray,
              n_s: np.ndarray) -> np.ndarray:
    """Design covariance of pooled estimates (cells pairs_c, loadings A) with per-group estimates of sets b
    (pieces b_of_piece == b, lam_b, N_b): per stratum n_s (1 - f_s) times the sample covariance of the two
    linear statistics' item contributions, g' x_q (h - lam_P f) and W_s (h - lam_b f) / N_b."""
    K = len(pairs_c)
    if not K:
        return np.zeros(0)
    S = len(N_s)
    pp = fit.pool_of_p
    use = fit.fitted_p & (b_of_piece >= 0)
    pieces = np.flatnonzero(use)
    pieces = pieces[np.argsort(b_of_piece[pieces], kind="stable")]
    B = len(N_b)
    counts = np.bincount(b_of_piece[pieces], minlength=B)
    starts = np.cumsum(counts) - counts
    idx, owner = index_ranges(starts[pairs_b], counts[pairs_b])
    q = pieces[idx]
    c, b = pairs_c[owner], pairs_b[owner]
    P_q = pp[q]
    g = np.einsum("rij,rj->ri", fit.G[P_q], A[c, P_q])
    lp, lb = fit.lam[P_q], lam_b[b]
    X = mom["sh"][q] - (lp + lb) * mom["shf"][q] + lp * lb * mom["sff"][q]
    term = np.einsum("ri,ri->r", g, fit.x[q]) * X
    zb = mom["sh"][q] - lb * mom["sf"][q]
    s = s_of[q]
    key = owner.astype("int64") * S + s
    uk, inv = np.unique(key, return_inverse=True)
    Y = np.bincount(inv, weights=term, minlength=len(uk))
    Zb = np.bincount(inv, weights=zb, minlength=len(uk))
    k_of, s_u = uk // S, uk % S
    # sum over the stratum's labels of g' x z (all pieces of the stratum, no pseudo items)
    lps = fit.lam[pp]
    Sz = mom["sh"] - lps * mom["sf"]
    fw = fit.fitted_p.astype(float)
    T1 = np.stack([np.bincount(s_of, weights=fw * fit.x[:, i] * Sz, minlength=S) for i in (0, 1)], axis=1)
    g_s = np.einsum("rij,rj->ri", fit.G[fit.pool_of_s[s_u]], A[pairs_c[k_of], fit.pool_of_s[s_u]])
    sum_c = np.einsum("ri,ri->r", g_s, T1[s_u])
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = (1 - n_s[s_u] / N_s[s_u]) * N_s[s_u] / ((n_s[s_u] - 1) * N_b[pairs_b[k_of]])
        contrib = factor * (Y - sum_c * Zb / n_s[s_u])
    contrib = np.where(np.isfinite(contrib), contrib, 0.0)
    return np.bincount(k_of, weights=contrib, minlength=K)


# -- the simulation behind the rule (module docstring) --------------------------------------------------------
STUDY_JUDGES = {"moderate": (0.15, 0.10), "weak": (0.165, 0.376)}  # (false compliance, false refusal)
STUDY_RULES = {"group": {"rectifier": "group"}, "pooled": {"rectifier": "pooled"},
               "auto F.2": {"gate_alpha": 0.2}, "auto F.05": {"gate_alpha": 0.05}}


def _study_draw(rng: np.random.Generator, size: np.ndarray, dr: np.ndarray, fc: np.ndarray, fr: float,
                fraction: float) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """One synthetic model x language: population counts per group, a stratified SRS of labels, the truth."""
    G = len(size)
    g = np.repeat(np.arange(G), size)
    h = rng.random(len(g)) < dr[g]
    u = rng.random(len(g))
    f = np.where(h, u >= fc[g], u < fr)
    take = np.maximum(2, np.round(fraction * size)).astype(int)
    order = np.lexsort((rng.random(len(g)), g))
    rank = np.empty(len(g), dtype=int)
    rank[order] = np.arange(len(g)) - np.repeat(np.cumsum(size) - size, size)
    chosen = rank < take[g]
    names = np.array([f"g{i:02d}" for i in range(G)])
    base = {"run_id": "r", "model": "m", "language": "en", "kind": "attack"}
    refused = np.bincount(g, weights=f, minlength=G)
    population = pd.DataFrame({**base, "group": names, "n": size, "refused": refused, "complied": size - refused,
                               "unparsed": 0})
    sample = pd.DataFrame({**base, "group": names[g[chosen]],
                           "judge_label": np.where(f[chosen], "refused", "complied"),
                           "human_label": np.where(h[chosen], "refused", "complied")})
    return population, sample, np.bincount(g, weights=h, minlength=G) / size


def _coverage_study(reps: int = 200, seed: int = 0, groups: int = 13, size: int = 300,
                    rules: dict | None = None, judges: dict | None = None, spreads=(0.0, 0.4),
                    differences=(0.0, 0.02, 0.05, 0.10), fractions=(0.1, 0.2), patterns=("spread", "one")
                    ) -> pd.DataFrame:
    """Coverage of each group's human DR by the rules' 95% intervals (module docstring): per scenario and rule,
    the worst group's and the mean coverage over `reps` fresh populations and samples, and the mean width
    relative to the per-group rectifier's. `patterns`: "spread" varies the false-compliance rate linearly
    over the groups by X points (in a fixed shuffled order, unrelated to the DR order); "one" moves one group
    (the median-DR one) X points above the others (run where the DRs spread and X >= 0.05)."""
    from core.ppi.rates import CorrectedRates  # here to avoid an import cycle

    rules = STUDY_RULES if rules is None else rules
    judges = STUDY_JUDGES if judges is None else judges
    order = np.random.default_rng(42).permutation(groups)
    shuffled = np.random.default_rng(43).permutation(groups)
    sizes = np.full(groups, size)
    rows = []
    for judge, (fc0, fr) in judges.items():
        for spread in spreads:
            dr = 0.7 + spread * (order / max(groups - 1, 1) - 0.5)
            for pattern in patterns:
                for X in differences:
                    if pattern == "one" and (X < 0.05 or spread == 0):
                        continue
                    if pattern == "spread":
                        fc = fc0 + X * (shuffled / max(groups - 1, 1) - 0.5)
                    else:
                        fc = np.full(groups, fc0)
                        fc[np.argsort(dr)[groups // 2]] += X
                    for fraction in fractions:
                        rng = np.random.default_rng([seed, int(X * 100), int(fraction * 100), int(spread * 10)])
                        hits = {name: np.zeros(groups) for name in rules}
                        widths = {name: 0.0 for name in rules}
                        for _ in range(reps):
                            population, sample, truth = _study_draw(rng, sizes, dr, fc, fr, fraction)
                            for name, options in rules.items():
                                table = CorrectedRates(population, sample, ["model", "group"], **options).table
                                hits[name] += ((table["ci_low"] <= truth + 1e-12)
                                               & (truth <= table["ci_high"] + 1e-12)).to_numpy()
                                widths[name] += float((table["ci_high"] - table["ci_low"]).mean()) / reps
                        base = widths.get("group", 1.0)
                        for name in rules:
                            cover = hits[name] / reps
                            rows.append({"judge": judge, "spread": spread, "pattern": pattern, "X": X,
                                         "sample": fraction, "rule": name, "worst": cover.min(),
                                         "mean": cover.mean(), "width": widths[name] / base})
    return pd.DataFrame(rows)
