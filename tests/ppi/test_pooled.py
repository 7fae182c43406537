"""The pooled rectifier (core/ppi/pooled.py, issue 26 item 6): more precision per human label, still valid.

The acceptance on public human-labelled data: GPTFuzz's 6,160 answers (the project's own copy in
data/judge_training/) judged by the real `refusal` judge, split into pseudo-groups by a stable hash of the
answer's id (13 groups of ~474 answers, and 68 of ~90), a random 10% stratified review sample drawn 200 times
(seed 0): today's per-group rectifier against the default (`auto`). Criteria: every cell gets a corrected
estimate in every sample; the intervals cover the cell's human DR in at least 90% of the cells (cells whose
coverage over the 200 samples is >= 0.90; mean coverage >= 0.93 and no cell under 0.85 as well); mean width
at most 60% of today's (over the cells today estimates). Run with `pytest -s` to see the figures.

The pooled rectifier's intervals are for the superpopulation DR: a cell whose finite human DR happens to lie
far from the pooled line (the 13-group split has one ~2.2 standard deviations off) is covered less often
than nominal over repeated samples of the same answers, however exact the variance; that is why the criterion
counts cells rather than asking every cell for 0.93 (the simulation study in core/ppi/pooled.py, with fresh
populations, measures every group, and says where the pooled rectifier falls short).

Measured (seed 0, 200 samples): 13 groups: today every cell estimated, coverage 0.95-1.0 (mean 0.97), width
0.288; the default every cell, coverage 0.895-1.0 (mean 0.985, 12 of 13 cells >= 0.90), width 0.169 (0.59 of
today's). 68 groups: today a third of the cell-samples estimated (9 labels < 10), the default all, coverage
0.905-1.0 (mean 0.995), width 0.36 of today's where today has one (0.238 against 0.662).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.ppi import CorrectedRates, PPIError
from core.ppi.pooled import _coverage_study
from tests.fixtures.ppi_simulation import GPTFUZZ, Sampler, judged, population_of, stable_bucket, synthetic, truth_of

REPS = 200


@pytest.fixture(scope="module")
def gptfuzz() -> pd.DataFrame:
    frame = pd.read_csv(GPTFUZZ)
    frame["completion"] = frame["completion"].fillna("")
    return frame.assign(judge_label=judged(frame, "en"))


def hashed(frame: pd.DataFrame, groups: int) -> pd.DataFrame:
    return pd.DataFrame({"run_id": "r", "model": "m", "language": "en", "kind": "attack", "strategy": "s",
                         "group": [f"g{stable_bucket(i, groups):02d}" for i in frame["id"]],
                         "judge_label": frame["judge_label"], "human_label": frame["label"]})


def measure(items: pd.DataFrame, options: dict[str, dict], fraction: float = 0.10, reps: int = REPS,
            seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per rule: coverage of each cell's human DR, its width and whether it had an estimate, per sample."""
    by = ["model", "group"]
    population, truth = population_of(items), truth_of(items, by)["h"].to_numpy()
    sampler, rng = Sampler(items, lambda key: fraction), np.random.default_rng(seed)
    out = {name: {"cover": [], "width": [], "estimated": []} for name in options}
    for _ in range(reps):
        sample = sampler(rng)
        for name, opts in options.items():
            table = CorrectedRates(population, sample, by, **opts).table
            out[name]["cover"].append(((table["ci_low"] <= truth) & (truth <= table["ci_high"])).to_numpy())
            out[name]["width"].append((table["ci_high"] - table["ci_low"]).to_numpy())
            out[name]["estimated"].append(table["dr"].notna().to_numpy())
    return {name: {k: np.array(v) for k, v in parts.items()} for name, parts in out.items()}


@pytest.mark.parametrize("groups", [13, 68])
def test_pooled_default_on_gptfuzz_estimates_every_cell_covers_and_is_narrower(gptfuzz, groups):
    result = measure(hashed(gptfuzz, groups), {"today": {"rectifier": "group"}, "new": {}})
    today, new = result["today"], result["new"]
    common = today["estimated"] & new["estimated"]
    ratio = np.mean(new["width"][common]) / np.mean(today["width"][common])
    lines = []
    for name, r in result.items():
        cover = np.where(r["estimated"], r["cover"], np.nan)
        seen = r["estimated"].any(axis=0)  # cells estimated in at least one sample
        per_cell = np.nanmean(cover[:, seen], axis=0)
        width = np.nanmean(np.where(r["estimated"], r["width"], np.nan))
        lines.append(f"{name}: cells estimated {r['estimated'].mean():.3f}, coverage per cell (where estimated) "
                     f"min {np.nanmin(per_cell):.3f} mean {np.nanmean(cover):.3f}, cells >= 0.90: "
                     f"{np.mean(per_cell >= 0.90):.2f}, mean width {width:.3f}")
    print(f"\nGPTFuzz, {groups} hashed groups, 10% sample, {REPS} samples:\n  " + "\n  ".join(lines)
          + f"\n  width new / today over the cells today estimates: {ratio:.3f}")
    assert new["estimated"].all()
    per_cell = new["cover"].mean(axis=0)
    assert np.mean(per_cell >= 0.90) >= 0.90 and per_cell.mean() >= 0.93 and per_cell.min() >= 0.85, per_cell
    assert ratio <= 0.60
    if groups == 68:  # cells of ~90 answers: 9 labels each at 10%, under the 10 today's estimator needs
        assert today["estimated"].mean() < 0.5


def test_pooled_rule_keeps_coverage_where_groups_err_differently():
    """The hardest corner of the study in core/ppi/pooled.py (weak judge, DRs spread over 0.5-0.9, the judge's
    false-compliance rate 5 or 10 points apart across the 13 groups, 10% sample), 200 fresh populations and
    samples: the default rule's worst group is within Monte Carlo error of nominal (0.92 over 1,000
    repetitions at 10 points; the worst of 13 groups at exactly 95% lands near 0.92 over 200 by chance), the
    mean over groups above it, and the intervals narrower than the per-group ones."""
    study = _coverage_study(reps=REPS, judges={"weak": (0.165, 0.376)}, spreads=(0.4,), differences=(0.05, 0.10),
                            fractions=(0.10,), patterns=("spread",),
                            rules={"group": {"rectifier": "group"}, "auto": {}})
    print("\n" + study.to_string(index=False))
    auto = study[study["rule"] == "auto"]
    assert (auto["worst"] >= 0.90).all() and (auto["mean"] >= 0.95).all()
    assert (auto["width"] < 0.95).all()


def synthetic_pool(rng, groups=13, size=300, miss=None):
    miss = miss or {}
    return synthetic(rng, {("m", f"g{i:02d}"): (size, 0.5 + 0.03 * i, miss.get(i, 0.15), 0.10)
                           for i in range(groups)})


def test_cells_with_few_or_no_labels_get_a_pooled_estimate_and_small_pools_say_so():
    rng = np.random.default_rng(21)
    items = synthetic_pool(rng)
    population = population_of(items)
    sample = Sampler(items, lambda key: 0.10)(rng)
    sample = pd.concat([sample[~sample["group"].isin(["g00", "g01", "g02"])],  # g00, g01: not a single label
                        items[items["group"] == "g02"].head(3)])  # g02: three
    table = CorrectedRates(population, sample, ["model", "group"]).table.set_index("group")
    assert table["dr"].notna().all()  # auto: whatever the test says, a cell without enough labels is pooled
    assert (table.loc[["g00", "g01", "g02"], "rectifier_scope"] == "pooled").all()
    table = CorrectedRates(population, sample, ["model", "group"], rectifier="pooled").table.set_index("group")
    assert table["dr"].notna().all() and (table["rectifier_scope"] == "pooled").all()
    assert "none in this cell" in table.loc["g00", "note"] and table.loc["g00", "n_human"] == 0
    assert "3 in this cell" in table.loc["g02", "note"]
    # today's estimator has nothing for them
    group = CorrectedRates(population, sample, ["model", "group"], rectifier="group").table.set_index("group")
    assert group.loc[["g00", "g01", "g02"], "dr"].isna().all()
    assert (group["rectifier_scope"] == "group").all()
    # a pool below min_human: no estimate, and a plain sentence saying what to do
    tiny = sample[sample["group"].isin(["g03", "g04"])].groupby("group").head(3)
    small = CorrectedRates(population, tiny, ["model", "group"], rectifier="pooled").table
    assert small["dr"].isna().all()
    assert all("fewer than 10 human checks for English on m (6)" in note and "python -m core review sample" in note
               for note in small["note"]), small["note"].tolist()
    # cells that are whole pools keep their own labels (pooling adds nothing)
    whole = CorrectedRates(population, sample, ["model"]).table
    assert (whole["rectifier_scope"] == "group").all()
    with pytest.raises(PPIError, match="unknown rectifier"):
        CorrectedRates(population, sample, ["group"], rectifier="shared")


def test_auto_keeps_per_group_rectifiers_where_the_judge_errs_differently_by_group():
    """One group's answers are missed by the judge 60% of the time (0.15 elsewhere): the lack-of-fit test
    rejects, every cell keeps its own labels and says why; forcing the pooled rectifier there puts the
    heterogeneity into the intervals."""
    rng = np.random.default_rng(22)
    items = synthetic_pool(rng, miss={4: 0.60})
    population = population_of(items)
    sample = Sampler(items, lambda key: 0.20)(rng)
    rates = CorrectedRates(population, sample, ["model", "group"])
    assert (rates.table["rectifier_scope"] == "group").all()
    assert "differ between the groups of English on m" in rates.table["note"].iloc[0]
    pools = rates._fit.table()
    assert pools["p_value"].iloc[0] < 0.05 and pools["groups"].iloc[0] == 13
    forced = CorrectedRates(population, sample, ["model", "group"], rectifier="pooled")
    assert pools["tau2"].iloc[0] > 0 and (forced.table["rectifier_scope"] == "pooled").all()


@pytest.mark.slow
def test_pooled_variance_and_covariance_match_repeated_samples():
    """Fixed population, 600 samples: the design variance of each pooled estimate and the covariance between
    two groups (they share the pooled line) agree with their spread over the samples; so does the variance of
    a deviation from the model's own-label DR; covariance() is symmetric and positive semi-definite."""
    rng = np.random.default_rng(23)
    items = synthetic(rng, {("m", f"g{i}"): (200 + 30 * i, 0.5 + 0.04 * i, 0.1 + 0.01 * i, 0.2) for i in range(9)})
    population = population_of(items)
    sampler = Sampler(items, lambda key: 0.10 if key[3] < "g4" else 0.20)
    thetas, design, cov01, devs = [], [], [], []
    for _ in range(600):
        rates = CorrectedRates(population, sampler(rng), ["model", "group"], rectifier="pooled", pseudo=0)
        thetas.append(rates.table["dr"].to_numpy())
        design.append(rates._pooled.design)
        matrix = rates.covariance()
        cov01.append(matrix[0, 1])
        devs.append(rates.deviations()["deviation"].to_numpy())
    thetas = np.array(thetas)
    ratio = thetas.var(axis=0) / np.mean(design, axis=0)
    print(f"\nempirical / predicted design variance per group: {np.round(ratio, 2)}; covariance of two groups "
          f"{np.cov(thetas[:, 0], thetas[:, 1])[0, 1]:.6f} vs {np.mean(cov01):.6f}")
    assert ((ratio > 0.85) & (ratio < 1.15)).all()
    assert np.mean(cov01) == pytest.approx(np.cov(thetas[:, 0], thetas[:, 1])[0, 1], rel=0.2)
    assert np.mean(cov01) > 0
    assert np.allclose(matrix, matrix.T) and np.linalg.eigvalsh(matrix).min() > -1e-12
    assert np.isfinite(np.array(devs)).all()


def test_disparity_and_deviations_run_on_pooled_cells():
    rng = np.random.default_rng(24)
    items = synthetic_pool(rng)
    population = population_of(items)
    rates = CorrectedRates(population, Sampler(items, lambda key: 0.10)(rng), ["model", "group"],
                           rectifier="pooled")
    gap = rates.disparity().iloc[0]
    assert np.isfinite([gap["gap_ci_low"], gap["gap_ci_high"], gap["tau_ci_high"], gap["q_p"]]).all()
    assert gap["gap_ci_low"] <= gap["gap"] <= gap["gap_ci_high"]
    dev = rates.deviations()
    assert dev["deviation"].notna().all() and (dev["dev_ci_high"] > dev["dev_ci_low"]).all()
