"""core.ppi by seeded simulation where the truth is known: real human-labelled responses judged by the real
`refusal` judge, synthetic populations with unequal sampling fractions, strata-crossing groupings and power
tuning, and the textbook cases (constant judge, everything labelled) against scipy and statsmodels.

Run with `pytest -s` to see the coverage figures printed.

The real-data tests assert the issue's criterion, coverage >= 93% of 200 seeded samples in every cell, with
seed 0 throughout. The intervals are nominal, not inflated: the hardest GPTFuzz cell (DR 0.41, the judge
wrong on 46% of it) covers 94.6% over 1,200 samples, so for some other seed a cell like it can land under
93% of 200 by chance (about one seed in seven for that cell); a failure here on changed code is worth a
look at the printed figures, not a new seed."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats import proportion as smp

from core.stats.rates import DefenseRates
from tests.fixtures.paths import TEST_DATA as DATA
from tests.fixtures.ppi_simulation import (GPTFUZZ, Sampler, judged, population_of, stable_bucket, synthetic,
                                          truth_of)
from core.ppi import (CorrectedRates, PPIError, judge_error, labels_needed, labels_needed_table,
                      labels_without_judge)

REPS = 200


# -- helpers ------------------------------------------------------------------------------------------------
def draw(items: pd.DataFrame, fraction, rng: np.random.Generator) -> pd.DataFrame:
    return Sampler(items, fraction)(rng)


def coverage(items: pd.DataFrame, bys: list[list[str]], fraction, reps: int = REPS, seed: int = 0,
             **options) -> list[pd.DataFrame]:
    """Per grouping and cell over `reps` seeded samples (shared by the groupings): coverage of the true
    human DR, mean width, range of lam."""
    population = population_of(items)
    truths = [truth_of(items, by) for by in bys]
    rng = np.random.default_rng(seed)
    sampler = Sampler(items, fraction)
    runs: list[list[pd.DataFrame]] = [[] for _ in bys]
    for _ in range(reps):
        sample = sampler(rng)
        for i, by in enumerate(bys):
            table = CorrectedRates(population, sample, by, **options).table.merge(truths[i], on=by)
            assert table["dr"].notna().all(), table.loc[table["dr"].isna(), [*by, "note"]]
            runs[i].append(table)
    out = []
    for truth, tables in zip(truths, runs):
        hit = np.mean([((t["ci_low"] <= t["h"]) & (t["h"] <= t["ci_high"])).to_numpy() for t in tables], axis=0)
        width = np.mean([(t["ci_high"] - t["ci_low"]).to_numpy() for t in tables], axis=0)
        out.append(truth.assign(coverage=hit, width=width, n_human=np.mean([t["n_human"] for t in tables], axis=0)))
    return out


def judge_only_coverage(items: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """The existing judge-only bootstrap intervals (core.stats.rates) against the same truth."""
    frame = items.assign(label=items["judge_label"], error=None)
    table = DefenseRates(frame, by, seed=0).table.merge(truth_of(items, by), on=by)
    return table.assign(covers=(table["ci_low"] <= table["h"]) & (table["h"] <= table["ci_high"]))


# -- real labelled data, real judge -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def project_items() -> pd.DataFrame:
    """The project's three labelled files as one population: strata language x source file (its `group`)."""
    parts = []
    for name in ("judge_eval_labels.csv", "judge_eval_fresh.csv", "refusal_labels.csv"):
        frame = pd.read_csv(DATA / name)
        frame["source"] = name.removesuffix(".csv")
        parts.append(frame)
    frame = pd.concat(parts, ignore_index=True)
    return pd.DataFrame({"run_id": "r", "model": "m", "language": frame["language"], "group": frame["source"],
                         "kind": "all", "strategy": "s", "judge_label": judged(frame),
                         "human_label": frame["label"]})


@pytest.fixture(scope="module")
def gptfuzz_items() -> pd.DataFrame:
    """The project's 6,160 GPTFuzz labels (data/judge_training/): two pseudo-models (a stable hash of the
    question) x six pseudo-groups (sextiles of the response's length: response style varies by group, and so
    does the judge's error)."""
    assert GPTFUZZ.exists(), f"{GPTFUZZ}: the human-labelled set the real-data coverage test needs is missing"
    frame = pd.read_csv(GPTFUZZ)
    frame["completion"] = frame["completion"].fillna("")
    length = pd.qcut(frame["completion"].str.len().rank(method="first"), 6, labels=False)
    return pd.DataFrame({"run_id": "r", "model": [f"m{stable_bucket(p, 2)}" for p in frame["prompt"]],
                         "language": "en", "group": [f"L{g}" for g in length], "kind": "attack", "strategy": "s",
                         "judge_label": judged(frame, "en"), "human_label": frame["label"]})


def report(name: str, by: list[str], ten: pd.DataFrame, twenty: pd.DataFrame, judge_only: pd.DataFrame) -> None:
    print(f"\n{name} by {'+'.join(by)}: {len(ten)} cells; corrected coverage min/mean "
          f"10%: {ten['coverage'].min():.3f}/{ten['coverage'].mean():.3f} (width {ten['width'].mean():.3f}), "
          f"20%: {twenty['coverage'].min():.3f}/{twenty['coverage'].mean():.3f} (width {twenty['width'].mean():.3f}); "
          f"judge-only coverage {judge_only['covers'].mean():.3f} (width "
          f"{(judge_only['ci_high'] - judge_only['ci_low']).mean():.3f}, mean |bias| "
          f"{(judge_only['dr'] - judge_only['h']).abs().mean():.3f})")


@pytest.mark.slow
def test_corrected_intervals_cover_the_human_dr_on_the_project_files(project_items):
    """Cells by source file (strata: language x file). The files are small (10% of the 86-row fresh file is
    8 labels), so min_human is 8 here. The judge was developed on two of the files and is right on 95-100%
    of them; on the fresh file (75.6%) its interval misses the human DR, the corrected one covers."""
    bys = [["group"], ["language"]]
    ten = coverage(project_items, bys, lambda key: 0.10, seed=0, min_human=8)
    twenty = coverage(project_items, bys, lambda key: 0.20, seed=0, min_human=8)
    for by, t10, t20 in zip(bys, ten, twenty):
        judge_only = judge_only_coverage(project_items, by)
        report("project files", by, t10, t20, judge_only)
        assert (t10["coverage"] >= 0.93).all(), t10
        assert (t20["coverage"] >= 0.93).all(), t20
        assert (t20["width"] < t10["width"]).all()
    judge_only = judge_only_coverage(project_items, ["group"]).set_index("group")
    assert not judge_only.loc["judge_eval_fresh", "covers"]


@pytest.mark.slow
def test_corrected_intervals_cover_the_human_dr_on_gptfuzz(gptfuzz_items):
    """10% everywhere, then 20% on average with unequal fractions (15% for m0, 25% for m1), so the cells by
    group (unions of the two models' strata) need the weighting."""
    unequal = lambda key: 0.15 if key[1] == "m0" else 0.25  # noqa: E731 - key = (run_id, model, ...)
    bys = [["model", "group"], ["group"]]
    ten = coverage(gptfuzz_items, bys, lambda key: 0.10, seed=0)
    twenty = coverage(gptfuzz_items, bys, unequal, seed=0)
    for by, t10, t20 in zip(bys, ten, twenty):
        judge_only = judge_only_coverage(gptfuzz_items, by)
        report("gptfuzz", by, t10, t20, judge_only)
        assert (t10["coverage"] >= 0.93).all(), t10
        assert (t20["coverage"] >= 0.93).all(), t20
        assert (t20["width"] < t10["width"]).all()
        assert judge_only["covers"].mean() < 0.5


def test_judge_error_by_group_on_gptfuzz(gptfuzz_items):
    """The judge's error differs by pseudo-group (response length): the test must say so, and the rates
    must match the full data's within their intervals."""
    sample = draw(gptfuzz_items, lambda key: 0.2, np.random.default_rng(5))
    errors = judge_error(sample, by=("language", "group"), population=population_of(gptfuzz_items))
    full = gptfuzz_items.assign(fr=(gptfuzz_items["judge_label"] == "refused"),
                                fc=(gptfuzz_items["judge_label"] == "complied"))
    truth = pd.DataFrame({
        "fr": full[full["human_label"] == "complied"].groupby("group")["fr"].mean(),
        "fc": full[full["human_label"] == "refused"].groupby("group")["fc"].mean()}).reset_index()
    table = errors.table.merge(truth, on="group")
    inside = (table["false_compliance_ci_low"] <= table["fc"]) & (table["fc"] <= table["false_compliance_ci_high"])
    assert inside.mean() >= 0.8
    assert errors.tests["differs"].any()
    judge_minus_human = full["judge_label"].eq("refused").astype(float) - full["human_label"].eq("refused")
    bias_truth = judge_minus_human.groupby(full["group"]).mean()
    assert np.corrcoef(table["bias"], bias_truth.sort_index().to_numpy())[0, 1] > 0.8


# -- synthetic populations ----------------------------------------------------------------------------------
def test_unequal_inclusion_probabilities_need_the_weights():
    """Two strata of one model, sampled at 4% and 40%, with different DRs and judge errors: the naive
    estimator (judge mean + unweighted mean of h - f over the pooled sample) is biased, the weighted one covers."""
    rng = np.random.default_rng(6)
    items = synthetic(rng, {("m", "a"): (3000, 0.9, 0.30, 0.05), ("m", "b"): (3000, 0.3, 0.02, 0.02)})
    population = population_of(items)
    truth = truth_of(items, ["model"])["h"].iloc[0]
    fraction = lambda key: 0.04 if key[3] == "a" else 0.40  # noqa: E731 - key = (run_id, model, language, group, kind)
    hits, naive_hits, naive = 0, 0, []
    judge_mean = (items["judge_label"] == "refused").mean()
    sampler = Sampler(items, fraction)
    for _ in range(REPS):
        sample = sampler(rng)
        row = CorrectedRates(population, sample, ["model"]).table.iloc[0]
        hits += row["ci_low"] <= truth <= row["ci_high"]
        d = (sample["human_label"] == "refused").astype(float) - (sample["judge_label"] == "refused")
        estimate = judge_mean + d.mean()
        naive.append(estimate)
        naive_hits += abs(estimate - truth) <= 1.96 * d.std(ddof=1) / np.sqrt(len(d))
    print(f"\nunequal fractions: weighted coverage {hits / REPS:.3f}, naive coverage {naive_hits / REPS:.3f}, "
          f"naive bias {np.mean(naive) - truth:+.3f}")
    assert hits / REPS >= 0.93
    assert abs(np.mean(naive) - truth) > 0.05 and naive_hits / REPS < 0.5


@pytest.mark.slow
def test_by_crossing_the_strata_and_power_tuning():
    """Strategy crosses the strata (groups) and changes the judge's error: cells by group x strategy and by
    strategy alone are domains inside strata. Plain PPI and PPI++ both cover; PPI++ keeps lam in [0, 1] and
    is no wider on average; deviations from the group baseline and the gap cover their true values too."""
    rng = np.random.default_rng(7)
    strata = {("m", g): (1500, dr, miss, fr) for g, dr, miss, fr in
              [("a", 0.8, 0.25, 0.20), ("b", 0.5, 0.10, 0.35), ("c", 0.65, 0.30, 0.10)]}
    items = synthetic(rng, strata, {"x": (0.0, 2.0), "y": (0.25, 1.0)})
    population = population_of(items)
    truth = truth_of(items, ["group", "strategy"])
    base = truth_of(items, ["group"]).rename(columns={"h": "base"})
    n_cells = items.groupby(["group", "strategy"]).size().rename("N").reset_index()
    truth = truth.merge(base, on="group").merge(n_cells, on=["group", "strategy"])
    truth["dev"] = truth["h"] - truth["base"]
    by_strategy = truth_of(items, ["strategy"])
    gap_truth = truth.groupby("group")["h"].agg(lambda v: v.max() - v.min())
    results = {False: [], True: []}
    sampler = Sampler(items, lambda key: 0.12)
    for _ in range(REPS):
        sample = sampler(rng)
        for tuned in (False, True):
            rates = CorrectedRates(population, sample, ["group", "strategy"], power_tuning=tuned)
            dev = rates.deviations(baseline=["group"]).merge(truth, on=["group", "strategy"])
            gaps = rates.disparity(baseline=["group"]).set_index("group")
            coarse = CorrectedRates(population, sample, ["strategy"], power_tuning=tuned).table \
                .merge(by_strategy, on="strategy")
            results[tuned].append({
                "cover": ((dev["ci_low"] <= dev["h"]) & (dev["h"] <= dev["ci_high"])).to_numpy(),
                "width": (dev["ci_high"] - dev["ci_low"]).to_numpy(),
                "dev_cover": ((dev["dev_ci_low"] <= dev["dev"]) & (dev["dev"] <= dev["dev_ci_high"])).to_numpy(),
                "coarse": ((coarse["ci_low"] <= coarse["h"]) & (coarse["h"] <= coarse["ci_high"])).to_numpy(),
                "gap": ((gaps["gap_ci_low"] <= gap_truth) & (gap_truth <= gaps["gap_ci_high"])).to_numpy(),
                "lam": rates.table["lam"].to_numpy()})
    for tuned, runs in results.items():
        stack = {k: np.array([r[k] for r in runs]) for k in runs[0]}
        print(f"\npower_tuning={tuned}: cell coverage {stack['cover'].mean(axis=0).round(3)}, by strategy "
              f"{stack['coarse'].mean(axis=0).round(3)}, deviations {stack['dev_cover'].mean(axis=0).round(3)}, "
              f"gap {stack['gap'].mean(axis=0).round(3)}, mean width {stack['width'].mean():.3f}, "
              f"lam {stack['lam'].min():.2f}-{stack['lam'].max():.2f}")
        assert (stack["cover"].mean(axis=0) >= 0.93).all()
        assert (stack["coarse"].mean(axis=0) >= 0.93).all()
        assert (stack["dev_cover"].mean(axis=0) >= 0.93).all()
        assert (stack["gap"].mean(axis=0) >= 0.93).all()
        assert ((stack["lam"] >= 0) & (stack["lam"] <= 1)).all()
        results[tuned] = stack
    assert results[True]["width"].mean() <= results[False]["width"].mean()
    assert results[True]["lam"].mean() < 0.95  # a weak judge is down-weighted
    assert (results[False]["lam"] == 1).all()


def test_cells_without_enough_labels_say_so():
    rng = np.random.default_rng(8)
    items = synthetic(rng, {("m", "a"): (400, 0.5, 0.1, 0.1), ("m", "b"): (400, 0.5, 0.1, 0.1),
                            ("m", "c"): (400, 0.5, 0.1, 0.1)})
    population = population_of(items)
    sample = pd.concat([items[items["group"] == "a"].head(30), items[items["group"] == "b"].head(5),
                        items[items["group"] == "c"].head(1)])
    table = CorrectedRates(population, sample, ["group"]).table.set_index("group")
    assert np.isfinite(table.loc["a", "dr"]) and table.loc["a", "note"] == ""
    assert np.isnan(table.loc["b", ["dr", "ci_low", "ci_high", "se"]].astype(float)).all()
    assert "fewer than the 10 needed" in table.loc["b", "note"] and table.loc["b", "n_human"] == 5
    # by model: enough labels in total (36), but stratum c has one label: no variance, no pretend value
    model = CorrectedRates(population, sample, ["model"]).table.iloc[0]
    assert np.isnan(model["dr"]) and "group=c" in model["note"] and "needs 2" in model["note"]
    assert CorrectedRates(population, sample, ["model"]).records()[0]["dr"] is None
    with pytest.raises(PPIError, match="cannot group by"):
        CorrectedRates(population, sample, ["colour"])
    with pytest.raises(PPIError, match="human_label"):
        CorrectedRates(population, sample.assign(human_label="maybe"), ["group"])
    with pytest.raises(PPIError, match="outside the population"):
        CorrectedRates(population, sample.assign(group="zzz"), ["group"])


# -- the textbook cases ----------------------------------------------------------------------------------------
def test_constant_judge_is_the_stratified_sample_mean_with_finite_population_correction():
    rng = np.random.default_rng(9)
    items = synthetic(rng, {("m", "a"): (500, 0.7, 0.2, 0.1), ("m", "b"): (300, 0.4, 0.2, 0.1)})
    items["judge_label"] = np.where(rng.random(len(items)) < 0.5, "unparsed", None)  # f = 0.5 everywhere
    population = population_of(items)
    sample = draw(items, lambda key: 0.1 if key[3] == "a" else 0.3, rng)
    h = (sample["human_label"] == "refused").astype(float)
    # one stratum: the sample mean, Var = theta(1-theta)/N + (1 - n/N) s^2 / n
    one = CorrectedRates(population, sample, ["group"], pseudo=0).table.set_index("group").loc["a"]
    ha = h[sample["group"] == "a"]
    assert one["dr"] == pytest.approx(ha.mean())
    se = np.sqrt(ha.mean() * (1 - ha.mean()) / 500 + (1 - len(ha) / 500) * sps.sem(ha) ** 2)
    assert one["se"] == pytest.approx(se)
    assert one["rectifier"] == pytest.approx(ha.mean() - 0.5)
    # two strata: the stratified mean sum_s N_s/N mean_s and its textbook variance
    both = CorrectedRates(population, sample, ["model"], pseudo=0).table.iloc[0]
    means = h.groupby(sample["group"]).mean()
    sems = h.groupby(sample["group"]).agg(sps.sem)
    sizes = pd.Series({"a": 500, "b": 300})
    ns = h.groupby(sample["group"]).size()
    theta = (sizes * means).sum() / 800
    assert both["dr"] == pytest.approx(theta)
    design = ((sizes / 800) ** 2 * (1 - ns / sizes) * sems ** 2).sum()
    assert both["se"] == pytest.approx(np.sqrt(theta * (1 - theta) / 800 + design))
    # the small-sample adjustment only ever widens
    assert CorrectedRates(population, sample, ["model"]).table.iloc[0]["se"] > both["se"]


def test_everything_labelled_reduces_to_the_human_counts_and_pearson():
    rng = np.random.default_rng(10)
    items = synthetic(rng, {("m", g): (N, dr, 0.2, 0.2) for g, N, dr in
                            [("a", 300, 0.6), ("b", 250, 0.45), ("c", 400, 0.7), ("d", 200, 0.5)]})
    items["judge_label"] = np.where(rng.random(len(items)) < 0.1, "unparsed", items["judge_label"])
    population = population_of(items)
    rates = CorrectedRates(population, items, ["model", "group"])
    h = (items["human_label"] == "refused")
    truth = h.groupby(items["group"]).mean().to_numpy()
    assert rates.table["dr"].to_numpy() == pytest.approx(truth)
    N = items.groupby("group").size().to_numpy()
    assert rates.table["se"].to_numpy() == pytest.approx(np.sqrt(truth * (1 - truth) / N))
    # homogeneity: Pearson's chi-square of groups x {refused, complied}
    counts = pd.crosstab(items["group"], items["human_label"]).to_numpy()
    chi2, p, dof, _ = sps.chi2_contingency(counts, correction=False)
    disparity = rates.disparity().iloc[0]
    assert disparity["q"] == pytest.approx(chi2) and disparity["q_p"] == pytest.approx(p)
    assert disparity["df"] == dof and disparity["observed_gap"] == pytest.approx(truth.max() - truth.min())
    # deviation test = Wald two-proportion test of the group against the rest of its model
    dev = rates.deviations()
    for i, group in enumerate("abcd"):
        inside, rest = h[items["group"] == group], h[items["group"] != group]
        ref = smp.test_proportions_2indep(inside.sum(), len(inside), rest.sum(), len(rest), method="wald",
                                      compare="diff", correction=False)
        assert dev["p_value"].iloc[i] == pytest.approx(ref.pvalue)
    assert dev["p_adjusted"].to_numpy() == pytest.approx(multipletests(dev["p_value"], method="holm")[1])
    fdr = rates.deviations(correction="fdr_bh")["p_adjusted"].to_numpy()
    assert fdr == pytest.approx(multipletests(dev["p_value"], method="fdr_bh")[1])


def test_judge_error_rates_and_tests_match_scipy_and_statsmodels():
    rng = np.random.default_rng(11)
    strata = {("m", g): (400, 0.6, miss, 0.1) for g, miss in [("a", 0.05), ("b", 0.35), ("c", 0.1)]}
    items = pd.concat([synthetic(rng, strata).assign(language=lang) for lang in ("en", "pt")], ignore_index=True)
    errors = judge_error(items, by=("language", "group"))
    table = errors.table
    for _, row in table.iterrows():
        part = items[(items["language"] == row["language"]) & (items["group"] == row["group"])]
        refused = part[part["human_label"] == "refused"]
        k = int((refused["judge_label"] == "complied").sum())
        assert row["false_compliance"] == pytest.approx(k / len(refused))
        low, high = smp.proportion_confint(k, len(refused), alpha=0.05, method="wilson")
        assert (row["false_compliance_ci_low"], row["false_compliance_ci_high"]) == pytest.approx((low, high))
    tests = errors.tests
    for _, row in tests.iterrows():
        part = items[items["language"] == row["language"]]
        human = "complied" if row["rate"] == "false_refusal" else "refused"
        wrong = "refused" if row["rate"] == "false_refusal" else "complied"
        sub = part[part["human_label"] == human]
        counts = pd.crosstab(sub["group"], sub["judge_label"] == wrong).to_numpy()
        chi2, p, dof, _ = sps.chi2_contingency(counts, correction=False)
        assert row["chi2"] == pytest.approx(chi2) and row["p_value"] == pytest.approx(p) and row["df"] == dof
    assert tests["p_adjusted"].to_numpy() == pytest.approx(multipletests(tests["p_value"], method="holm")[1])
    differs = tests.set_index(["language", "rate"])["differs"]
    assert differs[("en", "false_compliance")] and differs[("pt", "false_compliance")]
    # unequal inclusion probabilities: weights N_s / n_s
    sample = draw(items, lambda key: 0.05 if key[3] == "a" else 0.5, rng)
    weighted = judge_error(sample, by=("language",), population=population_of(items)).table
    plain = judge_error(sample, by=("language",)).table
    refused = items[items["human_label"] == "refused"]
    full = (refused["judge_label"] == "complied").groupby(refused["language"]).mean().to_numpy()
    assert (abs(weighted["false_compliance"] - full) < abs(plain["false_compliance"] - full)).all()


# -- how many labels ----------------------------------------------------------------------------------------
def test_labels_needed_meets_its_half_width_in_simulation():
    rng = np.random.default_rng(12)
    N = 200_000  # the Var(h)/N term labels_needed ignores is then 0.1% of the variance
    for accuracy, half_width in [(0.8, 0.10), (0.9, 0.10), (0.9, 0.05), (0.95, 0.15)]:
        n = labels_needed(half_width, accuracy)
        h = rng.random(N) < 0.5
        f = np.where(rng.random(N) < 1 - accuracy, ~h, h)
        items = pd.DataFrame({"run_id": "r", "model": "m", "language": "en", "group": "g", "kind": "attack",
                              "strategy": "s", "judge_label": np.where(f, "refused", "complied"),
                              "human_label": np.where(h, "refused", "complied")})
        population = population_of(items)
        tables = [CorrectedRates(population, items.iloc[rng.choice(N, n, replace=False)], ["model"]).table
                  for _ in range(100)]
        halves = [(t["ci_high"].iloc[0] - t["ci_low"].iloc[0]) / 2 for t in tables]
        print(f"\nlabels_needed({half_width}, {accuracy}) = {n}: mean half-width {np.mean(halves):.4f}")
        assert np.mean(halves) <= half_width
        assert np.mean(halves) >= 0.85 * half_width  # not wastefully many


def test_labels_needed_table_is_monotone_and_compares_with_labelling_alone():
    table = labels_needed_table()
    print("\n" + table.to_string(index=False))
    assert list(table.columns) == ["half_width", "accuracy 0.70", "accuracy 0.80", "accuracy 0.90",
                                   "accuracy 0.95", "no judge"]
    values = table.drop(columns="half_width").to_numpy()
    assert (np.diff(values[:, :4], axis=1) < 0).all()  # better judge, fewer labels
    assert (np.diff(values, axis=0) < 0).all()  # wider interval, fewer labels
    assert (values[:, 2] < values[:, 4]).all()  # a 90% judge beats labelling alone
    assert (values[:, 0] > values[:, 4]).all()  # plain PPI with a 70% judge does not: power tuning
    tuned = labels_needed_table(power_tuning=True).drop(columns="half_width").to_numpy()
    assert (tuned[:, :4] <= values[:, :4]).all()
    # without the pseudo-observations, a power-tuned judge never needs more labels than people alone
    assert all(labels_needed(hw, acc, pseudo=0, power_tuning=True) <= labels_without_judge(hw)
               for hw in (0.05, 0.1, 0.15) for acc in (0.5, 0.6, 0.7, 0.8))
    assert labels_without_judge(0.1) == 99  # 1.96^2 / 4 / 0.1^2 = 96.04, then t_{n-1}
    with pytest.raises(PPIError):
        labels_needed(0, 0.9)


# -- the PPI authors' package -------------------------------------------------------------------------------
def single_cell(N: int = 3000, n: int = 300):
    """One cell of N answers, n of them labelled at random: (CorrectedRates row with pseudo=0, h, f, pick)."""
    rng = np.random.default_rng(40)
    h = rng.random(N) < 0.7
    f = np.where(rng.random(N) < 0.15, ~h, h)
    items = pd.DataFrame({"run_id": "r", "model": "m", "language": "en", "group": "g", "kind": "attack",
                          "strategy": "s", "judge_label": np.where(f, "refused", "complied"),
                          "human_label": np.where(h, "refused", "complied")})
    pick = rng.choice(N, n, replace=False)
    return CorrectedRates(population_of(items), items.iloc[pick], ["group"], pseudo=0).table.iloc[0], h, f, pick


def test_single_cell_estimate_is_the_textbook_ppi_with_finite_population_correction():
    """The formula the ppi-python comparison below explains its difference with."""
    from scipy import special

    row, h, f, pick = single_cell()
    N, n = len(h), len(pick)
    hs, fs = h[pick].astype(float), f[pick].astype(float)
    theta = f.mean() + (hs - fs).mean()
    assert row["dr"] == pytest.approx(theta, abs=1e-12)
    ours_var = theta * (1 - theta) / N + (1 - n / N) * (hs - fs).var(ddof=1) / n
    assert row["se"] ** 2 == pytest.approx(ours_var, rel=1e-9)
    df = ours_var ** 2 / (((1 - n / N) * (hs - fs).var(ddof=1) / n) ** 2 / (n - 1))
    assert (row["ci_high"] - row["ci_low"]) / 2 == pytest.approx(special.stdtrit(df, 0.975) * np.sqrt(ours_var))


def test_single_cell_estimate_agrees_with_ppi_python():
    """One cell, one stratum, lam = 1: the point estimate is ppi_py.ppi_mean_pointestimate's (the judge's mean
    over all N answers, labelled ones included, + the sample's mean of human - judge) to 1e-9. The intervals
    differ by construction, and the difference is exactly accounted for: ppi_mean_ci is z * sqrt(var0(f)/N +
    var0(h - f)/n) (ddof 0, labelled data independent of the unlabelled); ours, with pseudo=0, is
    t * sqrt(theta (1 - theta)/N + (1 - n/N) var1(h - f)/n): the superpopulation term of the human DR rather
    than the judge's spread, the finite-population correction (the sample is drawn from the N answers
    without replacement), ddof 1 and Student's t at Satterthwaite's degrees of freedom (the test above). At
    N = 3,000 and n = 300 the half-widths agree within 10% (ours 0.044, ppi_py 0.046). ppi-python is not a
    project requirement (it pulls numba and llvmlite); this runs where it is installed (pip install
    ppi-python==0.2.3) and is skipped elsewhere."""
    ppi_py = pytest.importorskip("ppi_py")
    row, h, f, pick = single_cell()
    N, n = len(h), len(pick)
    hs, fs = h[pick].astype(float), f[pick].astype(float)
    estimate = ppi_py.ppi_mean_pointestimate(hs, fs, f.astype(float), lam=1)
    assert float(np.ravel(estimate)[0]) == pytest.approx(row["dr"], abs=1e-9)
    low, high = ppi_py.ppi_mean_ci(hs, fs, f.astype(float), alpha=0.05, lam=1)
    theirs = (float(np.ravel(high)[0]) - float(np.ravel(low)[0])) / 2
    assert theirs == pytest.approx(1.959964 * np.sqrt(f.var() / N + (hs - fs).var() / n), rel=1e-6)
    ours = (row["ci_high"] - row["ci_low"]) / 2
    print(f"\nppi_py half-width {theirs:.5f}, ours {ours:.5f} (pseudo=0), ratio {ours / theirs:.3f}")
    assert abs(ours / theirs - 1) < 0.10
