"""The soak (`make soak`): for some minutes, runs of the CLI against a fault-injecting OpenAI-compatible server,
each killed with kill -9 at random moments and resumed, a second process resuming the same run now and then,
and bad input thrown at the same database: bad input files (probe files, and every file fault of
tests/reliability/file_faults.py: dumps, taxonomies, MiJaBench-Align files, labels sheets, pairs, claims: each must
be refused with exit 2 and leave the database's rows and bytes as they were), bad option values and ids (nan, inf,
negatives, 0 workers, `../` run ids...), and writes in a read-only session (AUDIT_READONLY=1). Every third cycle the
server itself crashes mid-run instead (and is restarted): the run must stop early (exit 1, status stopped, nothing
stored as an error for it) and
resume. Each cycle ends with `--retry-errors` on the errors the faults left. It prints what it tried and what
survived, and exits 1 if any completion was lost or stored twice, a stored result changed, a retried error
was not replaced in place, or the database could not be read.

    python -m tests.reliability.soak --minutes 5 [--seed 1] [--db /tmp/soak.duckdb]
"""
from __future__ import annotations

import argparse
import collections
import hashlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.store import Store
from tests.fixtures.cli import core_command
from tests.fixtures.fake_openai_server import FakeOpenAIServer
from tests.fixtures.paths import ROOT
from tests.reliability import harness
from tests.reliability.cases import BAD_VALUES, PROBE_FILES, file_state, filled
from tests.reliability.file_faults import FAULTS, Workspace, attempt

ALL_GROUPS = ("black", "women", "jewish", "muslim", "asian", "latino", "lgbtq", "mexican")


def _bad_input(db: Path, rng: random.Random, tally: collections.Counter, ws: Workspace) -> list[str]:
    """One bad input file at the soak's database: a probe file of the test matrix, or (as often) any file fault of
    tests/reliability/file_faults.py (a dump, a taxonomy, a MiJaBench-Align file, a labels sheet, pairs, claims...).
    It must be refused (exit 2, file, line and reason, no traceback) and leave every stored row as it was."""
    if rng.random() < 0.5:
        return _file_fault(db, rng, tally, ws)
    name, data, message = PROBE_FILES[rng.randrange(len(PROBE_FILES))]
    before = harness.snapshot(db)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        refused = harness.cli(["probes", "import", str(path), "--db", str(db)])
    tally[f"bad input: {name}"] += 1
    problems = []
    if refused.returncode != 2 or f"{path}{message}" not in refused.stderr or "Traceback" in refused.stderr:
        problems.append(f"bad input {name}: exit {refused.returncode}: {refused.stderr[-300:]}")
    if harness.snapshot(db) != before:
        problems.append(f"bad input {name}: the stored rows changed")
    return problems


def _bad_option(db: Path, url: str, rng: random.Random, tally: collections.Counter) -> list[str]:
    """One bad option value or id of the test matrix: refused with exit 2 naming the option (no traceback), the
    database file unchanged to the byte and its mtime."""
    name, argv, message = BAD_VALUES[rng.randrange(len(BAD_VALUES))]
    before = file_state(db)
    with tempfile.TemporaryDirectory() as folder:
        refused = harness.cli([*filled(argv, Path(folder), url, db), "--db", str(db)])
    tally[f"bad option: {name}"] += 1
    problems = []
    if refused.returncode != 2 or message not in refused.stderr or "Traceback" in refused.stderr:
        problems.append(f"bad option {name}: exit {refused.returncode}: {refused.stderr[-300:]}")
    if file_state(db) != before:
        problems.append(f"bad option {name}: the database file changed")
    return problems


# Writes tried in a read-only session: every one must be refused before it opens the database.
READ_ONLY_WRITES: tuple[tuple[str, list[str]], ...] = (
    ("run", ["run", "--target", "fake", "--languages", "en", "--groups", "black", "--per-cell", "1", "--quiet"]),
    ("run", ["run", "--run-id", "{run_id}", "--retry-errors", "--quiet"]),
    ("targets add", ["targets", "add", "other", "--model", "m", "--base-url", "{url}"]),
    ("judge", ["judge", "--run-id", "{run_id}", "--rejudge", "--quiet"]),
    ("review sample", ["review", "sample", "--run-id", "{run_id}", "--fraction", "0.5", "--seed", "0"]),
    ("probes import", ["probes", "import", "{probes}"]),
    ("restore", ["restore", "{probes}"]),
)


def _read_only_write(db: Path, url: str, run_id: str, rng: random.Random, tally: collections.Counter) -> list[str]:
    """One write command with AUDIT_READONLY=1: exit 2 with the read-only message, the file unchanged."""
    name, argv = READ_ONLY_WRITES[rng.randrange(len(READ_ONLY_WRITES))]
    before = file_state(db)
    with tempfile.TemporaryDirectory() as folder:
        probes = Path(folder) / "probes.csv"
        probes.write_text("text,group,language,jb_strategy,jb_prompt\nseed,black,en,chaining,a prompt\n")
        filled = [arg.format(url=url, run_id=run_id, probes=probes) for arg in argv]
        refused = harness.cli([*filled, "--db", str(db)], env={**harness.cli_env(), "AUDIT_READONLY": "1"})
    tally[f"read-only write: {name}"] += 1
    problems = []
    if refused.returncode != 2 or f"read-only: {name} would write to" not in refused.stderr \
            or "Traceback" in refused.stderr:
        problems.append(f"read-only {name}: exit {refused.returncode}: {refused.stderr[-300:]}")
    if file_state(db) != before:
        problems.append(f"read-only {name}: the database file changed")
    return problems


def _file_fault(db: Path, rng: random.Random, tally: collections.Counter, ws: Workspace) -> list[str]:
    faults = [fault for fault in FAULTS if fault.any_db]
    fault = faults[rng.randrange(len(faults))]
    before, before_bytes = harness.snapshot(db), hashlib.sha256(db.read_bytes()).hexdigest()
    with tempfile.TemporaryDirectory() as folder:
        outcome = attempt(fault, ws, Path(folder), db=db)
    tally[f"bad input: {fault.surface}: {fault.name}{fault.suffix}"] += 1
    problems = []
    if outcome.code != 2 or not outcome.expected or outcome.traceback:
        problems.append(f"bad input {fault.surface} {fault.name}{fault.suffix}: exit {outcome.code}: "
                        f"{outcome.stderr[-300:]}")
    if outcome.created:
        problems.append(f"bad input {fault.surface} {fault.name}{fault.suffix}: created {outcome.created}")
    if harness.snapshot(db) != before or hashlib.sha256(db.read_bytes()).hexdigest() != before_bytes:
        problems.append(f"bad input {fault.surface} {fault.name}{fault.suffix}: the database changed")
    return problems


def _server_restart(server: FakeOpenAIServer, args: list[str], run_id: str, db: Path, rng: random.Random,
                    planned: int, tally: collections.Counter) -> list[str]:
    """Run to the end while the server crashes after a random number of requests: the run must stop early with
    the plain message and exit 1, status stopped, its unanswered probes pending (never errors); then restart it."""
    server.die_after(rng.randint(2, planned))
    done = harness.cli([*args, "--quiet"])
    server.behaviour.die_after = None  # a crash that did not come (the run ended first) is called off
    crashed = not server.alive
    if crashed:
        server.restart()
    tally["server crashes"] += crashed
    problems = []
    if "Traceback" in done.stderr:
        problems.append(f"{run_id}: a traceback when the server crashed: {done.stderr[-300:]}")
    run = Store(db, readonly=True, lock_timeout=30).run(run_id)
    if run is not None and run["status"] == "stopped":
        tally["runs stopped early (server gone)"] += 1
        if done.returncode != 1 or "is unreachable" not in done.stderr or "left pending" not in done.stderr:
            problems.append(f"{run_id}: stopped without the plain message and exit 1: {done.returncode} "
                            f"{done.stderr[-300:]}")
        midway = harness.check_run(db, run_id, complete=False)
        problems += [f"{run_id} after the crash: {p}" for p in midway.problems]
        tally["probes left pending by a crash"] += midway.planned - midway.completions
        if midway.completions == midway.planned:
            problems.append(f"{run_id}: stopped but nothing was left pending")
    elif crashed:
        problems.append(f"{run_id}: the server crashed but the run ended {run and run['status']} (exit "
                        f"{done.returncode}): {done.stderr[-300:]}")
    return problems


def _retry_errors(args: list[str], run_id: str, db: Path, before: harness.StoreCheck,
                  tally: collections.Counter) -> tuple[harness.StoreCheck, list[str]]:
    """`--retry-errors` on a finished run with errors: each retried error is replaced in place (same completion
    ids, one history row per replacement), nothing duplicated or lost."""
    store = Store(db, readonly=True, lock_timeout=30)
    ids = set(store.completion_rows({"run_id": run_id})["completion_id"])
    history = len(store.attempts(run_id))
    done = harness.cli([*args, "--quiet", "--retry-errors"])
    problems = []
    if "Traceback" in done.stderr or done.returncode not in (0, 1):
        problems.append(f"{run_id}: --retry-errors exited {done.returncode}: {done.stderr[-300:]}")
    after = harness.check_run(db, run_id)
    problems += [f"{run_id} after --retry-errors: {p}" for p in after.problems]
    store = Store(db, readonly=True, lock_timeout=30)
    if set(store.completion_rows({"run_id": run_id})["completion_id"]) != ids:
        problems.append(f"{run_id}: --retry-errors changed the set of completion ids")
    replaced = len(store.attempts(run_id)) - history
    repaired = before.errors - after.errors
    if not repaired <= replaced <= before.errors:
        problems.append(f"{run_id}: {replaced} history rows for {before.errors} errors retried, {repaired} answered")
    tally["errors retried"] += before.errors
    tally["errors answered on retry"] += repaired
    tally["retried rows replaced in place (history kept)"] += replaced
    return after, problems


def soak(minutes: float, seed: int, db: Path) -> int:
    rng = random.Random(seed)
    tally: collections.Counter = collections.Counter()
    problems: list[str] = []
    started = time.monotonic()
    workspace = Workspace(Path(tempfile.mkdtemp(prefix="forwhom-soak-faults-")))  # what the file faults are made of
    with FakeOpenAIServer(latency=0.4) as server:  # a run lasts seconds: kills land inside it
        server.behaviour.retry_after = 0.2
        server.behaviour.drip_chunk_delay = 0.3
        server.mix(harness.FAULT_MIX, seed=seed)
        # a short outage window: a crashed server stops a run about 2 s after the bound of 8 failures is reached
        harness.save_target(db, server.url, timeout_s=1.0, max_retries=3, concurrency=2, outage_window_s=2.0)
        cycle = 0
        while time.monotonic() - started < minutes * 60:
            cycle += 1
            run_id = f"soak-{cycle}"
            groups = tuple(rng.sample(ALL_GROUPS, rng.randint(1, 4)))
            args = harness.run_args(db, run_id, groups=groups, per_cell=2)
            if cycle % 3 == 0:  # the server crashes mid-run, then comes back
                problems += _server_restart(server, args, run_id, db, rng, 10 * len(groups), tally)
            for _ in range(rng.randint(1, 3) if cycle % 3 else 0):
                if rng.random() < 0.5:  # by the clock: anywhere from start-up to the end of a run
                    kill = harness.run_and_kill(args, after_s=rng.uniform(0.3, 10.0))
                else:  # by progress: after a random number of stored completions, a moment into a batch
                    kill = harness.run_and_kill_after(args, stored=rng.randrange(1, 10 * len(groups)),
                                                      extra_s=rng.uniform(0.0, 1.5))
                tally["kills aimed"] += 1
                tally["kills landed (process still running)"] += kill.landed
                if "Traceback" in kill.stderr:
                    problems.append(f"{run_id}: a traceback before the kill: {kill.stderr[-300:]}")
                if not harness.database_is_readable(db):
                    problems.append(f"{run_id}: database unreadable after a kill")
                if Store(db, readonly=True, lock_timeout=30).run(run_id) is not None:
                    midway = harness.check_run(db, run_id, complete=False)
                    tally["kills mid-run (0 < stored < planned)"] += kill.landed and 0 < midway.completions < midway.planned
                    problems += [f"{run_id} after a kill: {p}" for p in midway.problems]
            if cycle % 2 == 0:  # a second process resumes the same run while the first executes it
                tally["concurrent resumes"] += 1
                other = subprocess.Popen(core_command(*args, "--quiet"), cwd=ROOT, env=harness.cli_env(),
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            else:
                other = None
            resumed = harness.cli([*args, "--quiet"])
            tally["resumes"] += 1
            if other is not None:
                _, err = other.communicate(timeout=harness.CLI_TIMEOUT_S)
                if "Traceback" in err:
                    problems.append(f"{run_id}: the concurrent process printed a traceback: {err[-300:]}")
            if "Traceback" in resumed.stderr or resumed.returncode not in (0, 1):
                problems.append(f"{run_id}: resume exited {resumed.returncode}: {resumed.stderr[-300:]}")
            final = harness.check_run(db, run_id)
            problems += [f"{run_id}: {p}" for p in final.problems]
            if final.errors:
                final, found = _retry_errors(args, run_id, db, final, tally)
                problems += found
            tally["cycles"] += 1
            tally["completions planned"] += final.planned
            tally["completions stored"] += final.completions
            tally["answered (judged)"] += final.answered
            tally["errors left after --retry-errors"] += final.errors
            tally["duplicates"] += final.duplicates
            tally["lost"] += final.lost
            problems += _bad_input(db, rng, tally, workspace)  # a bad input file at the same database, every cycle
            problems += _bad_option(db, server.url, rng, tally)  # a bad option value or id
            problems += _read_only_write(db, server.url, run_id, rng, tally)  # a write in a read-only session
        faults = collections.Counter(entry.fault for entry in server.log())
    shutil.rmtree(workspace.folder, ignore_errors=True)
    elapsed = time.monotonic() - started
    print(f"soak: {elapsed / 60:.1f} min, seed {seed}, database {db}")
    print("tried:")
    for key in ("cycles", "kills aimed", "kills landed (process still running)", "kills mid-run (0 < stored < planned)",
                "resumes", "concurrent resumes", "server crashes", "runs stopped early (server gone)",
                "probes left pending by a crash"):
        print(f"  {key}: {tally[key]}")
    print(f"  requests to the fake server: {sum(faults.values())}")
    for fault, count in sorted(faults.items(), key=lambda item: -item[1]):
        print(f"    {fault}: {count}")
    bad = {key.removeprefix('bad input: '): n for key, n in tally.items() if key.startswith("bad input: ")}
    print(f"  bad input files: {sum(bad.values())} ({', '.join(f'{k} x{n}' for k, n in sorted(bad.items()))})")
    for label, prefix in (("bad option values and ids", "bad option: "), ("read-only writes", "read-only write: ")):
        tried = {key.removeprefix(prefix): n for key, n in tally.items() if key.startswith(prefix)}
        print(f"  {label}: {sum(tried.values())} ({', '.join(f'{k} x{n}' for k, n in sorted(tried.items()))})")
    print("survived:")
    for key in ("completions planned", "completions stored", "answered (judged)", "errors retried",
                "errors answered on retry", "retried rows replaced in place (history kept)",
                "errors left after --retry-errors", "duplicates", "lost"):
        print(f"  {key}: {tally[key]}")
    print(f"  database readable: {harness.database_is_readable(db)}")
    print(f"  problems: {len(problems)}")
    for problem in problems[:30]:
        print(f"    {problem}")
    return 1 if problems or tally["duplicates"] or tally["lost"] else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", type=Path, default=None, help="default: a new file in a temporary folder")
    args = parser.parse_args()
    if args.db is not None:
        return soak(args.minutes, args.seed, args.db)
    with tempfile.TemporaryDirectory(prefix="forwhom-soak-") as folder:
        return soak(args.minutes, args.seed, Path(folder) / "soak.duckdb")


if __name__ == "__main__":
    sys.exit(main())
