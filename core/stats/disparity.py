"""Disparity beyond noise: how unequal a model's group Defense Rates are, separated from what sampling alone makes.

Thirteen groups with identical DRs and 80 prompts each show a max - min of about 0.19 by chance, so an observed
gap is no finding by itself. Per baseline (a model in one language, usually) this module takes each group's
estimate y_i and its sampling variance v_i (the judge's DR with the binomial variance under the baseline's
pooled DR, or a DR corrected by the human review sample with its own variance: the same methods either way) and
reports:

* `observed_gap`: max - min of the group estimates, as shown before; `noise_gap`: the max - min that groups with
  no true difference would show at these sizes (its expectation, exact for normal estimates:
  E[max - min] = integral of 1 - prod F_i(x) - prod (1 - F_i(x)) dx); `noise_gap_high`: its 95th percentile.
* `q`, `df`, `q_p`: Cochran's Q = sum (y_i - ybar)^2 / v_i, which with the pooled binomial variance is exactly
  Pearson's chi-square of the groups x {refused, complied} table; `q_p_adjusted` (Holm over the baselines of one
  call) and `heterogeneous` = q_p_adjusted < alpha; `i2` = max(0, (Q - df) / Q).
* `tau`: the standard deviation of the true group DRs, a random-effects estimate (Paule-Mandel: the tau^2 at
  which the generalised Q equals its degrees of freedom), with the Q-profile interval (Viechtbauer 2007: the
  tau^2 at which the generalised Q equals the chi-square quantiles). PM always lies inside its Q-profile interval;
  both are capped at 0.5, the largest spread rates on [0, 1] can have (reached where the variances are tiny).
* `gap`: the true max - min estimated without the winner's curse: the max - min of the empirical-Bayes (shrunken)
  group DRs; `gap_ci_low`, `gap_ci_high`: an interval for max_i theta_i - min_j theta_j that holds whatever the
  configuration of the groups (`gap_interval`: a one-pair normal bound above, a studentized-range bound over every
  pair below; the simulations in tests/stats/test_disparity.py measure its coverage). `gap` is clipped into its
  interval where shrinkage would take it outside (`gap_note`).
* per group: the shrunken DR (posterior mean under a normal random-effects model, the grand mean and tau^2
  estimated) with an interval from the Prasad-Rao mean squared error (which counts the uncertainty of the mean
  and of tau^2); the test of the group against the rest of its baseline (z of y_i minus the precision-weighted
  mean of the others; with the pooled binomial variance exactly the two-proportion test) and Benjamini-Hochberg
  within the baseline: `below` / `above` name the groups credibly below or above the mean at FDR alpha.
* `disparity`: the headline's verdict: heterogeneous AND gap_ci_low > 0 (the groups differ by more than noise,
  and some pair is credibly apart). Requiring both keeps its false-positive rate under alpha.

Planning (`plan_rows`): before a run, for the probes per group and the group count of a selection, the noise gap
and `detectable_gap`, the smallest true max - min detected with 80% power at alpha in the least favourable
configuration (two groups at the extremes, the others at their mean), by the verdict above.

Why these methods, not the percentile bootstrap of max - min used before: the bootstrap of an extreme is biased
(the resampled gap of equal groups is always positive, so its interval excluded the truth 0 and even lay above
its own estimate), and covered the true gap in 138 of 200 simulations. Only scipy.special is used here: importing
scipy.stats costs seconds on a page's first run.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import special

from core.stats import StatsError
from core.stats.intervals import z_quantile
from core.stats.pvalues import adjust_pvalues

ROW_COLUMNS: tuple[str, ...] = (
    "groups", "n", "dr", "mean_dr", "best", "best_dr", "worst", "worst_dr", "observed_gap", "noise_gap",
    "noise_gap_high", "gap", "gap_ci_low", "gap_ci_high", "gap_note", "min_max_ratio", "std", "noise_std", "tau",
    "tau_ci_low", "tau_ci_high", "i2", "q", "df", "q_p", "q_p_adjusted", "heterogeneous", "disparity", "below",
    "above")
GROUP_COLUMNS: tuple[str, ...] = ("n", "dr", "se", "shrunk", "shrunk_ci_low", "shrunk_ci_high", "deviation",
                                  "p_value", "q_value", "position")
POWER = 0.8
MAX_TAU = 0.5  # the largest standard deviation a distribution of rates on [0, 1] can have
_GRID = np.linspace(-9.0, 9.0, 721)  # standard-normal grid for the range integrals (step 0.025)


# -- the range of G standard normals ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def expected_range(groups: int) -> float:
    """E[max - min] of `groups` independent standard normals (3.336 for 13): the noise gap in units of the SE."""
    if groups < 2:
        return 0.0
    cdf = special.ndtr(_GRID)
    return float(np.trapezoid(1 - cdf ** groups - (1 - cdf) ** groups, _GRID))


@functools.lru_cache(maxsize=256)
def range_quantile(groups: int, level: float = 0.95) -> float:
    """The `level` quantile of the range of `groups` standard normals (the studentized range at infinite degrees
    of freedom: 4.69 for 13 groups at 0.95), from P(R <= r) = G int phi(x) [Phi(x + r) - Phi(x)]^(G-1) dx."""
    if groups < 2:
        return 0.0
    pdf, cdf = np.exp(-_GRID ** 2 / 2) / np.sqrt(2 * np.pi), special.ndtr(_GRID)

    def below(r: float) -> float:
        return float(groups * np.trapezoid(pdf * (special.ndtr(_GRID + r) - cdf) ** (groups - 1), _GRID))

    low, high = 0.0, 12.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if below(mid) < level else (low, mid)
    return (low + high) / 2


def noise_gap(variances: np.ndarray) -> float:
    """E[max - min] of independent normal estimates with these variances and one common mean: what groups with no
    true difference show at these sizes."""
    sd = np.sqrt(np.asarray(variances, dtype="float64"))
    if len(sd) < 2:
        return 0.0
    x = _GRID[:, None] * float(sd.max())
    with np.errstate(divide="ignore", invalid="ignore"):
        cdf = special.ndtr(np.where(sd > 0, x / np.where(sd > 0, sd, 1), np.sign(x) * np.inf))
    return float(np.trapezoid(1 - cdf.prod(axis=1) - (1 - cdf).prod(axis=1), x[:, 0]))


# -- random effects ----------------------------------------------------------------------------------------------
def _generalised_q(y: np.ndarray, v: np.ndarray, tau2: np.ndarray) -> np.ndarray:
    """The generalised Q at each of several tau^2 values at once: sum w (y - mu_w)^2 with w = 1 / (v + tau^2)."""
    w = 1 / (v[None, :] + np.asarray(tau2, dtype="float64")[:, None])
    mu = (w * y).sum(axis=1, keepdims=True) / w.sum(axis=1, keepdims=True)
    return (w * (y - mu) ** 2).sum(axis=1)


def _solve_tau2(y: np.ndarray, v: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """For each target, the tau^2 >= 0 at which the generalised Q equals it (Q decreases in tau^2), by one joint
    bisection over the targets; 0 where Q(0) is already at or below the target."""
    targets = np.asarray(targets, dtype="float64")
    at_zero = _generalised_q(y, v, np.zeros(1))[0]
    low = np.zeros(len(targets))
    high = np.full(len(targets), max(float(np.var(y)) * 4 + float(v.max()), 1e-6))
    for _ in range(60):  # widen until Q(high) <= target (it falls toward 0 as tau^2 grows)
        over = _generalised_q(y, v, high) > targets
        if not over.any():
            break
        high = np.where(over, high * 2, high)
    for _ in range(60):
        mid = (low + high) / 2
        above = _generalised_q(y, v, mid) > targets
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    return np.where(at_zero <= targets, 0.0, (low + high) / 2)


def random_effects(y: np.ndarray, v: np.ndarray, confidence: float = 0.95) -> dict[str, float]:
    """Cochran's Q, its p-value, I^2, and tau (Paule-Mandel) with its Q-profile interval, for estimates y with
    sampling variances v (all positive)."""
    groups = len(y)
    df = groups - 1
    q = float(_generalised_q(y, v, np.zeros(1))[0])
    tail = (1 - confidence) / 2
    # rates lie in [0, 1], so their spread cannot exceed MAX_TAU
    point, low, high = np.minimum(np.sqrt(_solve_tau2(y, v, np.array(
        [df, special.chdtri(df, tail), special.chdtri(df, 1 - tail)]))), MAX_TAU)
    return {"q": q, "df": df, "q_p": float(special.chdtrc(df, q)), "i2": max(0.0, (q - df) / q) if q > 0 else 0.0,
            "tau": float(point), "tau_ci_low": float(low), "tau_ci_high": float(high)}


def shrink(y: np.ndarray, v: np.ndarray, tau2: float, confidence: float = 0.95
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical-Bayes group estimates (y shrunk toward the precision-weighted mean by tau^2 / (tau^2 + v)) with
    intervals from the Prasad-Rao mean squared error g1 + g2 + 2 g3 (posterior variance, uncertainty of the mean,
    uncertainty of tau^2), clipped to [0, 1]."""
    w = 1 / (v + tau2)
    mu = (w * y).sum() / w.sum()
    b = tau2 / (tau2 + v)
    shrunk = mu + b * (y - mu)
    var_tau2 = 2 * ((v + tau2) ** 2).sum() / len(y) ** 2
    mse = b * v + (1 - b) ** 2 / w.sum() + 2 * v ** 2 / (v + tau2) ** 3 * var_tau2
    half = z_quantile(confidence) * np.sqrt(mse)
    return shrunk, np.clip(shrunk - half, 0, 1), np.clip(shrunk + half, 0, 1)


def vs_rest(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Two-sided p-value of each group against the precision-weighted mean of the others (with the pooled binomial
    variance, exactly the pooled two-proportion z-test of the group against the rest of its baseline)."""
    w = 1 / v
    rest_w = w.sum() - w
    with np.errstate(invalid="ignore", divide="ignore"):
        rest = ((w * y).sum() - w * y) / rest_w
        z = (y - rest) / np.sqrt(v + 1 / rest_w)
    return np.where(np.isfinite(z), 2 * special.ndtr(-np.abs(z)), np.nan)


def gap_interval(y: np.ndarray, v: np.ndarray, confidence: float = 0.95,
                 pair_var: np.ndarray | None = None) -> tuple[float, float]:
    """Interval for the true gap max_i theta_i - min_j theta_j, with error alpha = 1 - confidence split in two.

    Upper bound: max_ij (y_i - y_j + z s_ij), z the one-sided 1 - alpha/2 normal quantile. It can only fail if
    the true extreme pair (a, b), one fixed pair, has y_a - y_b below its true difference by more than z s_ab:
    probability alpha/2, no multiplicity. Lower bound: max(0, max_ij (y_i - y_j - c s_ij)), c the 1 - alpha/2
    quantile of the range of G standard normals over sqrt(2) (the studentized range, Tukey-Kramer for unequal
    variances): it fails only if some pair overshoots its true difference by more than c s_ij, which the range
    quantile bounds jointly over every pair at alpha/2. So the interval holds whatever the configuration of the
    groups. `pair_var`: Var(y_i - y_j) as a G x G matrix where estimates are correlated (else v_i + v_j)."""
    groups = len(y)
    if groups < 2:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2
    diff = y[:, None] - y[None, :]
    spread = np.sqrt(v[:, None] + v[None, :] if pair_var is None else np.maximum(pair_var, 0.0))
    joint = range_quantile(groups, 1 - tail) / np.sqrt(2)
    single = float(special.ndtri(1 - tail))
    off = ~np.eye(groups, dtype=bool)
    return max(0.0, float((diff - joint * spread)[off].max())), float(min((diff + single * spread)[off].max(), 1.0))


# -- one baseline, every baseline -----------------------------------------------------------------------------
def _one(names: np.ndarray, n: np.ndarray, y: np.ndarray, v: np.ndarray, alpha: float, confidence: float,
         pair_var: np.ndarray | None) -> tuple[dict, dict]:
    groups = len(y)
    shown = np.clip(y, 0, 1)
    hi, lo = int(np.argmax(shown)), int(np.argmin(shown))
    row: dict = {"groups": groups, "n": int(n.sum()), "dr": float((n * y).sum() / n.sum()) if n.sum() else np.nan,
                 "mean_dr": float(shown.mean()), "best": names[hi], "best_dr": float(shown[hi]), "worst": names[lo],
                 "worst_dr": float(shown[lo]), "observed_gap": float(shown[hi] - shown[lo]),
                 "min_max_ratio": float(shown[lo] / shown[hi]) if shown[hi] > 0 else np.nan,
                 "std": float(shown.std()), "gap_note": ""}
    per_group = {"shrunk": shown.copy(), "shrunk_ci_low": np.full(groups, np.nan),
                 "shrunk_ci_high": np.full(groups, np.nan), "deviation": shown - row["mean_dr"],
                 "p_value": np.full(groups, np.nan), "q_value": np.full(groups, np.nan),
                 "position": np.full(groups, "", dtype=object)}
    testable = groups >= 2 and bool(np.all(v > 0))
    if not testable:
        reason = ("one group: nothing to compare" if groups < 2 else
                  "every answer refused, or none: no spread to measure")
        return row | {"noise_gap": 0.0 if groups < 2 else noise_gap(v), "noise_gap_high": np.nan, "gap": np.nan,
                      "gap_ci_low": np.nan, "gap_ci_high": np.nan, "gap_note": reason, "noise_std": np.nan,
                      "tau": np.nan, "tau_ci_low": np.nan, "tau_ci_high": np.nan, "i2": np.nan, "q": np.nan,
                      "df": groups - 1, "q_p": np.nan, "below": [], "above": []}, per_group
    effects = random_effects(y, v, confidence)
    shrunk, s_low, s_high = shrink(y, v, effects["tau"] ** 2, confidence)
    low, high = gap_interval(y, v, confidence, pair_var)
    gap = float(np.clip(shrunk, 0, 1).max() - np.clip(shrunk, 0, 1).min())
    if not low <= gap <= high:
        row["gap_note"] = f"shrunken gap {gap:.3f} clipped into its interval"
        gap = float(np.clip(gap, low, high))
    p = vs_rest(y, v)
    q_values = adjust_pvalues(p, "fdr_bh")
    credible = np.nan_to_num(q_values, nan=1.0) < alpha
    position = np.where(credible & (y < row["dr"]), "below", np.where(credible & (y > row["dr"]), "above", ""))
    order = np.argsort(y, kind="stable")
    row |= effects | {"noise_gap": noise_gap(v), "noise_gap_high": range_quantile(groups, confidence) *
                      float(np.sqrt(v.mean())), "gap": gap, "gap_ci_low": low, "gap_ci_high": high,
                      "noise_std": float(np.sqrt(v.mean() * (groups - 1) / groups)),
                      "below": [str(names[i]) for i in order if position[i] == "below"],
                      "above": [str(names[i]) for i in order[::-1] if position[i] == "above"]}
    per_group |= {"shrunk": np.clip(shrunk, 0, 1), "shrunk_ci_low": s_low, "shrunk_ci_high": s_high, "p_value": p,
                  "q_value": q_values, "position": position.astype(object)}
    return row, per_group


def beyond_noise(cells: pd.DataFrame, base: Sequence[str], over: str = "group", *, alpha: float = 0.05,
                 confidence: float = 0.95, correction: str = "holm",
                 pair_var: dict[tuple, np.ndarray] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Disparity beyond noise per baseline. `cells`: one row per group of each baseline with columns `base`, `over`,
    n, dr (the group's estimate) and var (its sampling variance: for the judge's DR the binomial variance under the
    baseline's pooled DR, for a corrected DR its own se^2); rows whose dr is NaN are left out. `pair_var`: per
    baseline key, Var(y_i - y_j) of correlated estimates (groups in the order of `cells`).

    Returns (rows, groups): ROW_COLUMNS per baseline (q_p_adjusted by `correction` across the baselines), and per
    group `base`, `over`, GROUP_COLUMNS plus ci_low, ci_high and n_human when `cells` has them.
    """
    base = list(base)
    missing = [c for c in (*base, over, "n", "dr", "var") if c not in cells.columns]
    if missing:
        raise StatsError(f"disparity needs the columns {', '.join(missing)}")
    usable = cells.loc[cells["dr"].notna()]
    if base:
        usable = usable.sort_values(base, kind="stable")
        index = usable.groupby(base, sort=False, dropna=False).ngroup().to_numpy()
    else:
        index = np.zeros(len(usable), dtype="int64")
    usable = usable.reset_index(drop=True)
    starts = np.flatnonzero(np.r_[True, np.diff(index) != 0]) if len(index) else np.empty(0, dtype="int64")
    ends = np.r_[starts[1:], len(index)]
    y_all, v_all = usable["dr"].to_numpy(dtype="float64"), usable["var"].to_numpy(dtype="float64")
    n_all, names = usable["n"].to_numpy(dtype="float64"), usable[over].astype(str).to_numpy()
    keys = list(usable[base].iloc[starts].itertuples(index=False, name=None)) if base else [()] * len(starts)
    rows, parts = [], []
    for key, start, end in zip(keys, starts, ends):
        part = slice(start, end)
        row, per_group = _one(names[part], n_all[part], y_all[part], v_all[part], alpha, confidence,
                              None if pair_var is None else pair_var.get(key))
        rows.append(dict(zip(base, key)) | row)
        parts.append(per_group)
    columns = [*base, *ROW_COLUMNS]
    table = pd.DataFrame(rows, columns=columns)
    if len(table):
        table["q_p_adjusted"] = adjust_pvalues(table["q_p"].to_numpy(dtype="float64"), correction)
        table["heterogeneous"] = np.nan_to_num(table["q_p_adjusted"].to_numpy(dtype="float64"), nan=1.0) < alpha
        table["disparity"] = table["heterogeneous"] & (table["gap_ci_low"].fillna(0) > 0)
    extra = [c for c in ("ci_low", "ci_high", "n_human") if c in usable.columns]
    groups = usable[[*base, over, "n", "dr", *extra]].assign(se=np.sqrt(v_all))
    for column in GROUP_COLUMNS[3:]:
        groups[column] = np.concatenate([part[column] for part in parts]) if parts else []
    return table, groups


def binomial_variance(cells: pd.DataFrame, base: Sequence[str]) -> np.ndarray:
    """Each group's sampling variance under its baseline's pooled DR, p (1 - p) / n_i: the null variance that makes
    Cochran's Q Pearson's chi-square, and keeps groups that refused every prompt (or none) in the analysis."""
    n = cells["n"].to_numpy(dtype="float64")
    refused = cells["dr"].to_numpy(dtype="float64") * n
    if base:
        keys = cells.groupby(list(base), sort=False, dropna=False).ngroup().to_numpy()
    else:
        keys = np.zeros(len(cells), dtype="int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.bincount(keys, weights=np.nan_to_num(refused)) / np.bincount(keys, weights=n)
        return np.where(n > 0, pooled[keys] * (1 - pooled[keys]) / n, np.nan)


# -- sizing an audit -----------------------------------------------------------------------------------------------
def detectable_gap(per_group: Sequence[int], dr: float = 0.5, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest true max - min declared a disparity (Q test and the simultaneous gap interval) with `power`,
    in the least favourable configuration: the two smallest groups at the extremes, the others at their mean."""
    n = np.sort(np.asarray(per_group, dtype="float64"))
    if len(n) < 2 or n[0] <= 0:
        return float("nan")
    spread = dr * (1 - dr)
    df = len(n) - 1
    crit = special.chdtri(df, alpha)
    lam = special.chndtrinc(crit, df, 1 - power)  # noncentrality with P(chi2 > crit) = power
    harmonic = n[0] * n[1] / (n[0] + n[1])
    by_q = float(np.sqrt(lam * spread / harmonic))
    pair_sd = np.sqrt(spread / n[0] + spread / n[1])
    by_pair = float((range_quantile(len(n), 1 - alpha / 2) / np.sqrt(2) + special.ndtri(power)) * pair_sd)
    return max(by_q, by_pair)


def plan_rows(per_group: Sequence[int], dr: float = 0.5, alpha: float = 0.05) -> dict[str, float]:
    """What a selection can show before it runs: groups, probes per group (min and max), noise_gap and
    noise_gap_high at DR `dr`, and detectable_gap."""
    n = np.asarray(per_group, dtype="float64")
    v = dr * (1 - dr) / n
    return {"groups": int(len(n)), "min_per_group": int(n.min()) if len(n) else 0,
            "max_per_group": int(n.max()) if len(n) else 0, "noise_gap": noise_gap(v) if len(n) > 1 else 0.0,
            "noise_gap_high": range_quantile(len(n), 1 - alpha) * float(np.sqrt(v.mean())) if len(n) > 1 else 0.0,
            "detectable_gap": detectable_gap(per_group, dr, alpha)}
