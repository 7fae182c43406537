"""What the reliability tests and the soak share: the CLI as a user runs it, a kill -9 at a chosen moment,
and the check of what a database holds after any number of crashes.

Runs go to the loopback OpenAI-compatible server (tests/fixtures/fake_openai_server.py) through a target saved with
`python -m core targets add`, which is the product's own path for API models: the key comes from an
environment variable named by the target (a planted fake key here, searched for afterwards), and short
timeouts and few retries keep every wait bounded.
"""
from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core.judges.refusal import classify
from core.store import Store
from tests.fixtures.paths import ROOT
from tests.fixtures.fake_openai_server import default_reply
from tests.fixtures.cli import core_command, run_cli

KEY_ENV = "FORWHOM_RELIABILITY_KEY"
KEY = "sk-planted-reliab-9d3e71c2b4f8a6057e1d"  # a fake key: it must reach the server and nothing else
TARGET = "fake"
GROUPS = ("black", "women", "jewish")  # x 5 strategies (4 attacks + control) x per-cell 1 = 15 probes
CLI_TIMEOUT_S = 180.0  # no CLI call of these tests may take longer: a hang is a failure, not a stuck test
# Faults the soak and the fault tests draw from (401 is left out: it stops a target by design).
FAULT_MIX: dict[str, float] = {"429": 0.06, "500": 0.05, "503": 0.04, "malformed": 0.04, "empty": 0.03,
                               "drop": 0.04, "drip": 0.02, "hang": 0.02, "400": 0.02}


def cli_env() -> dict[str, str]:
    """The environment of a user's shell with the planted key set (and no other database chosen)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), KEY_ENV: KEY, "OMP_NUM_THREADS": "1"}
    env.pop("AUDIT_DB", None)
    env.pop("AUDIT_READONLY", None)
    return env


def cli(args: list[str], env: dict[str, str] | None = None,
        timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """`python -m core ARGS` to the end (bounded by `timeout`), with its exit code, stdout and stderr."""
    return run_cli(*args, env=env or cli_env(), timeout=timeout)


def save_target(db: Path, base_url: str, env: dict[str, str] | None = None, timeout_s: float = 1.0,
                max_retries: int = 3, concurrency: int = 4, outage_window_s: float | None = None,
                outage_failures: int | None = None) -> None:
    """Save the fake server as target `fake`: key from KEY_ENV, short per-request timeout, few retries (and, when
    given, when a server that stops answering counts as gone: see OutageWatch)."""
    outage = [*(["--outage-window", str(outage_window_s)] if outage_window_s is not None else []),
              *(["--outage-failures", str(outage_failures)] if outage_failures is not None else [])]
    done = cli(["targets", "add", TARGET, "--model", "fake-model", "--base-url", base_url, "--api-key-env", KEY_ENV,
                "--timeout", str(timeout_s), "--max-retries", str(max_retries), "--max-concurrency", str(concurrency),
                *outage, "--db", str(db)], env)
    assert done.returncode == 0, done.stderr


def run_args(db: Path, run_id: str, groups: tuple[str, ...] = GROUPS, per_cell: int = 1) -> list[str]:
    """A CLI run of the saved fake target over English probes of `groups` (resumes when run_id exists), judged by the
    `refusal` rules whose verdicts check_store compares with the server's texts."""
    return ["run", "--target", TARGET, "--languages", "en", "--groups", ",".join(groups), "--per-cell",
            str(per_cell), "--max-new-tokens", "16", "--batch-size", "4", "--judges", "refusal", "--run-id", run_id,
            "--db", str(db)]


@dataclass
class Kill:
    """One kill -9: when it was aimed, and whether the process was still running to receive it."""

    after_s: float
    landed: bool
    stderr: str = ""


def run_and_kill(args: list[str], after_s: float, env: dict[str, str] | None = None) -> Kill:
    """Start `python -m core ARGS` and kill -9 it `after_s` seconds later (if it has not ended by then)."""
    process = subprocess.Popen(core_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env or cli_env(), cwd=ROOT, text=True)
    try:
        process.wait(timeout=after_s)
        landed = False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        landed = True
    _, stderr = process.communicate(timeout=30)
    return Kill(after_s, landed, stderr)


# The CLI's progress on stderr: a bar's "done/total [" on a terminal, or core.run.progress's plain line on a pipe
# ("run smollm2: 12/30 probes (40%), ..."); counts may carry thousands separators.
_BAR = re.compile(rb"([\d,]+)/([\d,]+) (?:\[|\w+ \()")


def run_and_kill_after(args: list[str], stored: int, extra_s: float, env: dict[str, str] | None = None) -> Kill:
    """Start `python -m core ARGS` (with its progress bar) and kill -9 it `extra_s` seconds after the bar
    shows `stored` completions done: a point inside a run chosen by progress, not by the clock, so a slow
    machine moves the moment but not where in the run it falls."""
    process = subprocess.Popen(core_command(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=env or cli_env(), cwd=ROOT)
    seen, deadline = b"", time.monotonic() + CLI_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        if not select.select([process.stderr], [], [], 0.5)[0]:
            continue
        chunk = os.read(process.stderr.fileno(), 65536)
        seen += chunk
        done = _BAR.findall(seen[-4096:])
        if not chunk or (done and int(done[-1][0].replace(b",", b"")) >= stored):
            break
    time.sleep(extra_s)
    landed = process.poll() is None
    if landed:
        process.send_signal(signal.SIGKILL)
    rest = process.communicate(timeout=30)[1] or b""
    return Kill(extra_s, landed, (seen + rest).decode("utf-8", "replace"))


@dataclass
class StoreCheck:
    """What a database holds for one run after crashes and resumes, and every rule it breaks."""

    planned: int = 0
    completions: int = 0
    answered: int = 0
    errors: int = 0
    verdicts: int = 0
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)


def check_run(db: Path, run_id: str, complete: bool = True) -> StoreCheck:
    """Open the file read-only (it must open: no corruption) and check a run against the rules:

    one completion per (probe, target) planned, none twice; every answered completion holds the fake
    server's answer to its own prompt (a fixed refusal or compliance per prompt) and the refusal judge's
    verdict of that text; an errored completion has no verdict, so it can never be counted as a refusal. With complete=False, missing completions are allowed (a run still to resume).
    """
    store = Store(db, readonly=True, lock_timeout=30)
    found = StoreCheck()
    counts = store.run_counts(run_id)
    found.planned = counts["planned"]
    rows = store.completion_rows({"run_id": run_id})
    judged = store.judged("refusal", {"run_id": run_id}, with_text=True)
    found.completions, found.verdicts = len(rows), counts["verdicts"]
    found.errors = int(rows["error"].notna().sum()) if len(rows) else 0
    found.answered = found.completions - found.errors
    pairs = rows.groupby(["probe_id", "model"]).size() if len(rows) else []
    found.duplicates = int((pairs > 1).sum()) if len(rows) else 0
    found.lost = max(found.planned - found.completions, 0) if complete else 0
    if found.duplicates:
        found.problems.append(f"{found.duplicates} (probe, target) pairs with more than one completion")
    if complete and found.completions != found.planned:
        found.problems.append(f"{found.completions} completions for {found.planned} planned")
    for row in judged.itertuples():
        if isinstance(row.error, str):
            if isinstance(row.label, str):
                found.problems.append(f"{row.completion_id}: errored ({row.error[:60]}) but labelled {row.label}")
            continue
        if row.completion != default_reply(row.prompt):
            found.problems.append(f"{row.completion_id}: stored text is not the server's answer to its prompt")
        expected = classify(row.completion, row.language, row.prompt, row.kind).label
        if row.label != expected:
            found.problems.append(f"{row.completion_id}: its text judges {expected}, stored label {row.label}")
    if found.verdicts != found.answered:
        found.problems.append(f"{found.verdicts} verdicts for {found.answered} answered completions")
    return found


def file_contains(path: Path, secret: str) -> bool:
    """Whether the bytes of a file hold the secret (in UTF-8 or UTF-16, as DuckDB or a log might write it)."""
    data = path.read_bytes()
    return secret.encode() in data or secret.encode("utf-16-le") in data


def database_is_readable(db: Path) -> bool:
    """A plain DuckDB read-only open and a count over every table: what a corrupt file would fail."""
    with duckdb.connect(str(db), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            con.execute(f'SELECT count(*) FROM "{table}"').fetchall()  # names come from the catalog
    return True


def wait_for(condition, timeout: float, interval: float = 0.2) -> bool:
    """Poll `condition` until it is true or `timeout` passes (every wait in these tests has a limit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted: equal snapshots mean nothing stored changed."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [t for (t,) in con.execute("SELECT table_name FROM information_schema.tables "
                                             "ORDER BY table_name").fetchall()]
        return {table: sorted(con.execute(f'SELECT * FROM "{table}"').fetchall(), key=repr) for table in tables}


def stored_completions(db: Path, run_id: str) -> int:
    """Completions a run has stored so far, read while a writer may be busy (0 until the run exists)."""
    try:
        return Store(db, readonly=True, lock_timeout=2).run_counts(run_id)["completions"]
    except Exception:  # noqa: BLE001 - not created yet, or held for a moment by the writer: poll again
        return 0
