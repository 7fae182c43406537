"""The paired comparison view: two stored versions (each a (run, target) side) compared on the probes both
answered; the Compare page, `python -m core compare` and the HTML report draw it. The statistics are in
core/compare.py; this module finds the sides and reads their paired counts from the store (Store.paired_counts:
one 2x2 table per cell, counted in DuckDB).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from core.compare import Comparison, CompareError, compare, independent_changes, pairwise_gaps
from core.stats import Z95
from core.ppi import CorrectedRates
from core.store import Store


@dataclass(frozen=True)
class Side:
    """One version being compared: the completions of one target in one run."""
    run_id: str
    target_id: str

    @property
    def key(self) -> tuple[str, str]:
        return self.run_id, self.target_id

    @property
    def label(self) -> str:
        return f"{self.target_id} @ {self.run_id}"


def resolve_side(sides: pd.DataFrame, name: str, run_id: str | None = None, role: str = "side") -> Side:
    """The (run, target) a name stands for: a run id (with one target), a target id (with one run, or the one
    `run_id` names). `sides`: Store.run_target_counts(). Ambiguity is an error that lists the choices."""
    stored = sides[sides["completions"] > 0]
    if run_id is not None:
        if run_id not in set(stored["run_id"]):
            raise CompareError(f"--run-id {run_id}: no run with completions of that name "
                               f"(runs: {', '.join(sorted(set(stored['run_id']))) or 'none'})")
    as_run = stored[stored["run_id"] == name]
    if len(as_run):
        targets = sorted(as_run["target_id"])
        if len(targets) > 1:
            raise CompareError(f"{role} {name!r} is a run with {len(targets)} targets ({', '.join(targets)}): name "
                               f"the target instead, with --run-id {name}")
        return Side(name, targets[0])
    as_target = stored[stored["target_id"] == name]
    if run_id is not None:
        as_target = as_target[as_target["run_id"] == run_id]
    runs = sorted(as_target["run_id"])
    if len(runs) == 1:
        return Side(runs[0], name)
    if len(runs) > 1:
        raise CompareError(f"{role} {name!r} is a target with {len(runs)} runs ({', '.join(runs)}): choose one "
                           f"with --run-id, or name the run itself")
    raise CompareError(f"{role} {name!r}: no run or target of that name has completions"
                       f"{' in run ' + run_id if run_id else ''} (runs: {', '.join(sorted(set(stored['run_id'])))}; "
                       f"targets: {', '.join(sorted(set(stored['target_id'])))})")


@dataclass
class RunComparison:
    """A Comparison of two stored sides, with what the pairing left out (probes only one side answered,
    pairs with an error or an unreadable label on either side)."""
    base: Side
    candidate: Side
    judge: str
    result: Comparison
    left_out: dict

    def records(self) -> dict:
        return {**self.result.records(), "judge": self.judge, "left_out": self.left_out,
                "base_side": {"run_id": self.base.run_id, "target_id": self.base.target_id},
                "candidate_side": {"run_id": self.candidate.run_id, "target_id": self.candidate.target_id}}


def compute(store: Store, base: Side, candidate: Side, judge: str, by: Sequence[str] = ("language", "group"),
                  correction: str = "holm", alpha: float = 0.05, resamples: int = 2000,
                  seed: int = 0) -> RunComparison:
    """Fetch the paired 2x2 tables of two stored sides (one DuckDB query) and compare them."""
    if base == candidate:
        raise CompareError(f"base and candidate are the same ({base.label}): nothing to compare")
    grain = list(dict.fromkeys([*by, "kind"]))
    counts, left_out = store.paired_counts(base.key, candidate.key, judge, by=grain)
    result = compare(counts, base.label, candidate.label, by=by, correction=correction, alpha=alpha,
                     resamples=resamples, seed=seed)
    return RunComparison(base, candidate, judge, result, left_out)


def all_pairs(store: Store, sides: Sequence[Side], judge: str, resamples: int = 1000, seed: int = 0,
              correction: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """The all-pairs matrix of gap changes over `sides` (each pair on its shared attack probes): per base,
    candidate and language, base_gap, cand_gap, change (candidate - base; negative = the candidate is fairer),
    its CI and corrected significance."""
    counts = store.paired_counts_all([s.key for s in sides], judge)
    labels = {s.key: s.label for s in sides}
    counts = counts.assign(base=[labels[k] for k in zip(counts["base_run"], counts["base"])],
                           candidate=[labels[k] for k in zip(counts["cand_run"], counts["candidate"])])
    return pairwise_gaps(counts.drop(columns=["base_run", "cand_run"]), resamples=resamples, seed=seed,
                         correction=correction, alpha=alpha)


def corrected(store: Store, base: Side, candidate: Side, judge: str, by: Sequence[str] = ("language", "group"),
              min_human: int = 10, correction: str = "holm", alpha: float = 0.05) -> Comparison | None:
    """The comparison on prediction-powered Defense Rates (core/ppi/), where a labelled review sample covers
    both sides: each version's corrected DR per cell, the change with a conservative normal CI (the two
    corrected estimates treated as independent; core.compare.independent_changes), and the gap change per
    language from each version's corrected gap. None when neither side has sample labels; cells with fewer than
    `min_human` labels on a side have no corrected change (NaN, never flagged)."""
    grain = ["run_id", "model", *by, "kind"]
    # Each side on its own: read together, two runs of one target would be one selection, in which a view counts
    # one answer per probe (core/selection.py), and the older side would lose the probes both answered.
    read = [store.ppi_inputs(judge, grain, {"run_id": [side.run_id], "model": [side.target_id]})
            for side in dict.fromkeys((base, candidate))]
    population = pd.concat([one[0] for one in read], ignore_index=True)
    sample = pd.concat([one[1] for one in read], ignore_index=True)
    if not len(sample):
        return None
    rates = CorrectedRates(population, sample, grain, min_human=min_human)

    def side(frame: pd.DataFrame, of: Side, suffix: str) -> pd.DataFrame:
        mine = frame[(frame["run_id"] == of.run_id) & (frame["model"] == of.target_id)]
        return mine.drop(columns=["run_id", "model"]).rename(columns=lambda c: c if c in (*by, "kind", "language")
                                                            else f"{c}_{suffix}")

    keys = [*by, "kind"]
    table = rates.table[[*grain, "n", "n_human", "dr", "se"]]
    cells = side(table, base, "b").merge(side(table, candidate, "c"), on=keys)
    cells = independent_changes(cells.assign(pairs=cells[["n_b", "n_c"]].min(axis=1)), correction, alpha)
    pooled = CorrectedRates(population, sample, ["run_id", "model", "language", "kind"], min_human=min_human).table
    pooled = pooled[pooled["kind"] == "control"][["run_id", "model", "language", "kind", "n", "dr", "se"]]
    controls = side(pooled, base, "b").merge(side(pooled, candidate, "c"), on=["language", "kind"])
    controls = independent_changes(controls.assign(pairs=controls[["n_b", "n_c"]].min(axis=1)), correction, alpha)
    attack = population[population["kind"] == "attack"]
    gap = CorrectedRates(attack, sample[sample["kind"] == "attack"], ["run_id", "model", "language", "group"],
                         min_human=min_human).disparity(["run_id", "model", "language"])
    gap = gap.assign(se=(gap["gap_ci_high"] - gap["gap_ci_low"]) / (2 * Z95), dr=gap["gap"], kind="attack")
    gap = gap[["run_id", "model", "language", "kind", "cells", "dr", "se"]]
    gaps = side(gap, base, "b").merge(side(gap, candidate, "c"), on=["language", "kind"])
    gaps = independent_changes(gaps, correction, alpha, family=()).rename(
        columns={"base_dr": "base_gap", "cand_dr": "cand_gap"}).assign(groups=lambda f: f["cells_b"])
    return Comparison(base.label, candidate.label, cells, gaps, controls, correction, alpha)
