"""One answer per probe (issue 26): a re-run of some probes replaces those probes' answers and leaves every view's n
as it was; `--runs` (the sidebar's run selector) picks other runs; counterfactual probes are not pooled with the
matched-seed ones unless asked; every view says which runs and probe set it shows.

The database is the dashboard's (tests/fixtures/dashboard_db.py: run r1, model-a and model-b, 12 English attack answers
each) with, for model-a, a counterfactual run `cf` (4 counterfactual probes, all refused) and a re-run `r2` of six
of r1's probes with other labels: the 4 women probes now complied (r1: 4 refused), 2 black probes now refused (r1:
complied). So, per model-a group:

                        r1 alone (before)     default after r2 completes
    women               4/4 refused           0/4
    jewish              2/4                   2/4
    black               1/4                   3/4
    overall             7/12, worst black     5/12, worst women
"""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core import views

from core.views import selection
from core.probes.schema import Probe
from core.store import CompletionRecord, Store, VerdictRecord
from tests.fixtures import dashboard_db
from tests.fixtures.paths import ROOT
from tests.fixtures.cli import run_cli
from tests.fixtures.apptest import app_test

JUDGE = "refusal"
BEFORE = {("model-a", "black"): (1, 3), ("model-a", "jewish"): (2, 2), ("model-a", "women"): (4, 0),
          ("model-b", "black"): (0, 4), ("model-b", "jewish"): (0, 4), ("model-b", "women"): (2, 2)}
AFTER = {**BEFORE, ("model-a", "black"): (3, 1), ("model-a", "women"): (0, 4)}
SENTENCE = ("Showing runs r1 (18 answers; 6 more not counted: a later run answered those probes), "
            "r2 (6 answers, replacing earlier ones); matched-seed probes.")


def counts(frame) -> dict:
    """{(model, group): (refused, complied)} of a label_counts frame."""
    return {(row.model, row.group): (int(row.refused), int(row.complied)) for row in frame.itertuples()}


def build(path, complete: bool = True) -> Store:
    """The database above; with complete=False the re-run r2 has stored its answers but is still running."""
    info = dashboard_db.build(path)
    store = Store(path)
    probes = info["probes"]
    women = [p for p in probes if p.group == "women"]
    black = [p for p in probes if p.group == "black"]  # r1: black #0 refused, #1..#3 complied (dashboard_db)
    counterfactual = [Probe(**{**vars(p), "probe_id": f"cf-{p.group}-{i}", "source": "counterfactual",
                               "counterfactual_id": f"cf-{i}", "claim_id": "claim-1"})
                      for i in range(2) for p in (women[i], black[i])]  # cf-0, cf-1: one claim for two groups
    store.add_probes(counterfactual)
    store.create_run("cf", {"probe_set": "counterfactual"}, [p.probe_id for p in counterfactual])
    store.add_run_targets("cf", ["model-a"])
    records = [CompletionRecord("cf", p.probe_id, "model-a", "no") for p in counterfactual]
    store.save_results(records, [VerdictRecord(r.completion_id, JUDGE, "refused") for r in records])
    store.set_run_status("cf", "completed")

    again = women + black[1:3]
    store.create_run("r2", {"rerun_of": "r1"}, [p.probe_id for p in again])
    store.add_run_targets("r2", ["model-a"])
    store.set_run_status("r2", "running")
    records = [CompletionRecord("r2", p.probe_id, "model-a", f"again {p.group}") for p in again]
    store.save_results(records, [VerdictRecord(r.completion_id, JUDGE, "complied" if r.text == "again women"
                                               else "refused") for r in records])
    if complete:
        store.set_run_status("r2", "completed")
    return store


@pytest.fixture()
def store(db_path) -> Store:
    return build(db_path)


def stats(db, cli_env, *options: str) -> tuple[list[dict], str]:
    """`python -m core stats --by model,group --json ...` as a pipeline runs it: (rows, stderr)."""
    done = run_cli("stats", "--db", str(db), "--by", "model,group", "--no-ci", "--json", *options, env=cli_env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


# -- (a) a re-run replaces the answers it re-asked; every n stays ------------------------------------------------
def test_a_running_rerun_changes_nothing_yet(db_path):
    store = build(db_path, complete=False)
    assert counts(store.label_counts(JUDGE, ["model", "group"], selection.filters())) == BEFORE
    assert selection.describe(store, selection.filters()) == (
        "Showing runs r1 (24 answers), r2 (still running; none of its 6 answers counted: a completed or later run "
        "answered those probes); matched-seed probes.")


def test_a_rerun_replaces_the_answers_it_re_asked_and_keeps_every_n(store, db_path, cli_env):
    default = selection.filters()
    assert counts(store.label_counts(JUDGE, ["model", "group"], default)) == AFTER
    head = views.headline.compute(store, JUDGE, default).rows.set_index("model")
    assert head.loc["model-a", "n"] == 12 and head.loc["model-a", "dr"] == pytest.approx(5 / 12)
    assert head.loc["model-a", "worst_group"] == "women" and head.loc["model-a", "worst_dr"] == 0.0
    assert head.loc["model-b", "n"] == 12 and head.loc["model-b", "dr"] == pytest.approx(2 / 12)
    # The joined rows, a drill-down page and the export read the same one answer per probe.
    judged = store.judged(JUDGE, default)
    assert len(judged) == 24 and judged[["model", "probe_id"]].value_counts().max() == 1
    women = judged.loc[(judged["model"] == "model-a") & (judged["group"] == "women")]
    assert set(women["run_id"]) == {"r2"} and set(women["label"]) == {"complied"}
    assert store.completion_page(JUDGE, {**default, "model": ["model-a"], "group": ["women"]})[1] == 4
    assert len(store.completion_rows(default)) == 24
    # The CLI, as a user checks it: n 4 per group, the re-run's labels.
    rows, err = stats(db_path, cli_env)
    got = {(r["model"], r["group"]): (r["n"], r["refused"]) for r in rows}
    assert got == {key: (refused + complied, refused) for key, (refused, complied) in AFTER.items()}
    assert "Showing" not in err  # --json: the sentence is for text output only


# -- (b) --runs picks the older run ------------------------------------------------------------------------------
def test_runs_picks_the_older_run(store, db_path, cli_env):
    assert counts(store.label_counts(JUDGE, ["model", "group"], selection.filters(["r1"]))) == BEFORE
    head = views.headline.compute(store, JUDGE, selection.filters(["r1"])).rows.set_index("model")
    assert head.loc["model-a", "dr"] == pytest.approx(7 / 12) and head.loc["model-a", "worst_group"] == "black"
    rows, _ = stats(db_path, cli_env, "--runs", "r1")
    assert {(r["model"], r["group"]): r["refused"] for r in rows} == {key: v[0] for key, v in BEFORE.items()}
    # Both runs chosen: they share model-a, so the rows are joined and ranked; the latest answer counts, as by default.
    assert counts(store.label_counts(JUDGE, ["model", "group"], selection.filters(["r1", "r2"]))) == AFTER
    alone = counts(store.label_counts(JUDGE, ["model", "group"], selection.filters(["r2"])))
    assert alone == {("model-a", "black"): (2, 0), ("model-a", "women"): (0, 4)}
    assert selection.describe(store, selection.filters(["r1"])) == \
        "Showing the chosen run r1 (24 answers); matched-seed probes."


def test_an_unknown_run_is_bad_input(store, db_path, cli_env):
    done = run_cli("stats", "--db", str(db_path), "--runs", "r9", env=cli_env, timeout=120)
    assert done.returncode == 2 and "--runs r9: no such run" in done.stderr and "cf, r1, r2" in done.stderr


# -- (c) counterfactual probes are not pooled into the default headline -----------------------------------------
def test_the_counterfactual_run_is_not_pooled_unless_asked(store, db_path, cli_env):
    for probe_set, n_a in (("matched", 12), ("counterfactual", 4), ("all", 16)):
        head = views.headline.compute(store, JUDGE, selection.filters(probe_set=probe_set)).rows.set_index("model")
        assert head.loc["model-a", "n"] == n_a, probe_set
        rows, _ = stats(db_path, cli_env, "--probe-set", probe_set, "--models", "model-a")
        assert sum(r["n"] for r in rows) == n_a, probe_set
    assert selection.describe(store, selection.filters(probe_set="counterfactual")) == \
        "Showing run cf (4 answers); counterfactual probes."
    # The Counterfactual view reads both sets whatever the selection says (it pairs them).
    view = views.counterfactual.compute(store, JUDGE, selection.filters(), resamples=20)
    assert view.answers == 4 and view.comparison["seed_answers"].iloc[0] == 12


# -- (d) the header sentence: the CLI's stderr, the report, the Overview ----------------------------------------
def test_stats_and_export_say_which_runs_they_read(store, db_path, cli_env, tmp_path):
    done = run_cli("stats", "--db", str(db_path), "--no-ci", env=cli_env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert SENTENCE in done.stderr.splitlines() and "Showing" not in done.stdout
    exported = run_cli("export", "--db", str(db_path), "--out", str(tmp_path / "a.csv"), "--json", "--quiet", env=cli_env, timeout=120)
    payload = json.loads(exported.stdout)
    assert payload["rows"] == 24 and payload["selection"] == SENTENCE
    report = run_cli("export", "--db", str(db_path), "--format", "report", "--out", str(tmp_path / "r.html"), "--runs", "r1", env=cli_env, timeout=300)
    assert report.returncode == 0, report.stderr
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Showing the chosen run r1 (24 answers); matched-seed probes." in page


def test_the_overview_names_its_runs_and_follows_the_run_selector(store, db_path, monkeypatch):
    monkeypatch.setenv("AUDIT_DB", str(db_path))
    app = app_test(timeout=60).run()
    assert not app.exception, app.exception
    assert SENTENCE in [t.value for t in app.text]
    head = app.dataframe[0].value.set_index("model")
    assert head.loc["model-a", "n"] == 12 and head.loc["model-a", "dr"] == pytest.approx(5 / 12)
    assert head.loc["model-a", "worst_group"] == "Women"

    older = app_test(timeout=60)
    older.query_params["run_id"] = "r1"
    older.run()
    assert not older.exception, older.exception
    assert "Showing the chosen run r1 (24 answers); matched-seed probes." in [t.value for t in older.text]
    head = older.dataframe[0].value.set_index("model")
    assert head.loc["model-a", "dr"] == pytest.approx(7 / 12) and head.loc["model-a", "worst_group"] == "Black people"
    runs = next(w for w in older.sidebar.multiselect if w.key == "overview_filter_run_id")
    assert runs.value == ["r1"] and set(runs.options) == {"r1", "r2", "cf"}

    both = app_test(timeout=60)
    both.query_params["probe_set"] = "all"
    both.run()
    assert not both.exception, both.exception
    assert both.dataframe[0].value.set_index("model").loc["model-a", "n"] == 16
    assert any(t.value.endswith("matched-seed and counterfactual probes.") for t in both.text)


# -- the review sample follows the same selection ---------------------------------------------------------------
def test_a_sampled_answer_that_was_re_answered_leaves_the_sample(store):
    store.draw_review_sample("r1", fraction=1.0, seed=0)  # every r1 answer sampled
    sheet = store.sample_sheet("r1")
    store.import_human_verdicts([(i, cid, "refused", "") for i, cid in enumerate(sheet["completion_id"], start=2)],
                                "tester")
    grain = ["model", "group"]
    population, sample, _ = store.ppi_inputs(JUDGE, grain, selection.filters())
    assert len(sample) == 18  # the 6 answers r2 replaced are no longer the answers the views count
    assert population.groupby("model")["n"].sum().to_dict() == {"model-a": 12, "model-b": 12}
    women = population.set_index(grain).loc[("model-a", "women")]
    assert (women["refused"], women["complied"]) == (0, 4)  # the judge's own labels of r2's answers
    _, older, _ = store.ppi_inputs(JUDGE, grain, selection.filters(["r1"]))
    assert len(older) == 24
    # The kept counts and the joined rows (grouping by scenario, not kept) give the same population.
    joined, _, _ = store.ppi_inputs(JUDGE, [*grain, "scenario"], selection.filters())
    cell = ["run_id", "model", "language", "group", "kind"]
    summed = joined.groupby(cell, as_index=False)[["n", "refused", "complied", "unparsed"]].sum()
    pd.testing.assert_frame_equal(summed.sort_values(cell).reset_index(drop=True),
                                  population.sort_values(cell).reset_index(drop=True)[summed.columns], check_dtype=False)


# -- the committed demo: one completed run per target, so the default changes nothing ---------------------------
def test_the_demo_numbers_do_not_change(tmp_path):
    demo = Store(tmp_path / "demo.duckdb")
    demo.restore(ROOT / "data" / "demo" / "results.jsonl.gz")
    with demo.connect() as con:  # every answer, pooled: what views counted before issue 26
        pooled = con.execute(
            "SELECT c.target_id, count(*) FILTER (WHERE coalesce(h.label, v.label) = 'refused'), count(*) FILTER "
            "(WHERE coalesce(h.label, v.label) = 'complied') FROM completions c JOIN probes p USING (probe_id) "
            "LEFT JOIN verdicts v ON v.completion_id = c.completion_id AND v.judge = 'refusal' LEFT JOIN verdicts h "
            "ON h.completion_id = c.completion_id AND h.judge = 'human' WHERE p.kind = 'attack' GROUP BY ALL"
        ).fetchall()
    now = demo.label_counts(JUDGE, ["model"], {"kind": ["attack"], **selection.filters()})
    assert sorted((r.model, r.refused, r.complied) for r in now.itertuples()) == sorted(pooled)
    sentence = selection.describe(demo, selection.filters())
    assert sentence.startswith("Showing runs ") and "demo-smollm2 (" in sentence and "not counted" not in sentence


def test_a_store_of_counterfactual_answers_only_shows_them_by_default(db_path, cli_env):
    """An auditor's own population built as a counterfactual set (no matched-seed probes): its views are not empty."""
    full = build(db_path.with_name("full.duckdb"))
    store = Store(db_path)
    probes = [p for p in full.probes() if p.probe_id.startswith("cf-")]
    store.add_probes(probes)
    store.create_run("cf-only", {}, [p.probe_id for p in probes])
    records = [CompletionRecord("cf-only", p.probe_id, "model-a", "no") for p in probes]
    store.save_results(records, [VerdictRecord(r.completion_id, JUDGE, "refused") for r in records])
    assert selection.default_probe_set(store) == "counterfactual" and selection.default_probe_set(full) == "matched"
    rows, err = stats(db_path, cli_env)
    assert sum(r["n"] for r in rows) == 4
    assert selection.describe(store, selection.with_default({}, store)) == \
        "Showing run cf-only (not started; 4 answers); counterfactual probes."
