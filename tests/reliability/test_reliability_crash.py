"""Crash safety of the CLI runner: kill -9 at random moments (seeded), resume, and the database holds exactly
one completion per (probe, target); two processes on one database never lose or duplicate work."""
from __future__ import annotations

import random
import subprocess
import time

import pytest

from core.store import Store
from tests.fixtures.cli import core_command
from tests.fixtures.paths import PYTHON, ROOT
from tests.reliability import harness


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_leaves_exactly_one_completion_per_probe(fake, tmp_path):
    fake.behaviour.latency = 0.2  # one connection: 8 batches of 4 probes, about 0.8 s each
    rng = random.Random(8)
    partial_kills = 0
    for trial in range(3):
        db = tmp_path / f"trial{trial}.duckdb"
        harness.save_target(db, fake.url, concurrency=1)
        args = harness.run_args(db, f"crash-{trial}", per_cell=2)
        # first a kill early in the process's life (loading, planning, the first batch), then one inside the
        # run: after a random number of stored completions, a random moment into the next batch
        early = harness.run_and_kill(args, after_s=rng.uniform(0.3, 3.0))
        inside = harness.run_and_kill_after(args, stored=rng.randrange(1, 22), extra_s=rng.uniform(0.0, 0.7))
        for kill in (early, inside):
            assert "Traceback" not in kill.stderr
        assert harness.database_is_readable(db)
        midway = harness.check_run(db, f"crash-{trial}", complete=False)
        assert midway.problems == [] and midway.duplicates == 0, midway
        partial_kills += inside.landed and 0 < midway.completions < 30
        resumed = harness.cli([*args, "--json", "--quiet"])
        assert resumed.returncode == 0, resumed.stderr
        final = harness.check_run(db, f"crash-{trial}")
        assert final.problems == [], final.problems
        assert (final.planned, final.completions, final.duplicates, final.lost) == (30, 30, 0, 0)
        assert final.verdicts == 30 and final.errors == 0
    assert partial_kills == 3  # every second kill landed in the middle of a run, with work left to resume


@pytest.mark.slow
def test_two_processes_executing_the_same_run_at_once_store_each_completion_once(fake, tmp_path):
    fake.behaviour.latency = 0.15
    db = tmp_path / "shared.duckdb"
    harness.save_target(db, fake.url, concurrency=1)
    args = harness.run_args(db, "shared", per_cell=2)
    env = harness.cli_env()
    first = subprocess.Popen(core_command(*args, "--json", "--quiet"), cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert harness.wait_for(lambda: db.exists() and harness.stored_completions(db, "shared") >= 4, timeout=60)
        second = harness.cli([*args, "--json", "--quiet"], env)  # resumes the run the first is executing
        out, err = first.communicate(timeout=harness.CLI_TIMEOUT_S)
    finally:
        first.kill()
    assert first.returncode == 0 and "Traceback" not in err, err
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    final = harness.check_run(db, "shared")
    assert final.problems == [] and (final.completions, final.duplicates) == (30, 0)


@pytest.mark.slow
def test_a_database_held_by_another_process_gets_a_clear_message_and_loses_nothing(fake, tmp_path):
    db = tmp_path / "held.duckdb"
    harness.save_target(db, fake.url)
    done = harness.cli([*harness.run_args(db, "before"), "--quiet"])
    assert done.returncode == 0, done.stderr
    before = Store(db, readonly=True).completion_rows()
    holder = subprocess.Popen([PYTHON, "-c", f"import duckdb, sys, time\ncon = duckdb.connect({str(db)!r})\n"
                               "print('held', flush=True)\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        blocked = harness.cli([*harness.run_args(db, "blocked", groups=("asian",)), "--quiet"])
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert blocked.returncode == 1
    assert "in use by another process" in blocked.stderr and "Nothing was written" in blocked.stderr
    assert "Traceback" not in blocked.stderr and waited < 60  # it waited a bounded time, then said so
    after = Store(db, readonly=True)
    assert after.run("blocked") is None
    assert after.completion_rows().equals(before)  # what was stored before is there, unchanged
    again = harness.cli([*harness.run_args(db, "blocked", groups=("asian",)), "--quiet"])  # nothing lost: it runs now
    assert again.returncode == 0 and harness.check_run(db, "blocked").completions == 5


def test_a_completion_stored_by_another_process_keeps_its_own_verdicts(tmp_path):
    """Two processes executing one run: the first stores an error for a probe, the second an answer with a
    refusal verdict. The stored row is the first's error, so the second's verdict must not attach to it
    (it would count an error as a refusal). Found by the soak (`make soak`, concurrent resumes)."""
    from core.probes.builder import build_bundled
    from core.store import CompletionRecord, VerdictRecord

    store = Store(tmp_path / "race.duckdb")
    probe = build_bundled()[0]
    store.add_probes([probe])
    store.create_run("race", {}, [probe.probe_id])
    store.add_run_targets("race", ["m"])
    errored = CompletionRecord("race", probe.probe_id, "m", None, error="HTTP 400: fault 400")
    assert store.save_results([errored], []) == 1
    answered = CompletionRecord("race", probe.probe_id, "m", "I'm sorry, I can't help with that.")
    assert store.save_results([answered], [VerdictRecord(answered.completion_id, "refusal", "refused")]) == 0
    judged = store.judged("refusal", {"run_id": "race"})
    assert judged["error"].tolist() == ["HTTP 400: fault 400"] and judged["label"].isna().all()
    assert store.run_counts("race")["verdicts"] == 0
    # verdicts for completions already stored, with no completion in the batch, still land (judge_run)
    store.save_results([], [VerdictRecord(errored.completion_id, "human", "refused")])
    assert store.run_counts("race")["verdicts"] == 1
