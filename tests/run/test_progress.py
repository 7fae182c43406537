"""Progress of the CLI's long commands (core.run.progress): a plain line every 5% on a pipe, never a carriage
return, a bounded number of lines for a whole run, nothing with --quiet; a live bar on a terminal."""
from __future__ import annotations

import io
import json
import subprocess

import pytest

from core.run.progress import Meter
from tests.fixtures import dashboard_db
from tests.fixtures.cli import run_cli


def test_plain_lines_every_five_percent_without_carriage_returns():
    out = io.StringIO()
    with Meter("work", total=10_000, unit="item", stream=out) as meter:
        for done in range(0, 10_001, 7):
            meter.update(done, note="dr 0.50")
        meter.update(10_000)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert 20 <= len(lines) <= 22
    assert lines[0].startswith("work: 0/10,000 items (0%)") and lines[-1].startswith("work: 10,000/10,000 items (100%)")
    assert lines[-1].endswith("; dr 0.50")


def test_quiet_writes_nothing_and_a_terminal_gets_a_live_bar():
    out = io.StringIO()
    with Meter("work", total=100, quiet=True, stream=out) as meter:
        for done in range(101):
            meter.update(done)
    assert out.getvalue() == ""
    live = io.StringIO()
    with Meter("work", total=100, stream=live, live=True) as meter:
        for done in range(101):
            meter.update(done)
    assert "\r" in live.getvalue() and "100/100" in live.getvalue()


def _cli(*args: str, env) -> subprocess.CompletedProcess:
    done = run_cli(*args, env={**env, "OMP_NUM_THREADS": "1"}, timeout=600)  # stderr is a pipe here, as in CI
    assert done.returncode == 0, done.stderr
    return done


@pytest.mark.model
def test_a_whole_run_on_a_pipe_prints_a_bounded_number_of_plain_lines(tmp_path, cli_env):
    db = tmp_path / "audit.duckdb"
    run = ["run", "--target", "smollm2", "--db", str(db), "--languages", "en", "--batch-size", "1",
           "--max-new-tokens", "1", "--json"]
    # 30 batches of one probe, 31 progress updates: at most one line per 5%
    done = _cli(*run, "--groups", "black,women,jewish", "--per-cell", "2", "--run-id", "piped", env=cli_env)
    assert json.loads(done.stdout)["completions"] == 30
    assert "\r" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("smollm2-135m-instruct: ")]
    assert 2 <= len(lines) <= 22 and len(done.stderr.splitlines()) <= 25, done.stderr
    assert lines[-1].startswith("smollm2-135m-instruct: 30/30 probes (100%)")
    assert any(" tok/s over the last " in line for line in lines), done.stderr  # the measured ETA (core.run.eta)

    quiet = _cli(*run, "--groups", "black", "--strategies", "chaining", "--per-cell", "2", "--run-id", "quiet",
                 "--quiet", env=cli_env)
    assert quiet.stderr == "" and json.loads(quiet.stdout)["completions"] == 2


@pytest.mark.parametrize("quiet", [False, True])
def test_judge_and_export_report_progress_on_a_pipe(tmp_path, cli_env, quiet):
    db = tmp_path / "audit.duckdb"
    dashboard_db.build(db)
    flag = ["--quiet"] if quiet else []
    judged = _cli("judge", "--run-id", "r1", "--judges", "refusal", "--rejudge", "--db", str(db), *flag, env=cli_env)
    exported = _cli("export", "--out", str(tmp_path / "rows.csv"), "--db", str(db), *flag, env=cli_env)
    for done, name in ((judged, "judging"), (exported, "export")):
        assert "\r" not in done.stderr
        progress = [line for line in done.stderr.splitlines() if line.startswith(f"{name}: ")]
        assert (progress == []) if quiet else (1 <= len(progress) <= 22), done.stderr
