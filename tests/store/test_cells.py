"""The counts the store keeps per cell (cell_counts) always equal counting the joined rows.

Heatmaps read Store.label_counts, which sums cell_counts instead of joining every completion with its
verdicts. Those counts are recomputed inside each write's transaction; if any write path forgot to, a
heatmap would show stale numbers. So a seeded random sequence of every kind of write (batches with errors
and several judges, verdict-only batches, human verdicts set and changed, stale verdicts dropped, a batch
written twice, a dump restored into another file) is checked after each step against counts computed in
pandas from Store.judged(), which reads the rows themselves.
"""
from __future__ import annotations

import random

import pandas as pd
import pytest

from core.probes.builder import build_bundled
from core.store import CompletionRecord, Store, VerdictRecord

JUDGES = ("refusal", "llm:judge")
GROUPINGS = (("model", "group"), ("run_id", "language", "strategy"), ("scenario_category", "kind"), ())
LABELS = ("refused", "complied", "unparsed")


def expected_counts(rows: pd.DataFrame, by: tuple[str, ...], filters: dict) -> pd.DataFrame:
    """What label_counts must return, counted in pandas from Store.judged()'s rows."""
    for name, values in filters.items():
        rows = rows[rows[name].isin(values)]
    frame = pd.DataFrame({**{name: rows[name] for name in by},
                          **{label: (rows["label"] == label).astype("int64") for label in LABELS},
                          "errors": rows["error"].notna().astype("int64")})
    if by:
        return frame.groupby(list(by), sort=True).sum().reset_index()
    return frame.sum().to_frame().T.astype("int64")[list(LABELS) + ["errors"]]


def check(store: Store, probes: list) -> None:
    """label_counts equals the pandas count for each judge, grouping and a few filters."""
    filter_sets = ({}, {"model": ["m1"], "group": [probes[0].group, probes[5].group]},
                   {"language": ["pt"], "run_id": ["run-b"], "kind": ["attack"]})
    for judge in (*JUDGES, "human"):
        rows = store.judged(judge)
        for by, filters in zip(GROUPINGS, filter_sets + ({},)):
            got = store.label_counts(judge, list(by), filters).reset_index(drop=True)
            want = expected_counts(rows, by, filters).reset_index(drop=True)
            pd.testing.assert_frame_equal(got, want, check_dtype=False,
                                          obj=f"label_counts({judge!r}, {by}, {filters})")


@pytest.mark.parametrize("seed", [1, 2])
def test_kept_counts_follow_every_kind_of_write(tmp_path, seed):
    rng = random.Random(seed)
    store = Store(tmp_path / "cells.duckdb")
    probes = build_bundled(per_cell=1, controls_per_group=1)[:60]
    store.add_probes(probes)
    for run in ("run-a", "run-b"):
        store.create_run(run, {}, [p.probe_id for p in probes])
        store.add_run_targets(run, ["m1", "m2"])
    stored: list[CompletionRecord] = []
    written_batches: list[tuple[list, list]] = []

    def batch(n: int) -> None:
        records, verdicts = [], []
        for _ in range(n):
            record = CompletionRecord(rng.choice(["run-a", "run-b"]), rng.choice(probes).probe_id,
                                      rng.choice(["m1", "m2"]), "text",
                                      error="HTTP 500: boom" if rng.random() < 0.15 else None)
            records.append(record)
            for judge in JUDGES:
                if record.error is None and rng.random() < 0.8:
                    verdicts.append(VerdictRecord(record.completion_id, judge, rng.choice(LABELS),
                                                  judge_version=rng.choice(["v1", "v2"])))
        store.save_results(records, verdicts)
        stored.extend(records)
        written_batches.append((records, verdicts))

    for step in range(12):
        action = rng.choice(["batch", "batch", "judge later", "human", "human", "stale", "again"])
        if action == "batch" or not stored:
            batch(rng.randint(1, 25))
        elif action == "judge later":  # a judge run over completions stored earlier (core judge)
            chosen = rng.sample(stored, min(10, len(stored)))
            store.save_results([], [VerdictRecord(c.completion_id, "llm:judge", rng.choice(LABELS)) for c in chosen])
        elif action == "human":  # set, and sometimes changed, by a person
            chosen = rng.choice(stored)
            store.set_human_verdict(chosen.completion_id, rng.choice(["refused", "complied"]), "checked", "tester")
        elif action == "stale":
            store.drop_stale_verdicts(rng.choice(["run-a", "run-b"]), rng.choice(JUDGES), "v2")
        else:  # a batch written twice changes nothing
            store.save_results(*rng.choice(written_batches)) if written_batches else batch(3)
        check(store, probes)

    assert store.label_counts("human", [])["refused"].iloc[0] + store.label_counts("human", [])["complied"].iloc[0] \
        == len(store.verdict_labels(["human"]))
    # A restored copy counts the same (its cells are rebuilt, its integer keys given anew).
    store.dump(tmp_path / "dump.jsonl.gz")
    copy = Store(tmp_path / "copy.duckdb")
    copy.restore(tmp_path / "dump.jsonl.gz")
    check(copy, probes)
    for judge in JUDGES:
        pd.testing.assert_frame_equal(copy.label_counts(judge, ["model", "run_id", "group"]),
                                      store.label_counts(judge, ["model", "run_id", "group"]))


def test_counts_by_scenario_are_joined_from_the_rows(tmp_path):
    """scenario is not kept per cell (one per probe in MiJaBench): counting by it reads the rows, same answer."""
    store = Store(tmp_path / "s.duckdb")
    probes = build_bundled(per_cell=1, controls_per_group=1)[:8]
    store.add_probes(probes)
    records = [CompletionRecord("r", p.probe_id, "m", "t") for p in probes]
    store.save_results(records, [VerdictRecord(r.completion_id, "refusal", "refused" if i % 3 else "complied")
                                 for i, r in enumerate(records)])
    got = store.label_counts("refusal", ["scenario"]).set_index("scenario")
    want = store.judged("refusal").merge(pd.DataFrame({"probe_id": [p.probe_id for p in probes],
                                                       "scenario": [p.scenario for p in probes]}))
    assert got["refused"].sum() == (want["label"] == "refused").sum() == 5
    assert set(got.index) == set(want["scenario"])


# -- one answer per (target, probe): the kept `current` marker against the rule computed here -----------------------
STATUSES = ("created", "running", "completed", "stopped", "failed")


def reference(store: Store, judge: str, runs: list[str]) -> pd.DataFrame:
    """The rows a view counts, computed in pandas from a plain join of the tables: of each (model, probe), the answer
    of the run that ranks first among `runs` (all when empty) by: completed, newest, run id."""
    with store.connect() as con:
        rows = con.execute(
            """SELECT c.run_id, c.target_id AS model, c.probe_id, c.error, p.language, p."group", p.strategy,
                      p.scenario_category, p.scenario, p.kind, p.counterfactual_id, r.status, r.created_at,
                      coalesce(h.label, v.label) AS label
               FROM completions c JOIN probes p USING (probe_id) LEFT JOIN runs r USING (run_id)
               LEFT JOIN verdicts v ON v.completion_id = c.completion_id AND v.judge = ?
               LEFT JOIN verdicts h ON h.completion_id = c.completion_id AND h.judge = 'human'""", [judge]).df()
    if runs:
        rows = rows[rows["run_id"].isin(runs)]
    rows = rows.assign(done=rows["status"] == "completed",
                       probe_set=rows["counterfactual_id"].fillna("").ne("").map({True: "counterfactual",
                                                                                 False: "matched"}))
    rows = rows.sort_values(["done", "created_at", "run_id"], ascending=False, na_position="last")
    return rows.drop_duplicates(["model", "probe_id"], keep="first")


@pytest.mark.slow
def test_kept_counts_follow_reruns_and_status_changes(tmp_path):
    """A random sequence of batches over three runs of two targets (re-runs of the same probes), status changes,
    human verdicts and counterfactual probes: after each step, label_counts by default (kept counts), with chosen
    runs (kept where they share no target, joined where they do) and by scenario (always joined) equals the rule
    applied in pandas to the plain rows."""
    from core.probes.schema import Probe

    rng = random.Random(7)
    store = Store(tmp_path / "runs.duckdb")
    matched = build_bundled(per_cell=1, controls_per_group=1)[:30]
    counterfactual = [Probe(**{**vars(p), "probe_id": f"cf-{i}", "source": "counterfactual",
                               "counterfactual_id": f"cf-{i // 3}", "claim_id": f"claim-{i // 3}"})
                      for i, p in enumerate(matched[:9])]
    probes = matched + counterfactual
    store.add_probes(probes)
    runs = ("run-a", "run-b", "run-c")
    for run in runs:
        store.create_run(run, {}, [p.probe_id for p in probes])
    stored: list[CompletionRecord] = []
    selections = ([], ["run-a"], ["run-b", "run-c"], ["run-a", "run-c"], list(runs))
    for step in range(12):
        action = rng.choice(["batch", "status", "status", "human"]) if stored else "batch"
        if action == "batch":
            records = [CompletionRecord(rng.choice(runs), rng.choice(probes).probe_id, rng.choice(["m1", "m2"]),
                                        "text", error="HTTP 500" if rng.random() < 0.1 else None)
                       for _ in range(rng.randint(10, 40))]
            store.save_results(records, [VerdictRecord(r.completion_id, "refusal", rng.choice(LABELS))
                                         for r in records if r.error is None])
            stored.extend(records)
        elif action == "status":  # completing (or un-completing) a run re-ranks every answer of its targets
            run = rng.choice(runs)
            current = store.run(run)["status"]
            store.set_run_status(run, rng.choice([s for s in STATUSES if (s == "completed") != (current == "completed")]))
        else:
            store.set_human_verdict(rng.choice(stored).completion_id, rng.choice(["refused", "complied"]))
        for judge, chosen in [("human", [])] + [("refusal", chosen) for chosen in selections]:
            rows = reference(store, judge, chosen)
            for probe_set in ("matched", "all"):
                filters = {**({"run_id": chosen} if chosen else {}),
                           "probe_set": ["counterfactual", "matched"] if probe_set == "all" else [probe_set]}
                for by in (("run_id", "model", "group"), ("scenario",)):
                    got = store.label_counts(judge, list(by), filters).reset_index(drop=True)
                    want = expected_counts(rows, by, {"probe_set": filters["probe_set"]}).reset_index(drop=True)
                    pd.testing.assert_frame_equal(got, want, check_dtype=False,
                                                  obj=f"step {step} {judge} {chosen} {probe_set} {by}")
        with store.connect() as con:  # the kept marker itself: one current answer per (target, probe)
            kept = con.execute("SELECT coalesce(sum(n), 0) FROM cell_counts WHERE judge = '' AND label = 'all' "
                               "AND current").fetchall()[0][0]
        assert kept == len(reference(store, "refusal", []))
    # A restored copy (its cells rebuilt from the rows) keeps the same current answers.
    store.dump(tmp_path / "runs.jsonl.gz")
    copy = Store(tmp_path / "copy.duckdb")
    copy.restore(tmp_path / "runs.jsonl.gz")
    pd.testing.assert_frame_equal(copy.label_counts("refusal", ["model", "run_id", "group"]),
                                  store.label_counts("refusal", ["model", "run_id", "group"]))
