"""A server that goes away mid-audit, against a real loopback HTTP server that the tests crash and restart
(tests/fixtures/fake_openai_server.py): the run stops within a bounded number of requests with a plain message, exit
1 and status `stopped`, the unanswered probes stay pending; a resume after the restart finishes it with one
completion per probe; errors of a 500 storm are retried in place (`--retry-errors`: same completion ids,
the earlier attempts kept in completion_attempts, no duplicates, the Defense Rates of a run that never failed).
"""
from __future__ import annotations

import json

import duckdb
import pandas as pd
import pytest

from core.judges import resolve_judge
from core.run.runner import execute_run
from core.stats.rates import DefenseRates
from core.store import _MIGRATIONS, SCHEMA_VERSION, Store
from core.targets.openai import OutageWatch
from tests.fixtures.openai import openai_target, planned_run
from tests.reliability import harness


def _cli_json(args: list[str]) -> tuple[int, dict, str]:
    done = harness.cli([*args, "--json", "--quiet"])
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    return done.returncode, json.loads(done.stdout), done.stderr


def test_the_watch_needs_a_streak_of_one_kind_past_the_bound_and_the_window_and_more_than_one_prompt():
    now = [0.0]
    watch = OutageWatch(bound=4, window_s=10.0, clock=lambda: now[0])
    for prompt in range(3):
        assert not watch.failed("connection", True, prompt, "refused")
    assert not watch.failed("connection", True, 3, "refused")  # the bound is reached, the window is not
    now[0] = 10.0
    assert watch.failed("connection", True, 4, "refused") and watch.down == "refused"
    watch.clear()
    for _ in range(10):  # one prompt that always gets a 500 is that prompt's problem, however long
        assert not watch.failed("HTTP 500", False, 7, "HTTP 500")
    assert not watch.holds(False)
    now[0] = 30.0
    watch.failed("HTTP 500", False, 8, "HTTP 500")  # a second prompt: a server-wide storm, held and down
    assert watch.holds(False) and watch.down == "HTTP 500"
    watch.clear()
    for prompt in range(6):  # a different kind restarts the streak, and so does any answer
        watch.failed("HTTP 500" if prompt % 2 else "HTTP 503", False, prompt, "5xx")
    watch.answered()
    assert watch.count == 0 and not watch.holds(True) and watch.down is None


def test_a_cli_run_stops_within_a_bound_when_the_server_dies_and_finishes_after_it_restarts(fake, tmp_path):
    db = tmp_path / "outage.duckdb"
    harness.save_target(db, fake.url, concurrency=2, max_retries=3, outage_window_s=0)
    fake.behaviour.latency = 0.05
    fake.die_after(6)  # the 6th request is never answered; then the port refuses connections
    code, report, stderr = _cli_json(harness.run_args(db, "gone"))
    assert code == 1 and report["status"] == "stopped"
    assert "target fake is unreachable: connection failed" in stderr
    assert "probes left pending; resume with --run-id gone when it is back" in stderr
    store = Store(db, readonly=True)
    run = store.run("gone")
    assert run["status"] == "stopped" and run["message"] == report["message"] and "unreachable" in run["message"]
    counts = store.run_counts("gone")
    answered = counts["completions"]
    assert counts["errors"] == 0 and 0 < answered < 15 and report["pending"] == 15 - answered  # pending, not errors
    assert len(store.pending_probes("gone", "fake")) == 15 - answered
    assert f"{15 - answered} probes left pending" in stderr
    # bounded: after the death, at most the outage bound (8 at concurrency 2) plus the requests in flight
    api = report["usage"][0]["api"]
    assert api["requests"] - answered <= 8 + 2, api
    fake.restart()
    code, report, stderr = _cli_json(harness.run_args(db, "gone"))
    assert code == 0 and report["status"] == "completed" and report["added"] == 15 - answered
    final = harness.check_run(db, "gone")
    assert final.problems == [] and (final.completions, final.errors, final.duplicates, final.lost) == (15, 0, 0, 0)
    assert Store(db, readonly=True).run("gone")["message"] is None
    assert len({entry.prompt for entry in fake.log() if entry.fault == "ok"}) == 15


def test_prompt_specific_errors_are_stored_while_the_unanswered_stay_pending(fake, db_path):
    target = openai_target(fake, max_concurrency=1, outage_window_s=0)
    store, run_id, probes = planned_run(db_path, f"openai:fake-model@{fake.url}")
    fake.always(probes[0].prompt, "400")  # one slot: the first request is this prompt's, rejected as it is
    fake.die_after(4)
    stopped = execute_run(store, run_id, [target], [resolve_judge("refusal")])
    assert stopped.status == "stopped" and "unreachable" in stopped.message
    rows = store.completion_rows({"run_id": run_id}).set_index("probe_id")
    assert rows.loc[probes[0].probe_id, "error"] == "HTTP 400: fault 400"  # stored as before
    assert rows["error"].notna().sum() == 1 and len(rows) == 3  # two answers, one error, the rest pending
    assert len(store.pending_probes(run_id, target.info.target_id)) == 12
    fake.restart()
    resumed = execute_run(store, run_id, [target], [resolve_judge("refusal")])
    assert resumed.status == "completed" and resumed.counts["completions"] == 15 and resumed.counts["errors"] == 1


def test_a_500_storm_for_every_prompt_stops_the_run_too(fake, db_path):
    target = openai_target(fake, max_concurrency=2, outage_window_s=0)
    store, run_id, probes = planned_run(db_path, f"openai:fake-model@{fake.url}")
    fake.always("", "500")
    stopped = execute_run(store, run_id, [target], [resolve_judge("refusal")])
    assert stopped.status == "stopped" and "is unreachable: HTTP 500: fault 500" in stopped.message
    counts = stopped.counts
    assert counts["completions"] == counts["errors"] < 15  # errors stored before the storm was clear; rest pending
    assert len(fake.log()) <= 8 + 2 + 2 * 3  # the bound, those in flight, and the first prompts' own retries


@pytest.mark.slow
def test_retry_errors_replaces_a_storms_errors_in_place_with_their_history_and_the_drs_of_a_clean_run(fake, tmp_path):
    db = tmp_path / "storm.duckdb"
    harness.save_target(db, fake.url, concurrency=1, max_retries=0, outage_failures=1000)  # a storm never stops it
    code, clean, _ = _cli_json(harness.run_args(db, "clean"))
    assert code == 0 and clean["errors"] == 0
    fake.reset()
    fake.script(*["500"] * 9)  # a storm that ends: with no retries, each of its 500s leaves one error
    code, storm, _ = _cli_json(harness.run_args(db, "storm"))
    assert code == 0 and storm["status"] == "completed" and storm["completions"] == 15
    errors = storm["errors"]
    assert errors == 9
    store = Store(db, readonly=True)
    before = store.completion_rows({"run_id": "storm"}).set_index("completion_id")
    failed = before.index[before["error"].notna()]
    asked = len(fake.log())
    code, again, _ = _cli_json(harness.run_args(db, "storm"))  # without the flag: resume as before, nothing sent
    assert code == 0 and again["added"] == 0 and again["errors"] == errors and len(fake.log()) == asked
    code, retried, _ = _cli_json([*harness.run_args(db, "storm"), "--retry-errors"])
    assert code == 0 and (retried["retried"], retried["repaired"], retried["errors"]) == (errors, errors, 0)
    assert len(fake.log()) == asked + errors  # only the errors were sent again
    after = store.completion_rows({"run_id": "storm"}).set_index("completion_id")
    assert sorted(after.index) == sorted(before.index) and after["error"].isna().all()  # same ids, replaced
    history = store.attempts("storm")
    assert sorted(history["completion_id"]) == sorted(failed)
    assert history["error"].str.startswith("HTTP 500: fault 500").all() and history["attempted_at"].notna().all()
    assert (history["attempted_at"] <= history["replaced_at"]).all()
    final = harness.check_run(db, "storm")
    assert final.problems == [] and (final.completions, final.duplicates, final.verdicts) == (15, 0, 15)
    # the Defense Rates of the repaired run are those of the run that never failed, per group and overall
    for by in (["group"], ["group", "strategy"], ["language"]):
        rates = {run: DefenseRates(store.label_counts("refusal", ["run_id", *by], {"run_id": run}), by, ci=False)
                 .table[[*by, "n", "refused", "dr"]] for run in ("clean", "storm")}
        pd.testing.assert_frame_equal(rates["clean"], rates["storm"])
    # cell_counts (what label_counts sums) agree with the rows themselves after the replacement
    judged = store.judged("refusal", {"run_id": "storm"})
    kept = store.label_counts("refusal", ["group"], {"run_id": "storm"}).set_index("group")
    assert kept["refused"].to_dict() == judged[judged["label"] == "refused"].groupby("group").size().to_dict()
    assert kept["errors"].sum() == 0
    # the history travels with a dump
    dumped = tmp_path / "dump.jsonl.gz"
    assert harness.cli(["dump", str(dumped), "--db", str(db)]).returncode == 0
    copy = tmp_path / "copy.duckdb"
    assert harness.cli(["restore", str(dumped), "--db", str(copy)]).returncode == 0
    assert len(Store(copy, readonly=True).attempts("storm")) == errors
    assert harness.cli(["restore", str(dumped), "--db", str(copy)]).returncode == 0  # again: nothing twice
    assert len(Store(copy, readonly=True).attempts("storm")) == errors


def test_retry_errors_needs_a_stored_run(tmp_path):
    done = harness.cli(["run", "--retry-errors", "--db", str(tmp_path / "x.duckdb")])
    assert done.returncode == 2 and "--retry-errors" in done.stderr and "--run-id" in done.stderr


def test_an_all_error_run_fails_and_says_so_in_the_headline_and_the_report(fake, tmp_path):
    db = tmp_path / "bad.duckdb"
    harness.save_target(db, fake.url, concurrency=2)
    fake.always("", "400")  # e.g. a model name the server does not know, answered with 400 to every prompt
    code, report, stderr = _cli_json(harness.run_args(db, "nothing"))
    assert code == 1 and report["status"] == "failed" and report["errors"] == report["completions"] == 15
    assert "every completion is an error (15)" in stderr and "HTTP 400: fault 400" in stderr
    store = Store(db, readonly=True)
    runs = store.runs().set_index("run_id")
    assert runs.loc["nothing", "status"] == "failed" and runs.loc["nothing", "errors"] == 15
    per_target = store.run_target_counts().set_index(["run_id", "target_id"])
    assert per_target.loc[("nothing", "fake"), ["completions", "errors", "pending", "error_share"]].tolist() == \
        [15, 15, 0, 1.0]
    html = tmp_path / "report.html"
    assert harness.cli(["export", "--format", "report", "--out", str(html), "--db", str(db)]).returncode == 0
    text = html.read_text()
    assert "fake (English): no Defense Rate: all 12 completions are errors." in text
    assert "Completions and errors per run and target" in text


def test_the_previous_schema_gains_the_history_and_its_all_error_runs_are_no_longer_completed(tmp_path):
    """Migration 005: a file at version 4 gains completion_attempts and runs.message (and the later migrations),
    and may run them twice."""
    db = tmp_path / "previous.duckdb"
    before = 4
    with duckdb.connect(str(db)) as con:
        for migration in _MIGRATIONS[:before]:
            con.execute(migration)
        con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(before)])
        con.execute("INSERT INTO runs (run_id, status, config) VALUES ('bad', 'completed', '{}'), "
                    "('good', 'completed', '{}')")
        for run, error in (("bad", "connection failed"), ("good", None)):
            con.execute("INSERT INTO completions (completion_id, run_id, probe_id, target_id, error, seq) VALUES "
                        "(left(sha1(? || chr(31) || 'p' || chr(31) || 't'), 20), ?, 'p', 't', ?, ?)",
                        [run, run, error, 0 if run == "bad" else 1])
    store = Store(db)
    assert store.schema_version() == SCHEMA_VERSION
    runs = store.runs().set_index("run_id")
    assert runs.loc["bad", "status"] == "failed" and "every completion is an error" in runs.loc["bad", "message"]
    assert runs.loc["good", "status"] == "completed" and store.attempts("bad").empty
    with duckdb.connect(str(db)) as con:  # as if renumbered at a merge: the migration runs again on the file
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(before)])
    again = Store(db)
    assert again.schema_version() == SCHEMA_VERSION
    assert again.runs().set_index("run_id").loc["bad", "status"] == "failed"
