"""CorrectedRates and judge_error on strata sampled by the judge's uncertainty (Poisson sampling, each labelled
item with its own `inclusion_prob`), by seeded simulation where the truth is known: a calibrated judge (its
probability p ~ Beta per group, the human label h ~ Bernoulli(p), its verdict f = 1[p >= 0.5], accuracy ~85%)
on 2 models x 4 groups x 600 completions (two strategies crossing every group), each stratum drawn with
core.ppi.active.inclusion_probabilities at an expected 10%. Run with `pytest -s` to see the figures."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.ppi import CorrectedRates, PPIError, judge_error
from core.ppi.active import inclusion_probabilities
from core.ppi.rates import POISSON_NOTE
from core.stats import z_quantile
from tests.fixtures.ppi_simulation import Sampler, population_of, synthetic, truth_of

REPS = 300
SIZE = 600
BUDGET = 0.10
BETAS = {"g1": (0.30, 0.30), "g2": (0.45, 0.25), "g3": (0.25, 0.45), "g4": (0.35, 0.20)}  # DR 0.5/0.64/0.36/0.64
MODELS = ("m1", "m2")


def world(seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One finite population (one row per completion, the fixtures' columns) and each item's inclusion
    probability, drawn per stratum (model x group) from the judge's probability."""
    rng = np.random.default_rng(seed)
    parts, pis = [], []
    for model in MODELS:
        for group, (a, b) in BETAS.items():
            p = rng.beta(a, b, SIZE)
            h = rng.random(SIZE) < p
            f = p >= 0.5
            parts.append(pd.DataFrame({"run_id": "r", "model": model, "language": "en", "group": group,
                                       "kind": "attack", "strategy": np.where(rng.random(SIZE) < 0.5, "x", "y"),
                                       "judge_label": np.where(f, "refused", "complied"),
                                       "human_label": np.where(h, "refused", "complied")}))
            pis.append(inclusion_probabilities(p, BUDGET * SIZE))
    return pd.concat(parts, ignore_index=True), np.concatenate(pis)


def poisson_sample(items: pd.DataFrame, pi: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    labelled = rng.random(len(items)) < pi
    return items.loc[labelled].assign(inclusion_prob=pi[labelled])


@pytest.fixture(scope="module")
def study():
    """REPS seeded Poisson samples of one population, read by model x group (cells = strata) and by model x
    group x strategy (domains sharing strata), and as many stratified random samples of the same expected
    size: the figures every test below checks."""
    items, pi = world(0)
    population = population_of(items)
    truth = truth_of(items, ["model", "group"])["h"].to_numpy()
    fine = truth_of(items, ["model", "group", "strategy"])
    base = truth_of(items, ["model", "group"]).rename(columns={"h": "base"})
    fine = fine.merge(base, on=["model", "group"])
    dev_truth = (fine["h"] - fine["base"]).to_numpy()
    gap_truth = truth.reshape(len(MODELS), -1)
    gap_truth = gap_truth.max(axis=1) - gap_truth.min(axis=1)
    pair = [(0, 1), (0, 2), (1, 3), (2, 3)]  # groups of model m1 (cells 0-3), each pair's DR difference
    rng = np.random.default_rng(1)
    srs = Sampler(items, lambda key: BUDGET)
    z = z_quantile(0.95)
    out = {k: [] for k in ("dr", "low", "high", "srs_width", "dev", "dev_low", "dev_high", "gap_low", "gap_high",
                           "pair_cover", "shared_cov", "fine_cover", "design_cover")}
    for _ in range(REPS):
        sample = poisson_sample(items, pi, rng)
        rates = CorrectedRates(population, sample, ["model", "group"], rectifier="group")
        t = rates.table
        out["dr"].append(t["dr"].to_numpy())
        out["low"].append(t["ci_low"].to_numpy())
        out["high"].append(t["ci_high"].to_numpy())
        # the design alone (pseudo=0, less the superpopulation term): the per-item variance, neither inflated
        # by the small-sample adjustment nor by the superpopulation's spread the finite truth does not have
        bare = CorrectedRates(population, sample, ["model", "group"], rectifier="group", pseudo=0).table
        th = bare["dr"].to_numpy()
        design_sd = np.sqrt(np.maximum(bare["se"].to_numpy() ** 2 - th * (1 - th) / SIZE, 0.0))
        out["design_cover"].append(np.abs(th - truth) <= z * design_sd)
        gaps = rates.disparity(baseline=["model"])
        out["gap_low"].append(gaps["gap_ci_low"].to_numpy())
        out["gap_high"].append(gaps["gap_ci_high"].to_numpy())
        cov = rates.covariance()
        theta = t["dr"].to_numpy()
        diffs = np.array([theta[i] - theta[j] for i, j in pair])
        sds = np.sqrt([cov[i, i] + cov[j, j] - 2 * cov[i, j] for i, j in pair])
        true = np.array([truth[i] - truth[j] for i, j in pair])
        out["pair_cover"].append(np.abs(diffs - true) <= z * sds)
        by_strategy = CorrectedRates(population, sample, ["model", "group", "strategy"], rectifier="group")
        dev = by_strategy.deviations(baseline=["model", "group"])
        out["dev"].append(dev["deviation"].to_numpy())
        out["dev_low"].append(dev["dev_ci_low"].to_numpy())
        out["dev_high"].append(dev["dev_ci_high"].to_numpy())
        ft = by_strategy.table
        out["fine_cover"].append(((ft["ci_low"] <= fine["h"]) & (fine["h"] <= ft["ci_high"])).to_numpy())
        fc = by_strategy.covariance([0, 1])  # strategies x and y of one group: one stratum, different items
        out["shared_cov"].append(fc[0, 1] / np.sqrt(fc[0, 0] * fc[1, 1]))
        s = CorrectedRates(population, srs(rng), ["model", "group"], rectifier="group").table
        out["srs_width"].append((s["ci_high"] - s["ci_low"]).to_numpy())
    stack = {k: np.array(v) for k, v in out.items()}
    return {"items": items, "pi": pi, "population": population, "truth": truth, "dev_truth": dev_truth,
            "gap_truth": gap_truth, **stack}


def test_intervals_cover_the_human_dr_and_the_estimate_is_unbiased(study):
    truth = study["truth"]
    cover = ((study["low"] <= truth) & (truth <= study["high"])).mean(axis=0)
    bias = study["dr"].mean(axis=0) - truth
    bias_se = study["dr"].std(axis=0, ddof=1) / np.sqrt(REPS)
    fine = study["fine_cover"].mean(axis=0)
    design = study["design_cover"].mean(axis=0)
    print(f"\nPoisson (judge uncertainty), {REPS} samples at {BUDGET:.0%}: coverage per cell {cover.round(3)} "
          f"(mean {cover.mean():.3f}); by strategy too {fine.round(3)}; bias {bias.round(4)} (se {bias_se.max():.4f}); "
          f"design-only interval (pseudo=0, no superpopulation term) {design.round(3)} (mean {design.mean():.3f})")
    assert (cover >= 0.93).all()
    # the per-item variance is right, not merely large: its bare interval is nominal for the finite truth
    assert 0.93 <= design.mean() <= 0.97 and (design >= 0.91).all()
    assert (fine >= 0.93).all()
    assert (np.abs(bias) <= np.maximum(4 * bias_se, 0.002)).all() and np.abs(bias).max() < 0.01


def test_uncertainty_sampling_is_narrower_than_a_stratified_random_sample(study):
    ratio = (study["high"] - study["low"]).mean(axis=0) / study["srs_width"].mean(axis=0)
    print(f"\nmean width, uncertainty sampling / stratified random sample of the same expected size: per cell "
          f"{ratio.round(3)} (mean {ratio.mean():.3f})")
    # measured 0.846-0.854 (max over cells 0.87-0.89) on five seeded populations of 100 samples each
    assert ratio.max() < 0.92 and ratio.mean() < 0.88


def test_gaps_deviations_and_covariance_on_poisson_strata(study):
    dev_cover = ((study["dev_low"] <= study["dev_truth"]) & (study["dev_truth"] <= study["dev_high"])).mean(axis=0)
    gap_cover = ((study["gap_low"] <= study["gap_truth"]) & (study["gap_truth"] <= study["gap_high"])).mean(axis=0)
    pair_cover = study["pair_cover"].mean(axis=0)
    print(f"\ndeviation coverage (strategy vs its group) {dev_cover.round(3)}; pairwise gap coverage "
          f"{pair_cover.round(3)}; disparity gap interval coverage {gap_cover.round(3)}; correlation of two "
          f"domains of one Poisson stratum {np.abs(study['shared_cov']).max():.1e}")
    assert (dev_cover >= 0.93).all() and (pair_cover >= 0.93).all() and (gap_cover >= 0.93).all()
    # independent draws: two domains of one stratum share no item, so their estimates are uncorrelated
    assert np.abs(study["shared_cov"]).max() < 1e-9


def test_judge_error_weights_each_item_by_its_inclusion_probability(study):
    """The unsure items, where the judge errs, are over-sampled: the unweighted false-refusal rate overstates
    the judge's error, the 1/pi-weighted one is unbiased."""
    items, pi = study["items"], study["pi"]
    complied = items[items["human_label"] == "complied"]
    truth = (complied["judge_label"] == "refused").groupby(complied["group"]).mean().to_numpy()
    rng = np.random.default_rng(2)
    weighted, plain = [], []
    for _ in range(100):
        sample = poisson_sample(items, pi, rng)
        weighted.append(judge_error(sample, by=("group",)).table["false_refusal"].to_numpy())
        plain.append(judge_error(sample.drop(columns="inclusion_prob"), by=("group",)).table["false_refusal"]
                     .to_numpy())
    weighted, plain = np.array(weighted), np.array(plain)
    w_bias, p_bias = weighted.mean(axis=0) - truth, plain.mean(axis=0) - truth
    se = weighted.std(axis=0, ddof=1) / 10
    print(f"\njudge_error false-refusal rate, bias over 100 Poisson samples: weighted {w_bias.round(4)}, "
          f"unweighted {p_bias.round(4)} (truth {truth.round(3)})")
    assert (np.abs(w_bias) <= np.maximum(4 * se, 0.005)).all()
    assert (p_bias > 0.05).all()


def test_mixed_strata_are_an_error_and_a_nan_column_changes_nothing():
    rng = np.random.default_rng(3)
    items = synthetic(rng, {("m", g): (400, 0.6, 0.15, 0.1) for g in "abc"})
    population = population_of(items)
    sample = Sampler(items, lambda key: 0.1)(rng)
    plain = CorrectedRates(population, sample, ["group", "strategy"], power_tuning=True)
    nan = CorrectedRates(population, sample.assign(inclusion_prob=np.nan), ["group", "strategy"], power_tuning=True)
    pd.testing.assert_frame_equal(plain.table, nan.table, check_exact=True)
    pd.testing.assert_frame_equal(plain.deviations(), nan.deviations(), check_exact=True)
    pd.testing.assert_frame_equal(plain.disparity(), nan.disparity(), check_exact=True)
    assert np.array_equal(plain.covariance(), nan.covariance(), equal_nan=True)
    pd.testing.assert_frame_equal(judge_error(sample).table, judge_error(sample.assign(inclusion_prob=np.nan)).table)
    pi = np.where(sample["group"] == "b", 0.1, np.nan)
    pi[np.flatnonzero(sample["group"] == "a")[0]] = 0.2  # one item of stratum a with a probability
    with pytest.raises(PPIError, match="group=a, kind=attack mixes"):
        CorrectedRates(population, sample.assign(inclusion_prob=pi), ["group"])
    with pytest.raises(PPIError, match="mixes"):
        judge_error(sample.assign(inclusion_prob=pi))
    with pytest.raises(PPIError, match=r"\(0, 1\]"):
        CorrectedRates(population, sample.assign(inclusion_prob=1.5), ["group"])


def test_single_poisson_cell_is_the_textbook_horvitz_thompson_ppi():
    """One stratum, pseudo=0: theta = (F + sum (h - f)/pi) / N, Var = theta (1 - theta)/N + sum (1 - pi)/pi^2
    (h - f)^2 / N^2, normal quantile; power tuning leaves lam = 1 (core/ppi/rates.py says why)."""
    items, pi = world(4)
    one = items["model"].eq("m1") & items["group"].eq("g1")
    items, pi = items[one].reset_index(drop=True), pi[one.to_numpy()]
    sample = poisson_sample(items, pi, np.random.default_rng(5))
    h = sample["human_label"].eq("refused").to_numpy(float)
    f = sample["judge_label"].eq("refused").to_numpy(float)
    q = sample["inclusion_prob"].to_numpy()
    N, F = len(items), items["judge_label"].eq("refused").sum()
    row = CorrectedRates(population_of(items), sample, ["group"], pseudo=0).table.iloc[0]
    theta = (F + ((h - f) / q).sum()) / N
    var = theta * (1 - theta) / N + ((1 - q) / q ** 2 * (h - f) ** 2).sum() / N ** 2
    assert row["dr"] == pytest.approx(theta, abs=1e-12) and row["se"] ** 2 == pytest.approx(var, rel=1e-9)
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(z_quantile(0.95) * np.sqrt(var), rel=1e-9)
    tuned = CorrectedRates(population_of(items), sample, ["group"], pseudo=0, power_tuning=True).table.iloc[0]
    assert tuned["lam"] == 1 and tuned["dr"] == row["dr"] and tuned["se"] == row["se"]


def test_pools_with_poisson_strata_keep_the_per_group_correction():
    """auto and pooled: a model x language with strata drawn by uncertainty is not pooled; its cells say why,
    the other model's (stratified random samples) are pooled as before."""
    rng = np.random.default_rng(6)
    strata = {(m, f"g{i:02d}"): (300, 0.7, 0.15, 0.1) for m in ("m1", "m2") for i in range(10)}
    items = synthetic(rng, strata)
    population = population_of(items)
    sample = Sampler(items, lambda key: 0.1)(rng)
    m2 = (sample["model"] == "m2").to_numpy()
    sample = sample.assign(inclusion_prob=np.where(m2, 0.1, np.nan))
    for rectifier in ("auto", "pooled"):
        table = CorrectedRates(population, sample, ["model", "group"], rectifier=rectifier).table
        own = table[table["model"] == "m2"]
        assert (own["rectifier_scope"] == "group").all() and own["note"].str.contains(POISSON_NOTE, regex=False).all()
        assert own["dr"].notna().all()
        assert (table.loc[table["model"] == "m1", "rectifier_scope"] == "pooled").all()
