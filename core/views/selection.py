"""Which answers a view reads: the runs and the probe set, and the plain sentence that says so above every view.

One answer per (target, probe). Where several runs of a target answered a probe, a view counts one of them:
by default the answer of the latest completed run of that target (a run that is still running, was stopped or
failed replaces nothing until it completes, so a half-done re-run never mixes into the figures; a target whose
only runs are unfinished still shows their answers, and the sentence says they are unfinished). Choosing runs
(`--runs R1,R2` in the CLI, the Runs selector in the dashboard's sidebar, URL `run_id`) reads only those, with
the same rule among them. The rule itself lives with the SQL (core/store/rows.py, _ANSWER_RANK); cell_counts
keeps each cell's current answers, so the default stays a sum of kept counts.

Probe sets: matched-seed probes (each group its own seed statements: the bundled set, MiJaBench, custom files)
and counterfactual probes (one claim filled for every group, a non-empty counterfactual_id) measure different
things, so views read one set unless told: the matched-seed set by default, or the counterfactual set in a store
that holds only counterfactual answers (`--probe-set`, URL `probe_set`).
The Counterfactual view reads both by design (core/views/counterfactual.py). The store itself is explicit:
without a `probe_set` filter it reads both; the CLI, the dashboard and the report add the default here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI builds its parser from PROBE_SETS: importing pandas there would slow `--help`
    import pandas as pd

# The probe-set choices and the store filter (dimension `probe_set`) each one stands for.
PROBE_SETS: dict[str, tuple[str, ...]] = {
    "matched": ("matched",),
    "counterfactual": ("counterfactual",),
    "all": ("counterfactual", "matched"),
}
DEFAULT_PROBE_SET = "matched"
# How the sentence names each choice.
PROBE_SET_WORDS: dict[str, str] = {"matched": "matched-seed probes", "counterfactual": "counterfactual probes",
                                   "all": "matched-seed and counterfactual probes"}
# How the sentence names an unfinished run's status (a completed run's goes unsaid).
STATUS_WORDS: dict[str, str] = {"running": "still running", "created": "not started", "importing": "still importing",
                                "stopped": "stopped", "failed": "failed"}
# Runs named one by one before the sentence sums up the rest.
LISTED_RUNS = 8

Filters = Mapping[str, Sequence[str] | str | None]


def filters(runs: Sequence[str] = (), probe_set: str = DEFAULT_PROBE_SET) -> dict[str, list[str]]:
    """The store filters of a selection: `run_id` (the chosen runs; none: every run) and `probe_set`."""
    if probe_set not in PROBE_SETS:
        raise ValueError(f"unknown probe set {probe_set!r}; known: {', '.join(PROBE_SETS)}")
    chosen = {"probe_set": list(PROBE_SETS[probe_set])}
    return {"run_id": list(runs), **chosen} if runs else chosen


def default_probe_set(store=None) -> str:
    """The probe set views read unless told: matched-seed, or counterfactual in a store that holds answers of
    counterfactual probes only (an auditor's own population built as a counterfactual set), so its views are not
    empty; never both."""
    if store is None:
        return DEFAULT_PROBE_SET
    held = store.answered_probe_sets()
    return "counterfactual" if held == ["counterfactual"] else DEFAULT_PROBE_SET


def with_default(given: Filters | None, store=None) -> dict:
    """`given` with the default probe set (default_probe_set) where it names none (what the report reads)."""
    out = dict(given or {})
    if not out.get("probe_set"):
        out["probe_set"] = list(PROBE_SETS[default_probe_set(store)])
    return out


def probe_set_name(given: Filters | None) -> str:
    """The choice a filter set stands for: matched, counterfactual or all (no `probe_set` filter reads both)."""
    value = (given or {}).get("probe_set")
    values = {value} if isinstance(value, str) else set(value or ())
    for name, chosen in PROBE_SETS.items():
        if values == set(chosen):
            return name
    return "all"


def chosen_runs(given: Filters | None) -> list[str]:
    """The runs a filter set chose ([]: every run, the latest answer of each probe)."""
    value = (given or {}).get("run_id")
    return [value] if isinstance(value, str) else list(value or ())


def sentence(runs: "pd.DataFrame", chosen: Sequence[str] = (), probe_set: str = DEFAULT_PROBE_SET) -> str:
    """The plain sentence for Store.answer_runs' table, e.g. "Showing runs demo-smollm2 (1,940 answers; 40 more
    not counted: a later run answered those probes), rerun-7 (40 answers, replacing earlier ones); matched-seed
    probes."

    Every run that holds answers in the selection is named with what a view counts of it, whether it is
    unfinished, how many of its answers replace an older run's and how many another run's answer replaces.
    Plain text: callers draw it without Markdown (run ids are a user's text)."""
    words = PROBE_SET_WORDS.get(probe_set, probe_set)
    held = runs.loc[runs["answers"] > 0] if len(runs) else runs
    if not len(held):
        if chosen:
            return f"No answers to show: {_names(chosen)} {'holds' if len(chosen) == 1 else 'hold'} no {words}."
        return f"No answers to show: no run holds {words} yet."
    parts = [_run_part(row) for row in held.head(LISTED_RUNS).itertuples()]
    rest = held.iloc[LISTED_RUNS:]
    if len(rest):
        parts.append(f"and {len(rest):,} more run{'s' if len(rest) != 1 else ''} "
                     f"({int(rest['shown'].sum()):,} answers)")
    which = "the chosen run" if chosen else "run"
    which += "s" if len(held) != 1 else ""
    missing = [run for run in chosen if run not in set(held["run_id"])]
    tail = f"; {_names(missing)} {'holds' if len(missing) == 1 else 'hold'} none of them" if missing else ""
    return f"Showing {which} {', '.join(parts)}; {words}{tail}."


def _names(runs: Sequence[str]) -> str:
    return ("run " if len(runs) == 1 else "runs ") + ", ".join(runs)


def _run_part(row: Any) -> str:
    """One run's part of the sentence: `rerun-7 (40 answers, replacing earlier ones)`."""
    unfinished = row.status != "completed"
    status = STATUS_WORDS.get(row.status, row.status) if unfinished and row.status else ""
    notes = [status] if status else []
    if row.shown:
        counted = f"{row.shown:,} answer{'s' if row.shown != 1 else ''}"
        if row.replacing:
            counted += ", replacing earlier ones" if row.replacing == row.shown else \
                f", {row.replacing:,} of them replacing earlier ones"
        notes.append(counted)
    if row.superseded:
        # A completed run's answer gives way only to a later completed run's; an unfinished run's to any completed
        # run's or a later run's (rows.py, _RUN_ORDER).
        why = "a later run answered those probes" if not unfinished else \
            "a completed or later run answered those probes"
        if row.shown:
            notes.append(f"{row.superseded:,} more not counted: {why}")
        else:
            notes.append(f"none of its {row.superseded:,} answer{'s' if row.superseded != 1 else ''} counted: {why}")
    return f"{row.run_id} ({'; '.join(notes)})"


def describe(store, given: Filters | None = None) -> str:
    """The sentence for a selection (its `run_id` and `probe_set` filters) of `store`: what every page header,
    the HTML report and the CLI's text output say above their figures."""
    return sentence(store.answer_runs(given), chosen_runs(given), probe_set_name(given))
