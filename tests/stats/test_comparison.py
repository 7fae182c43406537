"""Paired comparison statistics (core/stats/comparison.py) where the truth is known by construction.

McNemar's exact test is checked against statsmodels; Newcombe's paired interval by its coverage over seeded
tables; the gate by how often it fires on two runs of one model (at most alpha, 200 repetitions) and that it
fires on a group made worse by construction.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar

from core.stats.comparison import PAIR_COLUMNS, CompareError, compare, pairwise_gaps
from core.stats import mcnemar_exact, newcombe_paired

GROUPS = [f"g{i}" for i in range(8)]


def paired_counts(base: np.ndarray, cand: np.ndarray, frame: pd.DataFrame) -> pd.DataFrame:
    """2x2 tables per (language, group, kind) from per-probe refusals (booleans) of two versions."""
    rows = frame.assign(both_refused=base & cand, base_only=base & ~cand, cand_only=~base & cand,
                        neither=~base & ~cand)
    return rows.groupby(["language", "group", "kind"], as_index=False)[list(PAIR_COLUMNS)].sum()


def probes(per_group: int = 60, languages=("en", "pt"), controls: int = 20) -> pd.DataFrame:
    rows = [(lang, g, "attack") for lang in languages for g in GROUPS for _ in range(per_group)]
    rows += [(lang, g, "control") for lang in languages for g in GROUPS for _ in range(controls)]
    return pd.DataFrame(rows, columns=["language", "group", "kind"])


def two_runs(frame: pd.DataFrame, rng: np.random.Generator, worse: dict[str, float] | None = None):
    """Each probe has its own refusal propensity (so two answers to one probe are correlated, as with sampled
    decoding); the candidate's propensity is lowered by `worse[group]` on that group's attack probes."""
    propensity = rng.beta(2, 2, size=len(frame))
    base = rng.random(len(frame)) < propensity
    shifted = propensity.copy()
    for group, drop in (worse or {}).items():
        hit = ((frame["group"] == group) & (frame["kind"] == "attack")).to_numpy()
        shifted[hit] = np.clip(shifted[hit] - drop, 0, 1)
    cand = rng.random(len(frame)) < shifted
    return base, cand


def test_mcnemar_exact_matches_statsmodels():
    for b in range(0, 25, 3):
        for c in range(0, 25, 4):
            expected = mcnemar([[10, b], [c, 7]], exact=True).pvalue
            assert mcnemar_exact(np.array([b]), np.array([c]))[0] == pytest.approx(expected, abs=1e-12), (b, c)


def test_newcombe_interval_covers_the_true_paired_change_at_its_nominal_rate():
    rng = np.random.default_rng(0)
    cells, n = 4000, 40
    # true cell probabilities of (both, base only, cand only, neither), varied per table
    p = rng.dirichlet([4, 1.5, 1, 3], size=cells)
    tables = np.array([rng.multinomial(n, row) for row in p])
    low, high = newcombe_paired(*tables.T)
    truth = p[:, 2] - p[:, 1]
    coverage = float(np.mean((low <= truth) & (truth <= high)))
    assert 0.935 <= coverage <= 0.975, coverage
    # and the point estimate sits inside its interval, bounded by [-1, 1]
    change = (tables[:, 2] - tables[:, 1]) / n
    assert np.all((low <= change + 1e-12) & (change <= high + 1e-12)) and low.min() >= -1 and high.max() <= 1


def test_a_group_made_worse_is_flagged_and_the_others_are_not():
    frame = probes(per_group=80)
    base, cand = two_runs(frame, np.random.default_rng(1), worse={"g3": 0.35})
    result = compare(paired_counts(base, cand, frame), "v1", "v2")
    flagged = result.regressions(0.1)
    assert set(flagged["group"]) == {"g3"} and set(flagged["language"]) == {"en", "pt"}
    assert (flagged["change"] < -0.2).all() and (flagged["ci_high"] < 0).all()
    gate = result.gate(fail_on_regression=0.1)
    assert gate.failed and gate.exit_code == 1 and len(gate.reasons) == 2
    assert all("g3" in reason for reason in gate.reasons)
    assert not result.gate(fail_on_regression=0.5).failed  # the drop is about 0.3, not more than 0.5
    assert result.gaps.set_index("language").loc["en", "change"] > 0.15  # one group fell behind: the gap grew
    md = result.markdown(gate)
    assert "**Gate: FAILED**" in md and md.index("g3") < md.index("g0")  # flagged rows first


def test_over_refusal_on_control_probes_is_flagged():
    frame = probes(per_group=30, languages=("en",), controls=60)
    rng = np.random.default_rng(2)
    base = rng.random(len(frame)) < np.where(frame["kind"] == "control", 0.1, 0.5)
    cand = base | ((frame["kind"] == "control") & (frame["group"] == "g5") & (rng.random(len(frame)) < 0.6)).to_numpy()
    result = compare(paired_counts(base, cand, frame), "v1", "v2")
    assert set(result.over_refusals()["group"]) == {"g5", "all groups"}  # the group, and its language pooled
    assert result.regressions().empty


@pytest.mark.slow
def test_the_gate_fires_on_two_runs_of_one_model_at_most_alpha():
    frame = probes(per_group=40)
    fired = fired_gap = 0
    repetitions = 200
    for seed in range(repetitions):
        base, cand = two_runs(frame, np.random.default_rng(1000 + seed))
        result = compare(paired_counts(base, cand, frame), "run1", "run2", resamples=500, seed=seed)
        fired += result.gate(fail_on_regression=0.0).failed
        fired_gap += result.gate(fail_on_gap_increase=0.0).failed
    print(f"gate fired {fired}/{repetitions} (regression), {fired_gap}/{repetitions} (gap)")
    assert fired / repetitions <= 0.05
    assert fired_gap / repetitions <= 0.05


def test_pairwise_gap_matrix_names_the_fairer_model():
    frame = probes(per_group=80, languages=("en",), controls=0)
    rng = np.random.default_rng(3)
    fair = rng.random(len(frame)) < 0.6
    unfair_p = np.where(frame["group"].isin(["g0", "g1"]), 0.2, 0.8)
    unfair = rng.random(len(frame)) < unfair_p
    parts = []
    for (name_a, a), (name_b, b) in [(("fair", fair), ("unfair", unfair)), (("fair", fair), ("fair2", fair))]:
        parts.append(paired_counts(a, b, frame).assign(base=name_a, candidate=name_b))
    matrix = pairwise_gaps(pd.concat(parts)).set_index(["base", "candidate"])
    assert matrix.loc[("fair", "unfair"), "change"] > 0.4 and matrix.loc[("fair", "unfair"), "significant"]
    assert matrix.loc[("fair", "fair2"), "change"] == 0 and not matrix.loc[("fair", "fair2"), "significant"]


def test_nothing_shared_is_a_clear_error():
    empty = pd.DataFrame(columns=["language", "group", "kind", *PAIR_COLUMNS])
    with pytest.raises(CompareError, match="share no judged probe"):
        compare(empty, "a", "b")
    with pytest.raises(CompareError, match="needs 'group'"):
        compare(empty, "a", "b", by=("language",))


def test_cells_without_a_test_are_said_and_keep_the_gate_from_passing():
    """A cell with no readable pair has no p-value: "nothing got worse" and a passed gate would vouch for it. It is
    listed with why, and a gate that looks at it is not passed (nor failed: nothing was found)."""
    frame = probes(per_group=30, languages=("en",))
    base, cand = two_runs(frame, np.random.default_rng(3))
    counts = paired_counts(base, cand, frame)
    empty = (counts["group"] == "g2") & (counts["kind"] == "attack")
    counts.loc[empty, list(PAIR_COLUMNS)] = 0  # every pair of this cell unreadable
    result = compare(counts, "v1", "v2")
    untested = result.untested()
    assert list(zip(untested["group"], untested["kind"])) == [("g2", "attack")]
    assert "no probe both versions answered readably" in untested.iloc[0]["why"]
    total = len(result.cells) + len(result.controls) + len(result.gaps)
    assert result.untested_summary().startswith(f"1 of the {total} compared cells could not be tested: en / g2 attack")
    gate = result.gate(fail_on_regression=0.1)
    assert not gate.failed and not gate.passed and gate.untested and gate.exit_code == 2
    assert "Gate: passed" not in result.markdown(gate) and "could not be tested" in result.markdown(gate)
    gap_only = result.gate(fail_on_gap_increase=0.1)  # the gap is tested (seven groups left): this gate passes
    assert gap_only.passed and gap_only.exit_code == 0
    whole = compare(paired_counts(base, cand, frame), "v1", "v2")
    assert whole.untested().empty and whole.untested_summary() == ""
