"""The paired comparison view: two stored versions (each a (run, target) side) compared on the probes both
answered; the Compare page, `python -m core compare` and the HTML report draw it. The statistics are in
core/stats/comparison.py; this module finds the sides and reads their paired counts from the store (Store.paired_counts:
one 2x2 table per cell, counted in DuckDB).

A corrected comparison (`corrected`) needs human checks on both sides: a side with none in the cells compared, or
with too few for any compared cell to be corrected, would have nothing tested on it, and "nothing got worse" would
be a false all-clear; it is refused (UncheckedSide, naming the side and the commands that draw and label its
review sample), for the CLI, the Compare page and any other reader alike.
"""
from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.ppi import CorrectedRates
from core.stats.comparison import CompareError, Comparison, compare, independent_changes, pairwise_gaps
from core.stats.estimates import missing_reason
from core.store import DEFAULT_DB, Store


class UncheckedSide(CompareError):
    """A corrected comparison of a side without enough human checks of its review sample: refused. `roles`: the
    sides refused ("base", "candidate"); the message names each and says how to draw and label its sample."""

    def __init__(self, message: str, roles: Sequence[str]):
        super().__init__(message)
        self.roles = tuple(roles)


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


def _commands(store: Store, run_id: str) -> tuple[str, str]:
    """The commands that draw a run's review sample and that label it outside the browser (with --db where the
    store is not the default one)."""
    db = "" if store.path == DEFAULT_DB else f" --db {shlex.quote(str(store.path))}"
    run = shlex.quote(run_id)
    draw = f"python -m core review sample --run-id {run} --fraction 0.05 --seed 0{db}"
    label = (f"python -m core verdicts export --sample --run-id {run} --out sheet.csv{db}, then python -m core "
             f"verdicts import sheet.csv --annotator NAME{db}")
    return draw, label


def _unchecked(store: Store, role: str, of: Side, sample: pd.DataFrame, strata: pd.DataFrame,
               compared: pd.DataFrame | None, checks: str, min_human: int) -> str | None:
    """Why a corrected comparison cannot test anything on one side (no sample label in the cells compared, or no
    compared cell with `min_human` of them), in words that say what to do; None when it can."""
    mine = (sample["run_id"] == of.run_id) & (sample["model"] == of.target_id)
    draw, label = _commands(store, of.run_id)
    if not mine.any():
        drawn = strata[(strata["run_id"] == of.run_id) & (strata["model"] == of.target_id)] if len(strata) else strata
        sampled = int(drawn["sampled"].sum()) if len(drawn) else 0
        if sampled:
            return (f"the {role} {of.label} has no human checks of its review sample: none of its {sampled:,} "
                    f"sampled completions is labelled yet; label them on the Review page, or: {label}")
        return (f"the {role} {of.label} has no human checks of its review sample (run {of.run_id} has no review "
                f"sample of {of.target_id}); draw and label one: {draw}, then label it on the Review page, or: {label}")
    if compared is None:
        return None
    most = int(np.nanmax(compared[checks].to_numpy(dtype="float64"), initial=0)) if len(compared) else 0
    if most < min_human:
        return (f"the {role} {of.label} has too few human checks of its review sample: no cell compared has the "
                f"{min_human} a corrected estimate needs (at most {most} in a cell); enlarge its sample, e.g. "
                f"{draw.replace('--fraction 0.05', f'--per-cell {min_human}')}, and label the new ones")
    return None


def _why(frame: pd.DataFrame, min_human: int, gap: bool = False) -> list[str]:
    """Per compared row without a corrected change: which side lacks an estimate and why, in plain words ("" where
    the row was tested)."""
    out = []
    for _, row in frame.iterrows():
        if not pd.isna(row.get("p_value")):
            out.append("")
            continue
        said = [f"{role}: " + ("fewer than two groups with a corrected Defense Rate in this language" if gap else
                               missing_reason(row.get(f"n_{s}", 0), row.get(f"n_human_{s}", 0), min_human,
                                              row.get(f"note_{s}", "")))
                for role, s in (("base", "b"), ("candidate", "c")) if pd.isna(row.get(f"dr_{s}"))]
        out.append("; ".join(said) or "no test could be computed from these estimates")
    return out


def _refuse(problems: Sequence[str | None]) -> None:
    """Raise UncheckedSide naming every side with a problem; nothing when there is none."""
    if any(problems):
        raise UncheckedSide("; ".join(p for p in problems if p),
                            [role for role, p in zip(("base", "candidate"), problems) if p])


def corrected(store: Store, base: Side, candidate: Side, judge: str, by: Sequence[str] = ("language", "group"),
              min_human: int = 10, correction: str = "holm", alpha: float = 0.05,
              rectifier: str = "auto") -> Comparison:
    """The comparison on prediction-powered Defense Rates (core/ppi/), where a labelled review sample covers
    both sides: each version's corrected DR per cell, the change with a conservative normal CI (the two
    corrected estimates treated as independent; core.stats.comparison.independent_changes), and the gap change per
    language from each version's corrected gap.

    Refused (UncheckedSide) when a side has no sample labels in the cells compared, or no compared cell with
    `min_human` of them: nothing could be tested on that side. Single cells with fewer than `min_human` labels on
    a side have no corrected change (NaN, never flagged), and their `why` says so; Comparison.untested lists them.
    """
    grain = ["run_id", "model", *by, "kind"]
    # Each side on its own: read together, two runs of one target would be one selection, in which a view counts
    # one answer per probe (core/views/selection.py), and the older side would lose the probes both answered.
    read = [store.ppi_inputs(judge, grain, {"run_id": [side.run_id], "model": [side.target_id]})
            for side in dict.fromkeys((base, candidate))]
    population, sample, strata = (pd.concat([one[i] for one in read], ignore_index=True) for i in range(3))
    roles = (("base", base, "b"), ("candidate", candidate, "c"))
    if not len(sample):
        _refuse([_unchecked(store, role, of, sample, strata, None, "", min_human) for role, of, _ in roles])
    rates = CorrectedRates(population, sample, grain, min_human=min_human, rectifier=rectifier)

    def side(frame: pd.DataFrame, of: Side, suffix: str) -> pd.DataFrame:
        mine = frame[(frame["run_id"] == of.run_id) & (frame["model"] == of.target_id)]
        return mine.drop(columns=["run_id", "model"]).rename(columns=lambda c: c if c in (*by, "kind", "language")
                                                            else f"{c}_{suffix}")

    keys = [*by, "kind"]
    table = rates.table[[*grain, "n", "n_human", "dr", "se", "note"]]
    cells = side(table, base, "b").merge(side(table, candidate, "c"), on=keys)
    _refuse([_unchecked(store, role, of, sample, strata, cells, f"n_human_{s}", min_human) for role, of, s in roles])
    cells = independent_changes(cells.assign(pairs=cells[["n_b", "n_c"]].min(axis=1)), correction, alpha)
    cells["why"] = _why(cells, min_human)
    pooled = CorrectedRates(population, sample, ["run_id", "model", "language", "kind"], min_human=min_human,
                            rectifier=rectifier).table
    pooled = pooled[pooled["kind"] == "control"][["run_id", "model", "language", "kind", "n", "n_human", "dr", "se",
                                                  "note"]]
    controls = side(pooled, base, "b").merge(side(pooled, candidate, "c"), on=["language", "kind"])
    controls = independent_changes(controls.assign(pairs=controls[["n_b", "n_c"]].min(axis=1)), correction, alpha)
    controls["why"] = _why(controls, min_human)
    attack = population[population["kind"] == "attack"]
    keys = ["run_id", "model", "language"]
    gap, groups = CorrectedRates(attack, sample[sample["kind"] == "attack"], [*keys, "group"],
                                 min_human=min_human, rectifier=rectifier).beyond_noise(keys)
    se = groups.set_index([*keys, "group"])["se"]  # the observed gap's se: its two extreme groups' (independent strata)
    extremes = [(se.get((*key, best), float("nan")), se.get((*key, worst), float("nan"))) for key, best, worst
                in zip(gap[keys].itertuples(index=False, name=None), gap["best"], gap["worst"])]
    gap = gap.assign(se=[(a ** 2 + b ** 2) ** 0.5 for a, b in extremes], dr=gap["observed_gap"], kind="attack")
    gap = gap[[*keys, "kind", "groups", "dr", "se"]]
    # every language with compared attack cells has a gap row; one a side cannot estimate stays, untested, with why
    languages = pd.DataFrame({"language": sorted(set(cells.loc[cells["kind"] == "attack", "language"])),
                              "kind": "attack"})
    gaps = languages.merge(side(gap, base, "b"), on=["language", "kind"], how="left").merge(
        side(gap, candidate, "c"), on=["language", "kind"], how="left")
    gaps = independent_changes(gaps, correction, alpha, family=())
    gaps["why"] = _why(gaps, min_human, gap=True)
    gaps = gaps.rename(columns={"base_dr": "base_gap", "cand_dr": "cand_gap"}).assign(groups=lambda f: f["groups_b"])
    return Comparison(base.label, candidate.label, cells, gaps, controls, correction, alpha)
