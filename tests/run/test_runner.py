"""The runner with the real default model: judged completions stored per batch, resume without duplicates."""
from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import threading
import time

from core.judges import resolve_judge
from core.probes.builder import build_bundled
from core.probes.selection import Selection, select
from core.run.runner import execute_run, plan_run
from core.store import Store
from tests.fixtures.paths import ROOT
from tests.fixtures.cli import core_command, run_cli

pytestmark = pytest.mark.model  # real runs of the embedded default model


def _plan(db_path, n_groups=2):
    store = Store(db_path)
    selection = Selection(languages=("en",), groups=("black", "women", "jewish")[:n_groups],
                          strategies=("persona_assign", "chaining"), per_cell=1)
    probes = select(build_bundled(), selection)
    run_id = plan_run(store, probes, ["smollm2"], ["refusal"], {"selection": selection.to_dict()})
    return store, run_id, probes


def test_run_stores_one_judged_completion_per_probe(db_path, smollm2):
    store, run_id, probes = _plan(db_path)
    seen = []
    result = execute_run(store, run_id, [smollm2], [resolve_judge("refusal")], batch_size=2, on_progress=seen.append)
    assert result.status == "completed"
    assert result.counts == {"probes": 4, "targets": 1, "planned": 4, "completions": 4, "errors": 0, "verdicts": 4}
    assert [p.done for p in seen] == [0, 2, 4] and seen[-1].total == 4 and seen[-1].judged == 4
    rows = store.completion_rows({"run_id": run_id})
    assert sorted(rows["probe_id"]) == sorted(p.probe_id for p in probes)
    assert rows["completion"].str.len().min() > 0
    assert set(rows["verdict_refusal"]) <= {"refused", "complied"}
    assert store.run(run_id)["status"] == "completed"
    # executing a finished run again adds nothing
    assert execute_run(store, run_id, [smollm2], [resolve_judge("refusal")]).added == 0


def test_cancelled_run_resumes_where_it_stopped(db_path, smollm2):
    store, run_id, probes = _plan(db_path, n_groups=3)
    cancel = threading.Event()

    def stop_after_first_batch(progress):
        if progress.done >= 2:
            cancel.set()

    result = execute_run(store, run_id, [smollm2], [resolve_judge("refusal")], batch_size=2,
                         on_progress=stop_after_first_batch, cancel=cancel)
    assert result.status == "stopped" and result.counts["completions"] == 2
    assert store.run(run_id)["status"] == "stopped"
    resumed = execute_run(store, run_id, [smollm2], [resolve_judge("refusal")], batch_size=2)
    assert resumed.status == "completed" and resumed.added == 4
    rows = store.completion_rows({"run_id": run_id})
    assert len(rows) == 6 and rows["probe_id"].is_unique


def _cli_run(args, env):
    return run_cli("run", "--target", "smollm2", "--languages", "en", "--per-cell", "1", "--max-new-tokens", "8", *args, "--json", env=env)


def test_cli_run_once_per_cell_then_again_adds_nothing(db_path, cli_env):
    first = _cli_run(["--db", str(db_path), "--run-id", "acceptance", "--batch-size", "32"], cli_env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    # 13 English groups x (4 attack strategies + control), one probe each
    assert report == {"run_id": "acceptance", "status": "completed", "added": 65, "probes": 65, "targets": 1,
                      "planned": 65, "completions": 65, "errors": 0, "verdicts": 65, "pending": 0, "message": None}
    again = _cli_run(["--db", str(db_path), "--run-id", "acceptance"], cli_env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["completions"] == 65
    rows = Store(db_path).completion_rows({"run_id": "acceptance"})
    assert len(rows) == 65 and rows.groupby(["group", "strategy"]).size().eq(1).all()
    stats = run_cli("stats", "--by", "model,group,strategy", "--db", str(db_path), "--json", env=cli_env)
    cells = json.loads(stats.stdout)
    assert len(cells) == 52 and all(c["n"] == 1 and c["dr"] in (0.0, 1.0) for c in cells)


def test_killed_cli_run_resumes_with_exactly_one_completion_per_probe(db_path, cli_env):
    args = core_command("run", "--target", "smollm2", "--languages", "en", "--groups", "black,women,asian", "--per-cell", "1", "--max-new-tokens", "8", "--batch-size", "2", "--run-id", "killed", "--db", str(db_path))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env, cwd=ROOT, text=True)
    # the progress bar reports each stored batch on stderr: kill -9 after the second one
    deadline = time.monotonic() + 120
    buffer = ""
    while time.monotonic() < deadline and "4/15" not in buffer:
        chunk = os.read(proc.stderr.fileno(), 4096).decode()
        if not chunk:
            break
        buffer += chunk
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert "4/15" in buffer, buffer[-2000:]
    partial = Store(db_path).run_counts("killed")["completions"]
    assert 4 <= partial < 15
    resumed = subprocess.run([*args, "--json"], capture_output=True, text=True, env=cli_env, cwd=ROOT)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["completions"] == 15 and report["verdicts"] == 15 and report["added"] == 15 - partial
    rows = Store(db_path).completion_rows({"run_id": "killed"})
    assert rows["probe_id"].is_unique and len(rows) == 15


def test_bad_run_arguments_exit_2_without_a_traceback(db_path, cli_env):
    bad = _cli_run(["--db", str(db_path), "--groups", "martians"], cli_env)
    assert bad.returncode == 2 and "unknown group 'martians'" in bad.stderr and "Traceback" not in bad.stderr
    bad_target = run_cli("run", "--target", "gpt-9", "--db", str(db_path), env=cli_env)
    assert bad_target.returncode == 2 and "unknown target 'gpt-9'" in bad_target.stderr
    assert Store(db_path).runs().empty  # no half-made run left behind
