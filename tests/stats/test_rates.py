"""core.stats.rates against hand-computed values, brute-force bootstraps, scipy and statsmodels on small cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from core.stats.rates import DefenseRates, MetricsError, headline, scaling
from core.stats import StatsError, adjust_pvalues


def judged_frame(cells: dict[tuple, tuple[int, int]], columns: tuple[str, ...] = ("model", "language", "group"),
                 unparsed: int = 0, errors: int = 0) -> pd.DataFrame:
    """A frame shaped like Store.judged(): per cell key, `refused` refusals and `complied` compliances."""
    rows = []
    for key, (refused, complied) in cells.items():
        base = dict(zip(columns, key)) | {"strategy": "chaining", "scenario_category": "History", "kind": "attack",
                                          "run_id": "r"}
        rows += [base | {"label": "refused", "error": None}] * refused
        rows += [base | {"label": "complied", "error": None}] * complied
        rows += [base | {"label": "unparsed", "error": None}] * unparsed
        rows += [base | {"label": None, "error": "timeout"}] * errors
    frame = pd.DataFrame(rows)
    frame["probe_id"] = [f"p{i}" for i in range(len(frame))]
    frame["completion_id"] = [f"c{i}" for i in range(len(frame))]
    return frame


def test_table_counts_and_dr_by_hand():
    frame = judged_frame({("a", "en", "black"): (3, 1), ("a", "en", "women"): (1, 3)}, unparsed=1, errors=2)
    table = DefenseRates(frame, ["model", "group"]).table
    assert list(table.columns[:8]) == ["model", "group", "n", "refused", "complied", "unparsed", "errors", "dr"]
    assert table[["n", "refused", "complied", "unparsed", "errors"]].values.tolist() == [[4, 3, 1, 1, 2], [4, 1, 3, 1, 2]]
    assert table["dr"].tolist() == [0.75, 0.25]


def test_ci_matches_a_brute_force_bootstrap_of_the_outcomes():
    """Binomial(n, k/n) counts are the resampling of the n outcomes: same interval as resampling them one by one."""
    k, n = 57, 200
    frame = judged_frame({("a", "en", "black"): (k, n - k)})
    row = DefenseRates(frame, ["model"], resamples=4000, seed=1).table.iloc[0]
    outcomes = np.r_[np.ones(k), np.zeros(n - k)]
    rng = np.random.default_rng(7)
    brute = rng.choice(outcomes, size=(4000, n), replace=True).mean(axis=1)
    low, high = np.quantile(brute, [0.025, 0.975])
    assert row["ci_low"] == pytest.approx(low, abs=0.011)
    assert row["ci_high"] == pytest.approx(high, abs=0.011)
    assert row["ci_low"] < k / n < row["ci_high"]
    # and both agree with the normal approximation's width on a cell this size
    half = 1.96 * np.sqrt(k / n * (1 - k / n) / n)
    assert row["ci_high"] - row["ci_low"] == pytest.approx(2 * half, rel=0.12)


def test_ci_is_seeded_and_degenerate_cells_stay_put():
    frame = judged_frame({("a", "en", "black"): (20, 30), ("a", "en", "women"): (0, 10), ("a", "en", "muslim"): (5, 0)})
    first = DefenseRates(frame, ["group"], seed=3).table
    again = DefenseRates(frame, ["group"], seed=3).table
    other = DefenseRates(frame, ["group"], seed=4).table
    pd.testing.assert_frame_equal(first, again)
    assert not first.loc[first["group"] == "black", "ci_low"].equals(other.loc[other["group"] == "black", "ci_low"]) or \
        not first.loc[first["group"] == "black", "ci_high"].equals(other.loc[other["group"] == "black", "ci_high"])
    by_group = first.set_index("group")
    assert (by_group.loc["women", "ci_low"], by_group.loc["women", "ci_high"]) == (0.0, 0.0)
    assert (by_group.loc["muslim", "ci_low"], by_group.loc["muslim", "ci_high"]) == (1.0, 1.0)


def test_ci_coverage_is_close_to_95_percent():
    """400 cells of 300 prompts drawn at p = 0.3: about 95% of their CIs hold 0.3."""
    rng = np.random.default_rng(11)
    counts = rng.binomial(300, 0.3, size=400)
    frame = judged_frame({(f"m{i}", "en", "black"): (int(k), int(300 - k)) for i, k in enumerate(counts)})
    table = DefenseRates(frame, ["model"]).table
    coverage = ((table["ci_low"] <= 0.3) & (0.3 <= table["ci_high"])).mean()
    assert 0.91 <= coverage <= 0.985


def test_deviation_by_hand_and_its_ci_resamples_cell_and_model_jointly():
    frame = judged_frame({("a", "en", "black"): (8, 2), ("a", "en", "women"): (2, 8), ("a", "en", "muslim"): (5, 5)})
    dev = DefenseRates(frame, ["model", "language", "group"], resamples=4000).deviations().set_index("group")
    assert dev["baseline_dr"].tolist() == pytest.approx([0.5, 0.5, 0.5])
    assert dev.loc["black", "deviation"] == pytest.approx(0.3)
    assert dev.loc["women", "deviation"] == pytest.approx(-0.3)
    assert dev.loc["muslim", "deviation"] == pytest.approx(0.0)
    # Brute force: resample each group's 10 outcomes, rebuild the model mean from the same resample.
    rng = np.random.default_rng(5)
    outcomes = {"black": [1] * 8 + [0] * 2, "women": [1] * 2 + [0] * 8, "muslim": [1] * 5 + [0] * 5}
    draws = {g: rng.choice(v, size=(4000, 10)).mean(axis=1) for g, v in outcomes.items()}
    model_mean = np.mean(list(draws.values()), axis=0)
    joint = np.quantile(draws["black"] - model_mean, [0.025, 0.975])
    assert dev.loc["black", "dev_ci_low"] == pytest.approx(joint[0], abs=0.03)
    assert dev.loc["black", "dev_ci_high"] == pytest.approx(joint[1], abs=0.03)
    # Resampling the model mean independently of the cell would give a wider interval: that is the mistake avoided.
    independent = draws["black"] - np.mean([rng.choice(v, size=(4000, 10)).mean(axis=1) for v in outcomes.values()], axis=0)
    width_independent = np.subtract(*np.quantile(independent, [0.975, 0.025]))
    assert dev.loc["black", "dev_ci_high"] - dev.loc["black", "dev_ci_low"] < 0.9 * width_independent


def test_deviation_ci_coverage_when_groups_are_equal():
    """300 models with five equal groups: the true deviation is 0, and ~95% of the joint CIs hold it.

    (Resampling the model mean apart from the cell would cover 0 far more often than 95%.)
    """
    rng = np.random.default_rng(2)
    cells = {}
    for m in range(300):
        for g in ("black", "women", "muslim", "jewish", "lgbtq"):
            k = int(rng.binomial(200, 0.4))
            cells[(f"m{m}", "en", g)] = (k, 200 - k)
    dev = DefenseRates(judged_frame(cells), ["model", "language", "group"]).deviations()
    coverage = ((dev["dev_ci_low"] <= 0) & (0 <= dev["dev_ci_high"])).mean()
    assert 0.925 <= coverage <= 0.97
    # Holm keeps the family-wise error: with no true difference, almost no cell is flagged.
    assert dev["significant"].sum() <= 3


def test_p_values_match_scipy_and_statsmodels_and_holm_flags_the_right_group():
    cells = {("a", "en", "black"): (60, 40), ("a", "en", "women"): (20, 80), ("a", "en", "muslim"): (40, 60),
             ("a", "en", "jewish"): (42, 58)}
    dev = DefenseRates(judged_frame(cells), ["model", "language", "group"]).deviations().set_index("group")
    total_k, total_n = 162, 400
    for group, (k, c) in cells.items():
        group = group[2]
        table = [[k, c], [total_k - k, total_n - (k + c) - (total_k - k)]]
        chi2 = sps.chi2_contingency(table, correction=False)
        z = proportions_ztest([k, total_k - k], [k + c, total_n - k - c])
        assert dev.loc[group, "p_value"] == pytest.approx(chi2.pvalue, rel=1e-9)
        assert dev.loc[group, "p_value"] == pytest.approx(z[1], rel=1e-9)
    expected = multipletests(dev["p_value"].to_numpy(), method="holm")
    assert dev["p_adjusted"].to_numpy() == pytest.approx(expected[1])
    assert dev["significant"].to_dict() == {"black": True, "jewish": False, "muslim": False, "women": True}


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_adjust_pvalues_matches_statsmodels(method):
    rng = np.random.default_rng(3)
    p = np.r_[rng.uniform(0, 0.05, 8), rng.uniform(0, 1, 30), [0.0, 1.0, 0.01, 0.01]]
    assert adjust_pvalues(p, method) == pytest.approx(multipletests(p, method=method)[1])
    with_nan = np.r_[p[:5], np.nan, p[5:10]]
    adjusted = adjust_pvalues(with_nan, method)
    assert np.isnan(adjusted[5])
    assert np.delete(adjusted, 5) == pytest.approx(multipletests(np.delete(with_nan, 5), method=method)[1])


def test_disparity_gap_ratio_std_and_homogeneity_against_scipy():
    cells = {("a", "en", "black"): (30, 70), ("a", "en", "women"): (10, 90), ("a", "en", "muslim"): (20, 80),
             ("b", "en", "black"): (50, 50), ("b", "en", "women"): (48, 52), ("b", "en", "muslim"): (51, 49)}
    rates = DefenseRates(judged_frame(cells), ["model", "language", "group"])
    disparity = rates.disparity().set_index("model")
    a = disparity.loc["a"]
    assert (a["best"], a["worst"]) == ("black", "women")
    assert (a["best_dr"], a["worst_dr"], a["observed_gap"]) == pytest.approx((0.3, 0.1, 0.2))
    assert a["min_max_ratio"] == pytest.approx(1 / 3)
    assert a["std"] == pytest.approx(np.std([0.3, 0.1, 0.2]))
    assert a["dr"] == pytest.approx(0.2) and a["mean_dr"] == pytest.approx(0.2) and a["groups"] == 3
    assert a["gap_ci_low"] < a["gap"] < a["observed_gap"] < a["gap_ci_high"]
    for model in ("a", "b"):
        table = [[k, c] for key, (k, c) in cells.items() if key[0] == model]
        expected = sps.chi2_contingency(table, correction=False)
        assert disparity.loc[model, "q"] == pytest.approx(expected.statistic)
        assert disparity.loc[model, "df"] == expected.dof == 2
        assert disparity.loc[model, "q_p"] == pytest.approx(expected.pvalue)
    assert disparity["q_p_adjusted"].to_numpy() == pytest.approx(multipletests(disparity["q_p"], method="holm")[1])
    assert disparity["heterogeneous"].to_dict() == {"a": True, "b": False}
    assert disparity.loc["a", "below"] == ["women"] and disparity.loc["b", "below"] == []


def test_rank_agreement_against_scipy():
    en = {"black": 0.5, "women": 0.2, "muslim": 0.4, "jewish": 0.3, "lgbtq": 0.6, "asian": 0.1}
    pt = {"black": 0.45, "women": 0.25, "muslim": 0.3, "jewish": 0.35, "lgbtq": 0.7, "elderly": 0.9}
    cells = {("a", "en", g): (int(v * 100), 100 - int(v * 100)) for g, v in en.items()}
    cells |= {("a", "pt", g): (int(v * 100), 100 - int(v * 100)) for g, v in pt.items()}
    cells |= {("b", "en", g): (int(v * 100), 100 - int(v * 100)) for g, v in en.items()}
    cells |= {("b", "pt", g): (100 - int(v * 100), int(v * 100)) for g, v in en.items()}
    agreement = DefenseRates(judged_frame(cells), ["model", "language", "group"], ci=False).rank_agreement()
    a, b = agreement.set_index("model").loc["a"], agreement.set_index("model").loc["b"]
    shared = ["black", "women", "muslim", "jewish", "lgbtq"]
    assert a["shared"] == 5 and (a["a"], a["b"]) == ("en", "pt")
    assert a["spearman"] == pytest.approx(sps.spearmanr([en[g] for g in shared], [pt[g] for g in shared]).statistic)
    assert a["kendall"] == pytest.approx(sps.kendalltau([en[g] for g in shared], [pt[g] for g in shared]).statistic)
    assert a["spearman_p"] == pytest.approx(sps.spearmanr([en[g] for g in shared], [pt[g] for g in shared]).pvalue)
    assert b["shared"] == 6 and b["spearman"] == pytest.approx(-1.0) and b["kendall"] == pytest.approx(-1.0)


def test_pivot_puts_attack_next_to_control():
    frame = pd.concat([judged_frame({("a", "en", "black"): (6, 4)}).assign(kind="attack"),
                       judged_frame({("a", "en", "black"): (1, 9)}).assign(kind="control")])
    wide = DefenseRates(frame, ["model", "group", "kind"]).pivot("kind")
    assert wide.loc[0, ["dr_attack", "dr_control", "n_attack", "n_control"]].tolist() == [0.6, 0.1, 10, 10]
    assert {"ci_low_attack", "ci_high_control"} <= set(wide.columns)


def test_scaling_slope_and_spearman_per_family():
    disparity = pd.DataFrame({"model": ["s", "m", "l", "x"], "language": "en", "std": [0.08, 0.06, 0.03, 0.05]})
    targets = pd.DataFrame({"target_id": ["s", "m", "l", "x"], "family": ["f", "f", "f", "g"],
                            "size_b": [1.0, 10.0, 100.0, 7.0]})
    points = scaling(disparity, targets).set_index("model")
    slope = np.polyfit(np.log10([1, 10, 100]), [0.08, 0.06, 0.03], 1)[0]
    assert points.loc["s", "family_slope_per_10x"] == pytest.approx(slope) == pytest.approx(-0.025)
    assert points.loc["l", "family_spearman"] == pytest.approx(-1.0)
    assert points.loc["x", "family_models"] == 1 and np.isnan(points.loc["x", "family_slope_per_10x"])


def test_headline_keeps_its_columns_and_values():
    frame = judged_frame({("a", "en", "black"): (3, 1), ("a", "en", "women"): (1, 3)})
    head = headline(frame)
    assert list(head.columns) == ["model", "language", "n", "dr", "errors", "error_share", "note"]
    assert head.iloc[0][["n", "dr"]].tolist() == [8, 0.5]
    assert head.iloc[0][["errors", "error_share", "note"]].tolist() == [0, 0.0, ""]


def test_headline_says_when_a_model_has_many_errors_or_only_errors():
    counts = pd.DataFrame({"model": ["a", "a", "b", "c"], "language": "en",
                           "group": ["black", "women", "black", "black"], "refused": [6, 2, 0, 9], "complied": [1, 1, 0, 1], "unparsed": 0, "errors": [3, 2, 5, 0]})
    head = headline(counts).set_index("model")
    assert head.loc["a", "error_share"] == pytest.approx(5 / 15)
    assert head.loc["a", "note"] == "33% of completions are errors: the DR rests on 10 answers"
    assert head.loc["b", "note"] == "no Defense Rate: all 5 completions are errors" and np.isnan(head.loc["b", "dr"])
    assert head.loc["c", "note"] == "" and head.loc["c", "errors"] == 0


def test_bad_groupings_say_what_is_allowed():
    frame = judged_frame({("a", "en", "black"): (1, 1)})
    with pytest.raises(MetricsError, match="choose from"):
        DefenseRates(frame, ["colour"])
    with pytest.raises(MetricsError, match="not among the grouping columns"):
        DefenseRates(frame, ["model", "group"]).deviations(baseline=["language"])
    with pytest.raises(StatsError, match="correction"):
        adjust_pvalues([0.1], "bonferonni")


def test_default_baseline_is_the_model_and_the_whole_table_when_only_models_are_asked():
    frame = judged_frame({("a", "en", "black"): (3, 1), ("b", "en", "black"): (1, 3)})
    by_model = DefenseRates(frame, ["model"]).deviations()
    assert by_model["baseline_dr"].tolist() == [0.5, 0.5] and by_model["deviation"].tolist() == [0.25, -0.25]
    by_group = DefenseRates(frame, ["model", "group"]).deviations()
    assert by_group["deviation"].tolist() == [0.0, 0.0] and by_group["p_value"].isna().all()


def test_bootstrap_does_not_depend_on_the_number_of_cores(monkeypatch):
    """Draws run in blocks with their own seeds, one thread per core: the same CIs with 1 core or 4."""
    rng = np.random.default_rng(3)
    cells = 300  # several blocks
    frame = pd.DataFrame({"model": [f"m{i % 3}" for i in range(cells)], "group": [f"g{i}" for i in range(cells)],
                          "refused": rng.integers(0, 50, cells), "complied": rng.integers(0, 50, cells),
                          "unparsed": 0, "errors": 0})
    tables = []
    for cores in (1, 4):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        rates = DefenseRates(frame, ["model", "group"])
        tables.append(rates.deviations(["model"]))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert tables[0]["ci_low"].notna().all() and (tables[0]["ci_low"] <= tables[0]["dr"]).all()
