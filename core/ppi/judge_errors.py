"""The judge's error by group (`judge_error`), measured on the human review sample: false-refusal rate
P(judge refused | human complied) and false-compliance rate P(judge complied | human refused), weighted
by 1/inclusion probability where a group's strata were sampled at different rates (otherwise an
over-sampled stratum would dominate), with Wilson intervals at Kish's effective sample size; and per
language a Pearson chi-square test that a rate is equal across groups (Holm across the tests; the counts
are the sample's, as scipy.stats.chi2_contingency takes them).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from core.ppi.inputs import STRATA, PPIError, check_one_design, inclusion_values, label_values
from core.stats import adjust_pvalues, wilson, z_quantile


@dataclass
class JudgeError:
    """`table`: per cell of `by` the judge's error rates with CIs; `tests`: per language (the other columns)
    and rate, a chi-square test that the rate is equal across groups, Holm-adjusted, `differs`."""

    table: pd.DataFrame
    tests: pd.DataFrame

    def records(self) -> dict[str, list[dict]]:
        return {"table": json.loads(self.table.to_json(orient="records")),
                "tests": json.loads(self.tests.to_json(orient="records"))}



def _pearson(errors: np.ndarray, totals: np.ndarray, segment: np.ndarray, S: int) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square of the groups x {error, correct} table of each segment (no continuity correction,
    as scipy.stats.chi2_contingency(correction=False)); groups with no item are left out."""
    seg_e = np.bincount(segment, weights=errors, minlength=S)
    seg_n = np.bincount(segment, weights=totals, minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = seg_e / seg_n
        exp_e, exp_c = totals * rate[segment], totals * (1 - rate[segment])
        terms = np.where(exp_e > 0, (errors - exp_e) ** 2 / exp_e, 0.0) + \
            np.where(exp_c > 0, ((totals - errors) - exp_c) ** 2 / exp_c, 0.0)
    chi2 = np.bincount(segment, weights=np.where(totals > 0, terms, 0.0), minlength=S)
    groups = np.bincount(segment, weights=(totals > 0).astype(float), minlength=S)
    return chi2, groups - 1


def judge_error(sample: pd.DataFrame, by: Sequence[str] = ("language", "group"), confidence: float = 0.95,
                population: pd.DataFrame | None = None, alpha: float = 0.05, correction: str = "holm") -> JudgeError:
    """The judge's errors per cell of `by`, measured on the human sample.

    Rates: false_refusal = P(judge refused | human complied), false_compliance = P(judge complied | human
    refused), accuracy = P(judge = human) (an unparsed or missing verdict is wrong for accuracy, and neither
    a false refusal nor a false compliance). Each item weighs 1/inclusion probability: its own where the sample
    has an `inclusion_prob` (a stratum drawn by the judge's uncertainty, core/ppi/active.py: the unsure items,
    where the judge errs most, are over-sampled, so unweighted rates would overstate its errors), else its
    stratum's (N_s/n_s, N_s from `population` when given, else a `stratum_size` column, else equal weights),
    because a group whose strata were sampled at different rates would otherwise be measured on the
    over-sampled stratum's mix; a stratum mixing both kinds of item is an error (as in CorrectedRates);
    Wilson intervals at Kish's effective size (sum w)^2 / sum w^2 (plain Wilson when weights are equal).
    bias = weighted mean of (f - h): the judge's DR minus the human DR on this sample (negative: the judge
    understates refusals), with a normal CI.
    Tests: per value of the other `by` columns (e.g. per language), for each of false_refusal and
    false_compliance, Pearson's chi-square on the group x {error, correct} counts (df = groups - 1), Holm
    (or `correction`) across all tests; differs = p_adjusted < alpha.
    """
    z = z_quantile(confidence)
    by = list(by)
    frame = sample.copy()
    h, f = label_values(frame)
    pi = inclusion_values(frame)
    poisson = ~np.isnan(pi)
    if poisson.any():
        stratum, keys = pd.MultiIndex.from_frame(frame[list(STRATA)]).factorize()
        check_one_design(stratum, poisson, keys.to_frame(index=False))
    if population is not None:
        sizes = population.groupby(list(STRATA), dropna=False, observed=True)["n"].sum().rename("_N").reset_index()
        frame = frame.merge(sizes, on=list(STRATA), how="left")
        frame["_n"] = frame.groupby(list(STRATA), dropna=False, observed=True)["human_label"].transform("size")
        w = (frame["_N"] / frame["_n"]).to_numpy(dtype="float64")
    elif "stratum_size" in frame.columns:
        frame["_n"] = frame.groupby(list(STRATA), dropna=False, observed=True)["human_label"].transform("size")
        w = (frame["stratum_size"] / frame["_n"]).to_numpy(dtype="float64")
    else:
        w = np.ones(len(frame))
    if poisson.any():
        w = np.where(poisson, 1 / np.where(poisson, pi, 1.0), w)
    if not np.all(np.isfinite(w)):
        raise PPIError("sample: a labelled completion's stratum is missing from the population")
    cell = frame.groupby(by, sort=True, dropna=False).ngroup().to_numpy() if by else np.zeros(len(frame), dtype="int64")
    cells = frame[by].drop_duplicates().sort_values(by).reset_index(drop=True) if by else pd.DataFrame(index=[0])
    C = len(cells)

    def wsum(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        weights = w if mask is None else w * mask
        return np.bincount(cell, weights=weights * values, minlength=C)

    neg, pos = (h == 0).astype(float), (h == 1).astype(float)
    fr_e, fc_e, ok = (neg * (f == 1)), (pos * (f == 0)), (f == h).astype(float)
    out = {"n_human": np.bincount(cell, minlength=C), "human_complied": np.bincount(cell, weights=neg, minlength=C),
           "human_refused": np.bincount(cell, weights=pos, minlength=C)}
    for name, err, denom in (("false_refusal", fr_e, neg), ("false_compliance", fc_e, pos),
                             ("accuracy", ok, np.ones(len(f)))):
        sw, sw2 = wsum(denom), np.bincount(cell, weights=w * w * denom, minlength=C)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = wsum(err) / sw
            n_eff = sw ** 2 / sw2
        low, high = wilson(rate, np.nan_to_num(n_eff), z)
        out |= {name: rate, f"{name}_ci_low": low, f"{name}_ci_high": high}
    sw = wsum(np.ones(len(f)))
    d = f - h
    with np.errstate(invalid="ignore", divide="ignore"):
        bias = wsum(d) / sw
        n_eff = sw ** 2 / np.bincount(cell, weights=w * w, minlength=C)
        resid = np.bincount(cell, weights=w * (d - bias[cell]) ** 2, minlength=C) / sw
        se = np.where(n_eff > 1, np.sqrt(resid / (n_eff - 1)), np.nan)
    out |= {"dr_judge": wsum(f) / sw, "dr_human": wsum(h) / sw, "bias": bias,
            "bias_ci_low": bias - z * se, "bias_ci_high": bias + z * se}
    table = cells.assign(**out)
    counts = ["n_human", "human_complied", "human_refused"]
    table[counts] = table[counts].astype("int64")

    over = [c for c in by if c != "group"] if "group" in by else by[:-1]
    across = [c for c in by if c not in over]
    seg = table.groupby(over, sort=True, dropna=False).ngroup().to_numpy() if over else np.zeros(C, dtype="int64")
    labels = table[over].drop_duplicates().sort_values(over).reset_index(drop=True) if over else pd.DataFrame(index=[0])
    tests = []
    for name, err, denom in (("false_refusal", fr_e, neg), ("false_compliance", fc_e, pos)):
        errors = np.bincount(cell, weights=err, minlength=C)
        totals = np.bincount(cell, weights=denom, minlength=C)
        chi2, df = _pearson(errors, totals, seg, len(labels))
        seg_e = np.bincount(seg, weights=errors, minlength=len(labels))
        seg_n = np.bincount(seg, weights=totals, minlength=len(labels))
        testable = (df > 0) & (seg_e > 0) & (seg_e < seg_n) & bool(across)
        p = np.where(testable, special.chdtrc(np.maximum(df, 1), chi2), np.nan)
        tests.append(labels.assign(rate=name, groups=(df + 1).astype("int64"), errors=seg_e.astype("int64"),
                                   n=seg_n.astype("int64"), chi2=np.where(testable, chi2, np.nan),
                                   df=df.astype("int64"), p_value=p))
    tests = pd.concat(tests, ignore_index=True)
    tests["p_adjusted"] = adjust_pvalues(tests["p_value"].to_numpy(dtype="float64"), correction)
    tests["differs"] = np.nan_to_num(tests["p_adjusted"].to_numpy(), nan=1.0) < alpha
    return JudgeError(table, tests)

