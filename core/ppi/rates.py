"""Prediction-powered Defense Rates (CorrectedRates): the judge's verdicts on every completion, corrected
by a human sample.

Why: a judge's DR is biased by its errors, and the errors can differ by group (a judge that misses refusals
more often for one group manufactures a disparity). People label a stratified random sample; every DR is
then estimated as (Angelopoulos et al., Science 2023, "prediction-powered inference"; the power-tuned PPI++
of Angelopoulos, Duchi and Zrnic 2023)

    theta_hat(c) = (1/N_c) [ lam * sum_{i in c} f_i  +  sum_s (N_s/n_s) sum_{i in S_s, i in c} (h_i - lam f_i) ]

with f the judge's verdict (1 refused, 0 complied, 0.5 unparsed or no verdict: PPI is valid for any fixed
predictor, 0.5 counts neither way and the rectifier corrects it), h the human label, strata s =
STRATA (run x model x language x group x kind) from which S_s, n_s of the N_s non-error completions, is a
simple random sample without replacement. The second term is the Horvitz-Thompson estimate of the
cell's total of h - lam f (the "rectifier"), so the estimate is unbiased whatever the judge, whatever the
sampling fractions of the strata, and for cells that are unions of strata (by model) or domains inside
them (by strategy, scenario_category). lam = 1 is plain PPI; `power_tuning=True` picks per cell the lam in
[0, 1] that minimises the variance below (lam = 0 is the human sample alone, the regression estimator of
survey sampling in between).

Estimand and variance. The estimand is the model's human DR on prompts like these (a superpopulation,
as the judge-only bootstrap of core.stats.rates resamples prompts), so

    Var = theta (1 - theta) / N_c  +  (1/N_c^2) sum_s N_s^2 (1 - n_s/N_s) s2_s(z) / n_s,

z_i = (h_i - lam f_i) 1[i in c] over ALL sample items of stratum s (zeros outside the cell), s2 the sample
variance. The first term is the finite population's own spread around the superpopulation; for the finite
population's DR (the truth of the simulation tests) it makes the interval slightly conservative. Every
term is a function of per-(stratum, cell) sums of h, f, h f, f^2 and of n_s, so everything is vectorised
numpy over those "pieces": no Python loop per cell. Deviations from a baseline, the gap between two
groups and the homogeneity test use the same per-stratum sums for the exact variance of the linear
contrast (cells that share a stratum, e.g. strategies inside one group, are not independent).
Interval: theta_hat +/- q se, clipped to [0, 1], q Student's t at Satterthwaite's degrees of freedom and
the variance with the small-sample adjustment (both in core/ppi/intervals.py: what they are and why; `dr`
is clipped too; contrasts use the unclipped value; the gap's interval and the homogeneity test are normal /
chi-square). Below `min_human` (10) labels a cell reports NaN with a note.

On real data (tests/ppi/test_rates.py, the `refusal` judge, 200 seeded stratified samples): on the 6,160 GPTFuzz
responses in 12 cells (2 pseudo-models x 6 response-length groups, judge accuracy 54-100% by group) the
corrected intervals covered the human DR in 93.5-100% of samples per cell (mean 97.6%) at 10% and
94-100% (97.8%) at 20%, widths 0.22 and 0.15; the judge-only intervals covered 4 of 12 cells (width
0.05, mean |bias| 0.068). The hardest cell (DR 0.41, the judge wrong on 46%) covers 94.6% over 1,200
samples: nominal, so a per-cell 93%-of-200 criterion fails for such a cell now and then by chance.

Which rectifier (`rectifier`, the table's `rectifier_scope` and `note` say per cell). The per-group rectifier
above ("group": each cell corrected by its own labels) is unbiased whatever the judge but costs labels in
every cell: at a 10% sample a cell of 90 answers has 9 labels and no estimate. "pooled" measures the judge's
error on its model x language's whole sample and applies it to each group, as a line of the human DR on the
judge's DR fitted over the groups (core/ppi/pooled.py: why a line, its exact variance, the covariance it
creates between the groups of one model x language, `covariance()`); every cell then gets an estimate
however few labels of its own, as long as its model x language has min_human. "auto" (the default) pools
where the cells split model x language pools into at least 8 labelled groups whose errors the lack-of-fit
test does not find different (GATE_ALPHA), and pools a cell too small for its own correction whatever the
test says, with the spread between groups in its interval. On GPTFuzz in 13 hashed groups at a 10% sample
the default's intervals are 0.59 as wide as the per-group ones (0.36 in 68 groups of ~90 answers, where the
per-group rectifier estimates a third of the cells) at a mean coverage of 0.98 (tests/ppi/test_pooled.py).
What pooling cannot do (core/ppi/pooled.py's study): protect a single group whose judge errs ~10 points
differently from the rest when that group has ~30 labels; `rectifier="group"` stays exact there.

Strata sampled by the judge's uncertainty (a `sample` row with an `inclusion_prob` in (0, 1]; NaN or no column
is the stratified random sample above, computed exactly as before). Within such a stratum each completion was
drawn independently with its own pi_i (Poisson sampling, core/ppi/active.py), so the rectifier is the
Horvitz-Thompson sum over the cell's labelled items of (h_i - lam f_i)/pi_i, and its design variance the
unbiased sum of (1 - pi_i)/pi_i^2 (h_i - lam f_i)^2 (independent draws: no covariance between items, so a
contrast of cells, deviation, gap or covariance, is the same sum of b_i z_i^2 over the items with its per-item
coefficient z_i; two domains of one such stratum are uncorrelated). The per-piece sums of 1/pi h, 1/pi f, b h,
b h f, b f^2 (b = (1 - pi)/pi^2; h^2 = h) give all of it (core/ppi/moments.py). The small-sample adjustment adds
the cell's pseudo-disagreements weighted like a uniform sample of the stratum's size, (1 - n_s/N_s)/(n_s/N_s)^2,
as active sampling's original estimator did. Such a variance is a sum over items, not a sample variance with
n_s - 1 degrees of freedom: it counts as known in Satterthwaite's sum (a cell of Poisson strata only gets the
normal quantile; a cell mixing designs the t at the stratified strata's degrees of freedom against the whole
variance). Power tuning leaves lam = 1 in a cell with a Poisson stratum: tuned on the same sample by minimising
the estimated variance (lam = sum b h f / sum b f^2, with heavy 1/pi weights on few items) it went as low as
0.23, narrowed the intervals by 2% only and the worst cell's coverage fell to 0.92 (150 samples, the test's
population). A stratum mixing rows with and without inclusion_prob is an error (PPIError naming it).
The pooled line (core/ppi/pooled.py) is fitted on stratified random samples only: a model x language with a
Poisson stratum is not pooled under "auto" nor "pooled", its cells are corrected by their own labels (scope
"group") and say so in their note (POISSON_NOTE). Measured (tests/ppi/test_poisson.py: a calibrated judge,
p ~ Beta, h ~ Bernoulli(p), f = 1[p >= 0.5], accuracy ~85%, 2 models x 4 groups x 600 answers, pi from
`inclusion_probabilities` at an expected 10% per stratum, 300 seeded samples of one population, the truth its
human DR): coverage 0.99-1.00 per cell (mean 0.993), bias within +/- 0.003 (se 0.002); conservative for that
finite truth because of the superpopulation term (as above) and the pseudo-disagreements, which at ~60 labels
weigh like several of the observed, lightly weighted ones: without both (pseudo=0, design variance alone) the
coverage is 0.933-0.967 (mean 0.949), so the per-item variance itself is nominal. Mean width 0.84 of a
stratified random sample's of the same expected size (0.81-0.86 per cell; 0.85 on five populations); deviations
of a strategy from its group 0.99-1.00, pairwise group differences from covariance() 0.98-1.00, the disparity's
gap interval 1.00.

Power tuning estimates lam from the same sample (lam* = sum_s K_s cov_s(h, f) / sum_s K_s var_s(f), the
variances including the pseudo-observations), an O(1/n) effect the simulation tests check.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from core.ppi.inputs import COUNTS, MIN_STRATUM, STRATA, PPIError, check_one_design, inclusion_values, label_values
from core.ppi.intervals import PSEUDO
from core.ppi.moments import ALL_MOMENTS, combine_codes, index_ranges, poisson_variance, sample_variance
from core.ppi.pooled import (CELL_ALPHA, GATE_ALPHA, MIN_GROUPS, POOL, SCOPES, PooledCells, PoolFit, combo_design_var,
                             cross_cov, fit_pools, language_name, pooled_cells)
from core.stats import CORRECTIONS, adjust_pvalues, z_quantile
from core.stats.rates import baseline_columns, check_grouping

POISSON_NOTE = ("sampled by judge uncertainty: per-group correction (the pooled line is fitted on stratified "
                "random samples only)")


@dataclass
class _Estimate:
    theta: np.ndarray  # unclipped estimate per cell
    var_design: np.ndarray
    lam: np.ndarray
    N: np.ndarray
    n_human: np.ndarray
    judge_mean: np.ndarray  # F_c / N_c
    var_sq: np.ndarray  # sum over strata of (design contribution)^2 / (n_s - 1): Satterthwaite's denominator


class CorrectedRates:
    """Prediction-powered DR per cell of `by`, with intervals, deviations, disparity (see the module docstring).

    `population`: one row per cell at a grain containing `by` and STRATA with n (non-error completions),
    refused, complied, unparsed (the judge's own verdicts; n minus their sum have none and count 0.5).
    `sample`: one row per human-labelled sample completion with the same dimensions, judge_label
    (refused/complied/unparsed/None) and human_label (refused/complied), and optionally inclusion_prob: the
    item's probability of having been labelled in a stratum drawn by the judge's uncertainty (NaN, or no
    column, in a stratified random sample; module docstring). `pseudo` is the small-sample
    adjustment (0 turns it off, for comparisons with textbook formulas). `rectifier`: "auto" (default),
    "pooled" or "group" (the module docstring; `gate_alpha` is auto's test level, `cell_alpha` > 0 adds a
    per-cell check, core/ppi/pooled.py).
    Attributes besides `table`: `pools()` (the pooled lines and their tests, per model x language) and
    `covariance(cells)` (the cells' estimates' covariance matrix, for contrasts such as the disparity).
    """

    def __init__(self, population: pd.DataFrame, sample: pd.DataFrame, by: Sequence[str], *,
                 power_tuning: bool = False, min_human: int = 10, confidence: float = 0.95,
                 pseudo: float = PSEUDO, rectifier: str = "auto", gate_alpha: float = GATE_ALPHA,
                 cell_alpha: float = CELL_ALPHA) -> None:
        by = list(by)
        check_grouping(by, PPIError)
        if pseudo < 0:
            raise PPIError("pseudo must be 0 or more")
        if rectifier not in SCOPES:
            raise PPIError(f"unknown rectifier {rectifier!r}; choose from {', '.join(SCOPES)}")
        self.by, self.power_tuning, self.min_human, self.confidence = by, power_tuning, int(min_human), confidence
        self.pseudo, self.rectifier, self.gate_alpha = float(pseudo), rectifier, float(gate_alpha)
        self.cell_alpha = float(cell_alpha)
        self._zq = z_quantile(confidence)
        dims = list(dict.fromkeys([*STRATA, *by]))
        missing = [c for c in (*dims, *COUNTS) if c not in population.columns]
        if missing:
            raise PPIError(f"population lacks the columns {', '.join(missing)}")
        missing = [c for c in (*dims, "judge_label", "human_label") if c not in sample.columns]
        if missing:
            raise PPIError(f"sample lacks the columns {', '.join(missing)}")

        # Integer codes per dimension (sorted, NaN a value of its own), combined into one key per row: the
        # pieces (stratum x cell pairs) are the distinct keys of the population, its grain holding both.
        pop_codes, uniques, radix = [], [], []
        for col in dims:
            code, values = pd.factorize(population[col], sort=True, use_na_sentinel=False)
            pop_codes.append(code.astype("int64"))
            uniques.append(pd.Index(values))
            radix.append(max(len(values), 1))
        pop_key = combine_codes(pop_codes, radix)
        keys, first, inverse = np.unique(pop_key, return_index=True, return_inverse=True)
        P = len(keys)
        piece_codes = [code[first] for code in pop_codes]
        sums = {c: np.bincount(inverse, weights=population[c].to_numpy(dtype="float64"), minlength=P) for c in COUNTS}
        n, refused, complied = sums["n"], sums["refused"], sums["complied"]
        if (refused + complied + sums["unparsed"] > n + 1e-9).any():
            raise PPIError("population: refused + complied + unparsed exceed n in some cell")
        strata_pos = [dims.index(c) for c in STRATA]
        strata_key = combine_codes([piece_codes[i] for i in strata_pos], [radix[i] for i in strata_pos])
        _, s_first, s_of = np.unique(strata_key, return_index=True, return_inverse=True)
        self._strata = pd.DataFrame({c: uniques[i].take(piece_codes[i][s_first]) for c, i in zip(STRATA, strata_pos)})
        if by:
            by_pos = [dims.index(c) for c in by]
            _, c_first, c_of = np.unique(combine_codes([piece_codes[i] for i in by_pos], [radix[i] for i in by_pos]),
                                         return_index=True, return_inverse=True)
            cells = pd.DataFrame({c: uniques[i].take(piece_codes[i][c_first]) for c, i in zip(by, by_pos)})
        else:
            c_of = np.zeros(P, dtype="int64")
            cells = pd.DataFrame(index=range(1 if P else 0))

        h, f = label_values(sample)
        sample_codes = [uniques[i].get_indexer(sample[col]) for i, col in enumerate(dims)]
        outside = np.zeros(len(sample), dtype=bool)
        for code in sample_codes:
            outside |= code < 0
        sample_key = combine_codes([np.maximum(code, 0) for code in sample_codes], radix)
        piece = np.minimum(np.searchsorted(keys, sample_key), max(P - 1, 0))
        outside |= (keys[piece] != sample_key) if P else True
        if outside.any():
            row = sample[dims].loc[outside].iloc[0].to_dict()
            raise PPIError(f"sample: a labelled completion lies outside the population ({row})")
        mom = {"m": np.bincount(piece, minlength=P).astype("float64"),
               "sh": np.bincount(piece, weights=h, minlength=P), "sf": np.bincount(piece, weights=f, minlength=P),
               "shf": np.bincount(piece, weights=h * f, minlength=P),
               "sff": np.bincount(piece, weights=f * f, minlength=P)}
        S = len(self._strata)
        # Poisson strata (drawn by the judge's uncertainty): each item's own inclusion probability
        pi = inclusion_values(sample)
        poisson_item = ~np.isnan(pi)
        item_s = s_of[piece] if P else np.zeros(0, dtype="int64")
        check_one_design(item_s, poisson_item, self._strata)
        with np.errstate(invalid="ignore", divide="ignore"):
            a = np.where(poisson_item, 1 / pi, 0.0)
            b = np.where(poisson_item, (1 - pi) / pi ** 2, 0.0)
        mom |= {"ah": np.bincount(piece, weights=a * h, minlength=P),
                "af": np.bincount(piece, weights=a * f, minlength=P),
                "bh": np.bincount(piece, weights=b * h, minlength=P),
                "bhf": np.bincount(piece, weights=b * h * f, minlength=P),
                "bff": np.bincount(piece, weights=b * f * f, minlength=P)}
        self._poisson_s = np.bincount(item_s, weights=poisson_item.astype(float), minlength=S) > 0
        self._poisson_p = self._poisson_s[s_of]
        N_s = np.bincount(s_of, weights=n, minlength=S)
        n_s = np.bincount(s_of, weights=mom["m"], minlength=S)
        if (n_s > N_s).any():
            raise PPIError("sample: a stratum has more labels than non-error completions")
        self._s_of, self._c_of, self._mom = s_of, c_of, mom
        self._N_p, self._F_p = n, refused + 0.5 * (n - refused - complied)
        self._N_s, self._n_s = N_s, n_s
        with np.errstate(invalid="ignore", divide="ignore"):
            self._K_s = np.where(n_s >= MIN_STRATUM, N_s ** 2 * (1 - n_s / N_s) / n_s, np.nan)
            self._W_s = np.where(n_s > 0, N_s / n_s, 0.0)
            # a Poisson stratum's pseudo items weigh like a uniform sample of its size: (1 - pi)/pi^2, pi = n_s/N_s
            self._bbar_s = np.where(self._poisson_s & (n_s > 0), N_s ** 2 * (1 - n_s / N_s) / n_s ** 2, 0.0)
        self._n_s_fit = np.where(self._poisson_s, 0.0, n_s)  # the pooled line reads stratified random samples only

        est = self._estimate(c_of, len(cells))
        self._cells, self._est = cells, est
        C = len(cells)
        # A stratified SRS needs 2 labels per stratum for its sample variance; a Poisson stratum's variance is a sum
        # over its items, so one label will do (one with none is not known to be Poisson and counts as missing).
        touched_bad = (n > 0) & (n_s[s_of] < np.where(self._poisson_s, 1, MIN_STRATUM)[s_of])
        bad_cell = np.bincount(c_of[touched_bad], minlength=C) > 0
        first_bad = np.full(C, -1)
        bad_rows = np.flatnonzero(touched_bad)
        first_bad[c_of[bad_rows[::-1]]] = s_of[bad_rows[::-1]]  # any one offending stratum per cell
        valid = (est.N > 0) & (est.n_human >= self.min_human) & ~bad_cell
        self._valid = valid
        notes = np.full(C, "", dtype=object)
        for i in np.flatnonzero(~valid):  # only the cells without an estimate get a sentence
            if est.N[i] == 0:
                notes[i] = "no non-error completion"
            elif est.n_human[i] < self.min_human:
                notes[i] = f"{int(est.n_human[i])} human labels, fewer than the {self.min_human} needed"
            else:
                stratum = self._strata.iloc[first_bad[i]].to_dict()
                notes[i] = (f"stratum {', '.join(f'{k}={v}' for k, v in stratum.items())} has "
                            f"{int(n_s[first_bad[i]])} human labels (needs "
                            f"{1 if self._poisson_s[first_bad[i]] else MIN_STRATUM})")
        total = est.var_design + self._superpop(est.theta, est.N)
        var_sq = est.var_sq
        theta_all, lam_all = est.theta, est.lam
        rectifier_all = est.theta - est.lam * est.judge_mean
        # -- the pooled rectifier (core/ppi/pooled.py): where the cells split model x language pools ----------
        self._F2_p = refused + 0.25 * (n - refused - complied)  # sum of f^2 per piece (0.5 for no verdict)
        self._fit: PoolFit | None = None
        self._pooled: PooledCells | None = None
        scope = np.full(C, "group", dtype=object)
        splits = any(column not in POOL for column in by)
        if splits and rectifier != "group" and C:
            fit = fit_pools(self._strata, s_of, n, self._F_p, mom, N_s, self._n_s_fit, self.pseudo)
            pooled = pooled_cells(fit, c_of, C, n, self._F_p, self._F2_p, s_of, self._n_s_fit)
            self._fit, self._pooled = fit, pooled
            # a pool with a stratum drawn by the judge's uncertainty is not pooled (its cells keep their own
            # correction): the line's variance is that of stratified random samples
            self._poisson_pool = np.bincount(fit.pool_of_s, weights=self._poisson_s.astype(float),
                                             minlength=len(fit.lam)) > 0
            usable = (fit.labels >= self.min_human) & ~self._poisson_pool
            accepted = usable & (fit.groups >= MIN_GROUPS) & (np.nan_to_num(fit.p_value, nan=0.0) >= self.gate_alpha)
            touched = pooled.touches
            any_touch = touched.any(axis=1)
            all_usable = ~(touched & ~usable[None, :]).any(axis=1)
            all_accepted = ~(touched & ~accepted[None, :]).any(axis=1)
            use_pooled = any_touch & (all_usable if rectifier == "pooled" else all_accepted)
            if rectifier == "auto":  # a cell too small for its own correction takes the pool's, heterogeneity and all
                testable = ~(touched & ~(fit.groups >= MIN_GROUPS)[None, :]).any(axis=1)
                use_pooled |= any_touch & all_usable & testable & ~valid
            self._own_check = np.full(C, np.nan)
            if rectifier == "auto" and self.cell_alpha > 0:
                # a cell whose own labels contradict the pooled line (|pooled - own| > z sd) keeps its own
                check = np.flatnonzero(use_pooled & valid)
                if len(check):
                    cov = cross_cov(fit, pooled.A, check, check, c_of, est.lam, est.N, mom, s_of, N_s,
                                    self._n_s_fit)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        var_d = np.maximum(pooled.design[check] + est.var_design[check] - 2 * cov, 1e-12)
                        z = np.abs(pooled.theta[check] - est.theta[check]) / np.sqrt(var_d)
                    self._own_check[check] = 2 * special.ndtr(-z)
                    use_pooled[check] = self._own_check[check] >= self.cell_alpha
            scope = np.where(use_pooled, "pooled", "group").astype(object)
            pooled_valid = use_pooled & (pooled.N > 0)
            valid = np.where(use_pooled, pooled_valid, valid)
            theta_all = np.where(use_pooled, pooled.theta, theta_all)
            total = np.where(use_pooled, pooled.total, total)
            var_sq = np.where(use_pooled, pooled.var_sq, var_sq)
            lam_all = np.where(use_pooled, pooled.lam, lam_all)
            # a pooled cell's rectifier: the whole correction of its judge DR (its lam only weights the fit)
            rectifier_all = np.where(use_pooled, pooled.theta - pooled.judge_mean, rectifier_all)
            own_notes = notes
            notes = self._pool_notes(notes, scope, valid, est.n_human, usable, accepted, rectifier)
            poisson_cell = (touched & self._poisson_pool[None, :]).any(axis=1)
            if poisson_cell.any():
                joined = np.where(own_notes == "", POISSON_NOTE, own_notes + "; " + POISSON_NOTE)
                notes = np.where(poisson_cell, joined, notes).astype(object)
        self._scope, self._valid = scope, valid
        se = np.sqrt(total)
        q = self._quantile(total, var_sq)
        theta = np.where(valid, theta_all, np.nan)
        se = np.where(valid, se, np.nan)
        cell_refused = np.bincount(c_of, weights=refused, minlength=C)
        cell_complied = np.bincount(c_of, weights=complied, minlength=C)
        with np.errstate(invalid="ignore", divide="ignore"):
            dr_judge = np.where(cell_refused + cell_complied > 0, cell_refused / (cell_refused + cell_complied), np.nan)
        self._theta, self._se = theta, se
        values = pd.DataFrame({
            "n": est.N.astype("int64"), "n_human": est.n_human.astype("int64"), "dr": np.clip(theta, 0, 1),
            "ci_low": np.clip(theta - q * se, 0, 1), "ci_high": np.clip(theta + q * se, 0, 1), "se": se,
            "dr_judge": dr_judge, "rectifier": np.where(valid, rectifier_all, np.nan),
            "lam": np.where(valid, lam_all, np.nan), "rectifier_scope": scope, "note": notes}, index=cells.index)
        self.table = pd.concat([cells, values], axis=1)

    def pools(self) -> pd.DataFrame:
        """Per model x language pool (run_id, model, language, kind): the labels and labelled groups its line
        is fitted on, lam, the line's slope of the human DR on the judge's, the lack-of-fit F test (F, df1, df2,
        p_value) and the heterogeneity tau2 added to pooled intervals; empty where no cell splits a pool."""
        if self._fit is None:
            return pd.DataFrame(columns=[*POOL, "labels", "groups", "lam", "slope", "F", "df1", "df2", "p_value",
                                         "tau2"])
        return self._fit.table()

    # -- which rectifier each cell got, in words --------------------------------------------------------------
    def _pool_notes(self, notes: np.ndarray, scope: np.ndarray, valid: np.ndarray, own: np.ndarray,
                    usable: np.ndarray, accepted: np.ndarray, rectifier: str) -> np.ndarray:
        """Plain-language notes for cells of a grouping that splits model x language pools."""
        fit, pooled = self._fit, self._pooled
        notes = notes.copy()
        pools = fit.pools
        labels = fit.labels.astype("int64")

        names = [f"{language_name(language)} on {model}" for language, model in zip(pools["language"], pools["model"])]
        runs = pools["run_id"].tolist()

        def where(P: int) -> str:
            return names[P]

        for c in range(len(scope)):
            touched = np.flatnonzero(pooled.touches[c])
            if not len(touched):
                continue
            small = [P for P in touched if not usable[P]]
            if scope[c] == "pooled":
                if not valid[c]:
                    continue
                if len(touched) == 1:
                    P = touched[0]
                    p = fit.p_value[P]
                    if p != p:
                        test = "; too few labelled groups to check that they err alike"
                    elif accepted[P]:
                        test = f"; the groups' errors do not differ detectably (p = {p:.2f})"
                    else:
                        test = (f"; the groups' errors differ (p = {p:.3f}) and this cell has too few checks of "
                                "its own, so its interval includes the spread between groups"
                                if rectifier == "auto" else
                                f"; the groups' errors may differ (p = {p:.3f}): the interval includes the "
                                "spread between groups")
                    notes[c] = (f"pooled: the judge's errors measured on all {labels[P]:,} human checks of "
                                f"{where(P)} ({f'{int(own[c])} in this cell' if own[c] else 'none in this cell'})"
                                f"{test}")
                else:
                    notes[c] = (f"pooled: the judge's errors measured per model and language on "
                                f"{int(labels[touched].sum()):,} human checks ({int(own[c])} in this cell)")
            elif small and (rectifier == "pooled" or not valid[c]):
                P = small[0]
                own_note = f"{notes[c]}; " if notes[c] else ""
                notes[c] = (f"{own_note}fewer than {self.min_human} human checks for {where(P)} ({labels[P]}); "
                            f"label more with python -m core review sample --run-id {runs[P]} --fraction 0.1")
            elif valid[c] and self._own_check[c] < self.cell_alpha:
                notes[c] = (f"per group: this cell's own {int(own[c])} human checks disagree with the correction "
                            f"pooled over its model and language (p = {self._own_check[c]:.3f}), so they alone "
                            "correct it")
            elif valid[c]:
                rejected = [P for P in touched if usable[P] and fit.groups[P] >= MIN_GROUPS and not accepted[P]]
                if rejected:
                    P = rejected[0]
                    notes[c] = (f"per group: the judge's errors differ between the groups of {where(P)} "
                                f"(p = {fit.p_value[P]:.3f}), so this cell is corrected by its own "
                                f"{int(own[c])} human checks")
        return notes

    # -- the estimator over any partition of the pieces ------------------------------------------------
    def _quantile(self, total: np.ndarray, var_sq: np.ndarray) -> np.ndarray:
        """Student t quantile at Satterthwaite's degrees of freedom, total^2 / sum_s v_s^2 / (n_s - 1)
        (the superpopulation term counts as known); the normal quantile where no variance is estimated."""
        with np.errstate(invalid="ignore", divide="ignore"):
            df = np.where(var_sq > 0, total ** 2 / var_sq, np.inf)
        df = np.where(np.isfinite(total), np.maximum(df, 1.0), np.inf)
        return np.where(np.isinf(df), self._zq, special.stdtrit(np.where(np.isinf(df), 1.0, df),
                                                               0.5 + self.confidence / 2))

    @staticmethod
    def _superpop(theta: np.ndarray, N: np.ndarray) -> np.ndarray:
        t = np.clip(theta, 0, 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(N > 0, t * (1 - t) / N, np.nan)

    def _pseudo_w(self, c_of: np.ndarray, n_c: np.ndarray) -> np.ndarray:
        """Pseudo weight per direction of each piece: the cell's `pseudo` spread in proportion to its labels."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n_c[c_of] > 0, self.pseudo * self._mom["m"] / n_c[c_of], 0.0)

    def _estimate(self, c_of: np.ndarray, C: int) -> _Estimate:
        mom, s_of = self._mom, self._s_of
        N = np.bincount(c_of, weights=self._N_p, minlength=C)
        F = np.bincount(c_of, weights=self._F_p, minlength=C)
        n_c = np.bincount(c_of, weights=mom["m"], minlength=C)
        w = self._pseudo_w(c_of, n_c)
        n_s, K = self._n_s[s_of], self._K_s[s_of]
        poisson, bbar = self._poisson_p, self._bbar_s[s_of]
        if self.power_tuning:
            cnt = n_s + 2 * w
            with np.errstate(invalid="ignore", divide="ignore"):
                a0, b0 = mom["sh"] + w, mom["sf"] + w
                cov = (mom["shf"] - a0 * b0 / cnt) / (cnt - 1)
                var = (mom["sff"] + w - b0 ** 2 / cnt) / (cnt - 1)
            keep = np.isfinite(K) & (self._N_p > 0)
            num = np.bincount(c_of, weights=np.where(keep, K * cov, 0.0), minlength=C)
            den = np.bincount(c_of, weights=np.where(keep, K * var, 0.0), minlength=C)
            with np.errstate(invalid="ignore", divide="ignore"):
                lam = np.where(den > 0, np.clip(num / den, 0.0, 1.0), 1.0)
            if poisson.any():  # lam = 1 where a cell has a Poisson stratum (the module docstring: measured)
                lam = np.where(np.bincount(c_of, weights=(poisson & (self._N_p > 0)).astype(float), minlength=C) > 0,
                               1.0, lam)
        else:
            lam = np.ones(C)
        lp = lam[c_of]
        # the rectifier: Horvitz-Thompson sums, N_s/n_s per item of a stratified sample, 1/pi_i of a Poisson one
        rect = np.bincount(c_of, weights=np.where(poisson, mom["ah"] - lp * mom["af"],
                                                  self._W_s[s_of] * (mom["sh"] - lp * mom["sf"])), minlength=C)
        s2 = sample_variance([(np.ones(len(s_of)), lp, mom, w)], n_s)
        design = K * s2
        if poisson.any():
            design = np.where(poisson, poisson_variance([(np.ones(len(s_of)), lp, mom, w)], bbar), design)
        contrib = np.where(self._N_p > 0, design, 0.0)
        contrib = np.where((self._N_p > 0) & ~np.isfinite(K) & ~poisson, np.nan, contrib)
        with np.errstate(invalid="ignore", divide="ignore"):
            theta = (lam * F + rect) / N
            var = np.bincount(c_of, weights=contrib, minlength=C) / N ** 2
            # Satterthwaite's denominator counts the stratified samples' variance estimates only: a Poisson
            # stratum's is a sum over items, counted as known (normal quantile where a cell has nothing else)
            var_sq = np.bincount(c_of, weights=np.where(poisson, 0.0, contrib ** 2 / (n_s - 1)), minlength=C) / N ** 4
            judge_mean = F / N
        return _Estimate(theta, var, lam, N, n_c, judge_mean, var_sq)

    # -- per-(stratum, set) moments for contrasts -------------------------------------------------------
    def _set_moments(self, c_of: np.ndarray, C: int) -> dict[str, np.ndarray]:
        """Moments of each (set, stratum) pair under the partition c_of of the pieces, sorted by set then
        stratum: keys, s, c, N, the moments, and per set the start and count of its rows."""
        S = len(self._N_s)
        key = c_of.astype("int64") * S + self._s_of
        uniq, inverse = np.unique(key, return_inverse=True)
        out = {name: np.bincount(inverse, weights=self._mom[name], minlength=len(uniq)) for name in ALL_MOMENTS}
        out |= {"key": uniq, "s": uniq % S, "c": uniq // S,
                "N": np.bincount(inverse, weights=self._N_p, minlength=len(uniq))}
        out["count"] = np.bincount(out["c"], minlength=C)
        out["start"] = np.cumsum(out["count"]) - out["count"]
        return out

    def _contrast_var(self, s: np.ndarray, parts) -> np.ndarray:
        """Design variance contributions of rows (one per contrast and stratum s): K_s s2(u) for a stratified
        random sample, sum_i b_i u_i^2 for a Poisson stratum (core.ppi.moments.poisson_variance); parts are
        (alpha, beta, moments, pseudo weight) arrays over the rows."""
        srs = self._K_s[s] * sample_variance(parts, self._n_s[s])
        poisson = self._poisson_s[s]
        if not poisson.any():
            return srs
        with np.errstate(invalid="ignore"):
            return np.where(poisson, poisson_variance(parts, self._bbar_s[s]), srs)

    # -- baselines --------------------------------------------------------------------------------------
    def _baseline(self, baseline: Sequence[str] | None) -> list[str]:
        return baseline_columns(self.by, baseline)

    def _base_index(self, base: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
        """Baseline number of each cell, and the baselines' labels."""
        if base:
            index = self._cells.groupby(list(base), sort=True, dropna=False).ngroup().to_numpy()
            labels = self._cells[list(base)].drop_duplicates().sort_values(list(base)).reset_index(drop=True)
        else:
            index = np.zeros(len(self._cells), dtype="int64")
            labels = pd.DataFrame(index=[0])
        return index, labels

    # -- deviations -----------------------------------------------------------------------------------
    def deviations(self, baseline: Sequence[str] | None = None, alpha: float = 0.05,
                   correction: str = "holm") -> pd.DataFrame:
        """The table plus each cell's corrected deviation from its baseline's corrected DR, with CI and test.

        deviation = theta(cell) - theta(baseline), the baseline estimated like a cell (its own lam). The
        variance is that of the linear contrast: per stratum of the baseline, the sample variance of
        u = z_cell / N_cell - z_baseline / N_baseline (the cell is part of its baseline, so they are
        correlated), plus the superpopulation term (1 - N_c/N_b)^2 [var_c/N_c + var_rest/N_rest]. Two-sided
        z-test, p adjusted over all cells (`correction`), significant = p_adjusted < alpha. Where the
        baseline has fewer than min_human labels, or the cell is its whole baseline, there is no test.
        """
        if correction not in CORRECTIONS:
            raise PPIError(f"unknown correction {correction!r}; choose from {', '.join(CORRECTIONS)}")
        base = self._baseline(baseline)
        b_of_cell, _ = self._base_index(base)
        C = len(self._cells)
        B = int(b_of_cell.max()) + 1 if C else 0
        b_of_piece = b_of_cell[self._c_of]
        best, cell = self._estimate(b_of_piece, B), self._est
        sc, sb = self._set_moments(self._c_of, C), self._set_moments(b_of_piece, B)
        # rows: every (cell, stratum of its baseline)
        idx, c = index_ranges(sb["start"][b_of_cell], sb["count"][b_of_cell])
        b, s = b_of_cell[c], sb["s"][idx]
        S = len(self._N_s)
        want = c * S + s
        pos = np.minimum(np.searchsorted(sc["key"], want), max(len(sc["key"]) - 1, 0))
        found = sc["key"][pos] == want if len(sc["key"]) else np.zeros(len(want), dtype=bool)
        cm = {m: np.where(found, sc[m][pos], 0.0) for m in ALL_MOMENTS}
        rm = {m: sb[m][idx] - cm[m] for m in ALL_MOMENTS}
        Nc, Nb = cell.N[c], best.N[b]
        with np.errstate(invalid="ignore", divide="ignore"):
            w1 = np.where(cell.n_human[c] > 0, self.pseudo * cm["m"] / cell.n_human[c], 0.0)
            w2 = np.where(best.n_human[b] > 0, self.pseudo * rm["m"] / best.n_human[b], 0.0)
            contrib = self._contrast_var(s, [(1 / Nc - 1 / Nb, cell.lam[c] / Nc - best.lam[b] / Nb, cm, w1),
                                             (-1 / Nb, -best.lam[b] / Nb, rm, w2)])
        contrib = np.where(sb["N"][idx] > 0, contrib, 0.0)
        var_design = np.bincount(c, weights=contrib, minlength=C)
        with np.errstate(invalid="ignore", divide="ignore"):
            var_sq = np.bincount(c, weights=np.where(self._poisson_s[s], 0.0, contrib ** 2 / (self._n_s[s] - 1)),
                                 minlength=C)
        theta_c, theta_b, Nb_c = self._theta, best.theta[b_of_cell], best.N[b_of_cell]
        baseline_ok = (best.n_human >= self.min_human)[b_of_cell]
        own_superpop = self._superpop(theta_c, cell.N)
        extra = np.zeros(C)
        if self._pooled is not None and (self._scope == "pooled").any():
            theta_b, baseline_ok, var_design, var_sq, own_superpop, extra = self._pooled_deviation_parts(
                base, b_of_cell, b_of_piece, B, best, theta_b, baseline_ok, var_design, var_sq, own_superpop)
        rest = Nb_c - cell.N
        with np.errstate(invalid="ignore", divide="ignore"):
            theta_r = np.clip((Nb_c * theta_b - cell.N * theta_c) / rest, 0, 1)
            share = 1 - cell.N / Nb_c
            superpop = share ** 2 * (own_superpop + np.where(rest > 0, theta_r * (1 - theta_r) / rest, 0.0))
            deviation = theta_c - theta_b
            total = var_design + superpop + extra
            se = np.sqrt(total)
            q = self._quantile(total, var_sq)
            df = np.where(var_sq > 0, np.maximum(total ** 2 / var_sq, 1.0), np.inf)
            p = np.where(np.isinf(df), 2 * special.ndtr(-np.abs(deviation / se)),
                         2 * special.stdtr(np.where(np.isinf(df), 1.0, df), -np.abs(deviation / se)))
        deviation = np.where(baseline_ok, deviation, np.nan)
        p = np.where((rest <= 0) | ~np.isfinite(deviation), np.nan, np.where(se == 0, 1.0, p))
        adjusted = adjust_pvalues(p, correction)
        return self.table.assign(
            baseline_dr=np.where(baseline_ok, np.clip(theta_b, 0, 1), np.nan), deviation=deviation,
            dev_ci_low=deviation - q * se, dev_ci_high=deviation + q * se,
            p_value=p, p_adjusted=adjusted, significant=np.nan_to_num(adjusted, nan=1.0) < alpha)

    def _pooled_deviation_parts(self, base, b_of_cell, b_of_piece, B, best, theta_b, baseline_ok, var_design,
                                var_sq, own_superpop):
        """For the pooled cells of deviations(): the baseline's estimate (pooled too where the baseline splits
        model x language pools, else its own labels), the design variance of cell - baseline (exact: the
        pooled line's loadings against the baseline's items, stratum by stratum), the cell's superpopulation
        term and the heterogeneity of the pieces whose random deviation from the line is not shared."""
        fit, pooled, est = self._fit, self._pooled, self._est
        C = len(self._cells)
        sel = self._scope == "pooled"
        cells = np.flatnonzero(sel)
        b = b_of_cell[cells]
        theta_b, baseline_ok = theta_b.copy(), baseline_ok.copy()
        var_design, var_sq, own_superpop = var_design.copy(), var_sq.copy(), own_superpop.copy()
        extra = np.zeros(C)
        if any(column not in POOL for column in base):  # the baseline is pooled like its cells
            pb = pooled_cells(fit, b_of_piece, B, self._N_p, self._F_p, self._F2_p, self._s_of, self._n_s)
            usable = (fit.labels >= self.min_human) & ~self._poisson_pool
            b_usable = ~(pb.touches & ~usable[None, :]).any(axis=1) & (pb.N > 0)
            theta_b[cells] = pb.theta[b]
            baseline_ok[cells] = b_usable[b]
            var_design[cells] = combo_design_var(fit, pooled.A[cells] - pb.A[b])
            var_sq[cells] = pooled.var_sq[cells] + pb.var_sq[b]
            # tau: sum over the baseline's pieces of (N_p (1[p in c]/N_c - 1/N_b))^2 tau_P
            t2 = fit.tau2[fit.pool_of_p]
            Np, Nb, Nc = self._N_p, pb.N[b_of_piece], est.N[self._c_of]
            with np.errstate(invalid="ignore", divide="ignore"):
                all_b = np.bincount(b_of_piece, weights=t2 * (Np / Nb) ** 2, minlength=B)
                own = np.bincount(self._c_of, weights=t2 * ((Np * (1 / Nc - 1 / Nb)) ** 2 - (Np / Nb) ** 2),
                                  minlength=C)
            extra[cells] = all_b[b] + own[cells]
        else:
            cov = cross_cov(fit, pooled.A, cells, b, b_of_piece, best.lam, best.N, self._mom, self._s_of,
                            self._N_s, self._n_s_fit)
            var_design[cells] = pooled.design[cells] + best.var_design[b] - 2 * cov
            var_sq[cells] = pooled.var_sq[cells] + best.var_sq[b]
            extra[cells] = pooled.tau[cells]
        own_superpop[cells] = pooled.superpop[cells]
        return theta_b, baseline_ok, np.maximum(var_design, 0.0), var_sq, own_superpop, extra

    # -- covariance of cells --------------------------------------------------------------------------
    def covariance(self, cells: Sequence[int] | None = None) -> np.ndarray:
        """Covariance matrix of the cells' estimates (rows of `table`, positions `cells`, all by default):
        se^2 on the diagonal; off it, the design covariance of two cells' estimates: non-zero where they share
        strata (domains of one stratum) or a pooled rectifier (groups of one model x language corrected by the
        same pooled line, core/ppi/pooled.py), computed as (var_i + var_j - Var(theta_i - theta_j)) / 2 from
        _pair_diff_var; superpopulation and heterogeneity terms are a cell's own (disjoint cells are
        independent in the superpopulation). NaN for cells without an estimate. Use it for any contrast of
        cells, e.g. the disparity across the groups of one baseline (the cells are disjoint by construction)."""
        idx = np.arange(len(self._cells)) if cells is None else np.asarray(cells, dtype="int64")
        k = len(idx)
        var = self._se[idx] ** 2
        cov = np.full((k, k), np.nan)
        cov[np.arange(k), np.arange(k)] = var
        i1, i2 = np.triu_indices(k, 1)
        ok = np.isfinite(var[i1]) & np.isfinite(var[i2])
        i1, i2 = i1[ok], i2[ok]
        if len(i1):
            diff = self._pair_diff_var(idx[i1], idx[i2])
            cov[i1, i2] = cov[i2, i1] = (var[i1] + var[i2] - diff) / 2
        return cov

    def _pair_diff_var(self, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        """Var(theta_c1 - theta_c2) for pairs of disjoint cells, whichever rectifier each got (per group:
        _pair_diff_var_group; two pooled cells: the design variance of their loadings' difference on the pools'
        lines plus each one's superpopulation and heterogeneity terms; one of each: both variances less twice
        their design covariance)."""
        c1, c2 = np.asarray(c1, dtype="int64"), np.asarray(c2, dtype="int64")
        out = self._pair_diff_var_group(c1, c2)
        if self._pooled is None or not len(c1):
            return out
        fit, pooled, est = self._fit, self._pooled, self._est
        p1, p2 = self._scope[c1] == "pooled", self._scope[c2] == "pooled"
        both = p1 & p2
        if both.any():
            own = pooled.superpop + pooled.tau
            out[both] = combo_design_var(fit, pooled.A[c1[both]] - pooled.A[c2[both]]) + own[c1[both]] + own[c2[both]]
        mixed = p1 ^ p2
        if mixed.any():
            pc = np.where(p1, c1, c2)[mixed]
            gc = np.where(p1, c2, c1)[mixed]
            cov = cross_cov(fit, pooled.A, pc, gc, self._c_of, est.lam, est.N, self._mom, self._s_of, self._N_s,
                            self._n_s_fit)
            out[mixed] = self._se[pc] ** 2 + self._se[gc] ** 2 - 2 * cov
        return out

    def _pair_diff_var_group(self, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        """Var(theta_c1 - theta_c2) for pairs of disjoint cells: the design part exact over the strata they
        share (sample variance of z_c1/N_c1 - z_c2/N_c2), plus both superpopulation terms (disjoint cells
        of a superpopulation are independent)."""
        est, C, S = self._est, len(self._cells), len(self._N_s)
        sc = self._set_moments(self._c_of, C)
        idx1, own1 = index_ranges(sc["start"][c1], sc["count"][c1])
        idx2, own2 = index_ranges(sc["start"][c2], sc["count"][c2])
        keys, inverse = np.unique(np.concatenate([own1 * S + sc["s"][idx1], own2 * S + sc["s"][idx2]]),
                                  return_inverse=True)
        R, split = len(keys), len(idx1)
        x = {m: np.bincount(inverse[:split], weights=sc[m][idx1], minlength=R) for m in (*ALL_MOMENTS, "N")}
        y = {m: np.bincount(inverse[split:], weights=sc[m][idx2], minlength=R) for m in (*ALL_MOMENTS, "N")}
        pair, s = keys // S, keys % S
        a, b = c1[pair], c2[pair]
        with np.errstate(invalid="ignore", divide="ignore"):
            w1 = np.where(est.n_human[a] > 0, self.pseudo * x["m"] / est.n_human[a], 0.0)
            w2 = np.where(est.n_human[b] > 0, self.pseudo * y["m"] / est.n_human[b], 0.0)
            contrib = self._contrast_var(s, [(1 / est.N[a], est.lam[a] / est.N[a], x, w1),
                                             (-1 / est.N[b], -est.lam[b] / est.N[b], y, w2)])
        contrib = np.where(x["N"] + y["N"] > 0, contrib, 0.0)
        var = np.bincount(pair, weights=contrib, minlength=len(c1))
        return var + self._superpop(self._theta[c1], est.N[c1]) + self._superpop(self._theta[c2], est.N[c2])

    # -- disparity across groups ----------------------------------------------------------------------
    def disparity(self, baseline: Sequence[str] | None = None, alpha: float = 0.05,
                  correction: str = "holm") -> pd.DataFrame:
        """Per baseline (model, language...): how unequal the corrected DRs of its cells (groups) are, beyond
        noise: core.stats.disparity.beyond_noise on the cells' corrected DRs and their variances, the same method
        and columns as the judge's figures (core.stats.rates.DefenseRates.disparity). Pairs of cells that share
        strata (strategies within one group) are correlated: the gap interval takes Var(theta_i - theta_j) from
        the per-stratum sums; cells with too few labels (NaN) are left out."""
        return self.beyond_noise(baseline, alpha, correction)[0]

    def beyond_noise(self, baseline: Sequence[str] | None = None, alpha: float = 0.05,
                     correction: str = "holm") -> tuple[pd.DataFrame, pd.DataFrame]:
        """(disparity rows, per-group rows with the corrected and shrunken DR): see disparity()."""
        from core.stats.disparity import beyond_noise

        if correction not in CORRECTIONS:
            raise PPIError(f"unknown correction {correction!r}; choose from {', '.join(CORRECTIONS)}")
        base = self._baseline(baseline)
        over = [c for c in self.by if c not in base]
        if not over:
            raise PPIError("disparity needs a dimension to compare across (e.g. group) besides the baseline")
        ok = np.flatnonzero(np.isfinite(self._theta))
        b_all, _ = self._base_index(base)
        ok = ok[np.argsort(b_all[ok], kind="stable")]
        names = self._cells[over[0]].astype(str)
        for column in over[1:]:
            names = names + " / " + self._cells[column].astype(str)
        # The superpopulation term of each variance taken under the baseline's pooled DR, as the judge's figures
        # take the binomial variance (so with every completion labelled, Q is Pearson's chi-square); the design
        # term (the sample's) stays each cell's own.
        bases, first, size = np.unique(b_all[ok], return_index=True, return_counts=True)
        N, theta = self._est.N[ok], self._theta[ok]
        with np.errstate(invalid="ignore", divide="ignore"):
            pooled = np.clip(np.repeat(np.add.reduceat(N * theta, first) / np.add.reduceat(N, first), size), 0, 1)
            null_term = pooled * (1 - pooled) / N
        shift = null_term - self._superpop(theta, N)
        cells = self._cells.iloc[ok][base].reset_index(drop=True).assign(
            _over=names.to_numpy()[ok], n=N.astype("int64"), dr=theta, var=np.maximum(self._se[ok] ** 2 + shift, 0.0),
            ci_low=self.table["ci_low"].to_numpy()[ok], ci_high=self.table["ci_high"].to_numpy()[ok],
            n_human=self.table["n_human"].to_numpy()[ok])
        pair_var: dict[tuple, np.ndarray] = {}
        for start, count in zip(first, size):
            members = ok[start:start + count]
            i1, i2 = np.triu_indices(count, k=1)
            matrix = np.zeros((count, count))
            if len(i1):
                matrix[i1, i2] = matrix[i2, i1] = np.maximum(self._pair_diff_var(members[i1], members[i2])
                                                             + shift[start + i1] + shift[start + i2], 0.0)
            key = tuple(cells.loc[start, base]) if base else ()
            pair_var[key] = matrix
        rows, groups = beyond_noise(cells, base, "_over", alpha=alpha, confidence=self.confidence,
                                    correction=correction, pair_var=pair_var)
        return rows, groups.rename(columns={"_over": over[0] if len(over) == 1 else "cell"})

    def records(self, table: pd.DataFrame | None = None) -> list[dict]:
        """Rows as plain JSON-ready dicts (NaN becomes None)."""
        return json.loads((self.table if table is None else table).to_json(orient="records"))

