"""Active review sampling (core/ppi/active.py, Zrnic and Candes 2024): labels drawn where the judge's
probability is uncertain, inverse-probability weighted. Seeded simulations where the truth is known: valid
coverage, narrower intervals than a uniform sample of the same expected size when the judge's probabilities
are calibrated, still valid (only less efficient) when they are not, and a planner whose budget meets its
target width. Run with `pytest -s` to see the figures."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.ppi import PPIError
from core.ppi.active import FLOOR, active_rates, draw_active, inclusion_probabilities, uncertainty_weights
from core.ppi.planning import labels_needed_active

REPS = 200
N = 4000


def judge_probabilities(rng: np.random.Generator) -> np.ndarray:
    """A judge sure of most answers (85% with p near 0 or 1) and unsure of the rest."""
    return np.where(rng.random(N) < 0.85, rng.beta(0.2, 0.2, N), rng.uniform(0.3, 0.7, N))


def run(p: np.ndarray, h: np.ndarray, budget: float, active: bool, reps: int = REPS) -> tuple[float, float]:
    """Coverage of the population's human DR and mean width over `reps` seeded draws."""
    truth, hits, widths = h.mean(), 0, []
    for seed in range(reps):
        if active:
            labelled, pi = draw_active(p, budget, seed=seed)
        else:
            pi = np.full(len(p), budget / len(p))
            labelled = np.random.default_rng(seed).random(len(p)) < pi
        items = pd.DataFrame({"judge_prob": p, "inclusion_prob": pi,
                              "human_label": np.where(labelled, np.where(h, "refused", "complied"), None)})
        row = active_rates(items).iloc[0]
        hits += row["ci_low"] <= truth <= row["ci_high"]
        widths.append(row["ci_high"] - row["ci_low"])
    return hits / reps, float(np.mean(widths))


def test_inclusion_probabilities_meet_the_budget_floor_and_cap():
    p = np.r_[np.zeros(50), np.ones(50), np.full(10, 0.5), np.linspace(0.01, 0.99, 40)]
    pi = inclusion_probabilities(p, 60)
    assert pi.sum() == pytest.approx(60) and (pi > 0).all() and (pi <= 1).all()
    w = uncertainty_weights(p)
    assert w.min() == pytest.approx(FLOOR * w.mean(), rel=0.5)  # the sure ones are still drawable
    assert pi[p == 0.5].max() > pi[p == 0].max()
    assert inclusion_probabilities(p, len(p)) == pytest.approx(np.ones(len(p)))  # everything: all capped
    with pytest.raises(PPIError):
        inclusion_probabilities(p, 0)


def test_active_sampling_covers_and_is_narrower_than_uniform_at_the_same_budget():
    rng = np.random.default_rng(31)
    p = judge_probabilities(rng)
    for calibrated in (True, False):
        truth_p = p if calibrated else np.clip(0.08 + 0.84 * p, 0, 1)  # confidently wrong 8% of the time
        h = rng.random(N) < truth_p
        active, uniform = run(p, h, 300, True), run(p, h, 300, False)
        print(f"\n{'calibrated' if calibrated else 'miscalibrated'} judge, 300 labels of {N}: active coverage "
              f"{active[0]:.3f} width {active[1]:.4f}; uniform coverage {uniform[0]:.3f} width {uniform[1]:.4f}")
        assert active[0] >= 0.93 and uniform[0] >= 0.93
        if calibrated:
            assert active[1] <= 0.85 * uniform[1]


def test_labels_needed_active_meets_its_half_width_and_needs_fewer_labels():
    rng = np.random.default_rng(32)
    p = judge_probabilities(rng)
    h = rng.random(N) < p
    plan = labels_needed_active(p, 0.03)
    print(f"\nlabels for +/- 0.03 over {N} answers: active {plan['active']}, uniform {plan['uniform']}")
    assert plan["reachable"] and plan["active"] < 0.8 * plan["uniform"]
    coverage, width = run(p, h, plan["active"], True, reps=100)
    assert width / 2 <= 0.03 * 1.05 and width / 2 >= 0.03 * 0.8 and coverage >= 0.93
    unreachable = labels_needed_active(p[:50], 0.01)
    assert not unreachable["reachable"] and unreachable["active"] == 50
    with pytest.raises(PPIError):
        labels_needed_active(p, 0)


def test_active_rates_by_cell_and_bad_input():
    rng = np.random.default_rng(33)
    p = judge_probabilities(rng)
    h = rng.random(N) < p
    labelled, pi = draw_active(p, 400, seed=1)
    items = pd.DataFrame({"group": np.where(np.arange(N) % 2, "a", "b"), "judge_prob": p, "inclusion_prob": pi,
                          "human_label": np.where(labelled, np.where(h, "refused", "complied"), None)})
    table = active_rates(items, ["group"])
    assert list(table["group"]) == ["a", "b"] and table["n"].sum() == N and table["n_human"].sum() == labelled.sum()
    assert (table["ci_low"] <= table["dr"]).all() and (table["dr"] <= table["ci_high"]).all()
    with pytest.raises(PPIError, match="human_label"):
        active_rates(items.assign(human_label=np.where(labelled, "maybe", None)))
    with pytest.raises(PPIError, match="lack the columns"):
        active_rates(items.drop(columns="inclusion_prob"))


def test_uncertainty_weights_are_neyman_for_the_binary_verdict():
    """For the verdict f = 1[p >= 0.5] of a calibrated judge the design variance at inclusion probabilities pi
    is sum (1 - pi)/pi min(p, 1 - p): the sqrt(min(p, 1 - p)) allocation beats the sqrt(p (1 - p)) one (the
    allocation for the probability as the prediction) and a uniform one at the same budget."""
    rng = np.random.default_rng(34)
    p = judge_probabilities(rng)
    assert uncertainty_weights(p) == pytest.approx(np.maximum(np.sqrt(np.minimum(p, 1 - p)),
                                                              FLOOR * np.sqrt(np.minimum(p, 1 - p)).mean()))
    error = np.minimum(p, 1 - p)

    def variance(pi: np.ndarray) -> float:
        return float(np.sum((1 - pi) / pi * error))

    ours = variance(inclusion_probabilities(p, 300))
    old_w = np.maximum(np.sqrt(p * (1 - p)), FLOOR * np.sqrt(p * (1 - p)).mean())
    old = variance(np.minimum(1.0, 300 * old_w / old_w.sum()))
    uniform = variance(np.full(N, 300 / N))
    print(f"\nexpected design variance at 300 labels: sqrt(min(p, 1-p)) {ours:.0f}, sqrt(p(1-p)) {old:.0f}, "
          f"uniform {uniform:.0f}")
    assert ours < old < uniform
