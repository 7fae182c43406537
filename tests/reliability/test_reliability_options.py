"""Bad option values, ids and writes in a read-only session, through the CLI as a user runs it (a subprocess):
each is refused with exit 2 and one line naming the option and what it allows (or the command and the database),
no traceback, and the database file is byte for byte and mtime for mtime what it was. An error nobody anticipated
is one line and a log file, exit 1. Keys a server echoes back (in another case, or cut) are masked everywhere.

The rules themselves are core/options.py; tests/reliability/test_reliability_option_fuzz.py throws generated
values at the same surfaces."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core import cli
from core.store import Store
from tests.fixtures import dashboard_db
from tests.fixtures.cli import run_cli as core_cli
from tests.fixtures.paths import PYTHON, ROOT
from tests.reliability.cases import BAD_VALUES, SELECTION, file_state, filled

KEY_ENV = "FORWHOM_OPTIONS_KEY"
KEY = "sk-EchoTest-7f3a9c2e5b1d4068aa"  # a planted fake key: no 8 characters of it may be stored or printed


def env(**extra: str) -> dict[str, str]:
    values = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", KEY_ENV: KEY, **extra}
    for name in ("AUDIT_DB", "AUDIT_READONLY"):
        if name not in extra:
            values.pop(name, None)
    return values


def run_cli(argv: list[str], **extra: str) -> subprocess.CompletedProcess:
    return core_cli(*argv, env=env(**extra), timeout=180)



def state(db: Path) -> tuple:
    """file_state, and no new file beside it (the database is alone in its folder in these tests)."""
    return *file_state(db), sorted(p.name for p in db.parent.iterdir())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A database with a completed run r1 (two models, judged): the one every case starts from."""
    path = tmp_path_factory.mktemp("options") / "audit.duckdb"
    dashboard_db.build(path)
    return path


@pytest.fixture()
def db(built, tmp_path) -> Path:
    """A fresh copy per test, alone in its folder."""
    folder = tmp_path / "db"
    folder.mkdir()
    shutil.copy(built, folder / "audit.duckdb")
    return folder / "audit.duckdb"


def refused(db: Path, argv: list[str], says: str, **extra: str) -> subprocess.CompletedProcess:
    """Run argv against db: exit 2, `says` on stderr, no traceback, nothing on stdout, the file unchanged."""
    before = state(db)
    done = run_cli([*argv, "--db", str(db)], **extra)
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert says in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == "", done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert state(db) == before
    return done




@pytest.fixture()
def align_file(tmp_path) -> Path:
    filled([], tmp_path, "", Path())
    return tmp_path / "align.csv"


@pytest.mark.parametrize("argv,says", [case[1:] for case in BAD_VALUES], ids=[case[0] for case in BAD_VALUES])
def test_a_bad_value_is_refused_naming_the_option_and_its_range_before_anything_is_written(
        argv, says, db, fake, tmp_path):
    refused(db, filled(argv, tmp_path, fake.url, db), says)
    assert fake.log() == []  # nothing was sent either


def test_the_run_page_shows_the_same_message_as_the_cli(monkeypatch, tmp_path):
    """The Run page builds its request with core.run.request.RunRequest, which checks with the CLI's rules."""
    from core.options import OptionError
    from core.probes.selection import Selection
    from core.run.request import RunRequest

    with pytest.raises(OptionError) as caught:
        RunRequest(targets=("smollm2",), selection=Selection(per_cell=1), batch_size=0)
    assert str(caught.value) == "--batch-size 0: must be a whole number from 1 to 4,096"
    with pytest.raises(OptionError, match=r"^--temperature nan: must be a finite number from 0 to 2$"):
        RunRequest(targets=("smollm2",), temperature=float("nan"))
    from ui.jobs import MANAGER

    with pytest.raises(OptionError, match=r"^--run-id '\.\./x': an id is"):  # a run id from any caller
        MANAGER.start(tmp_path / "page.duckdb", RunRequest(targets=("smollm2",), selection=Selection(per_cell=1)),
                      run_id="../x")
    assert not (tmp_path / "page.duckdb").exists()


# -- read-only sessions ----------------------------------------------------------------------------------
def _write_commands(db: Path, fake_url: str, tmp_path: Path, align: Path) -> list[tuple[str, list[str]]]:
    """Every command that writes to the database, each with arguments that would succeed in a writable session."""
    probes = tmp_path / "probes.csv"
    probes.write_text("text,group,language,jb_strategy,jb_prompt\nseed,black,en,chaining,a new prompt\n")
    store = Store(db, readonly=True)
    labels = tmp_path / "labels.csv"
    labels.write_text(f"completion_id,label\n{store.completion_rows().iloc[0]['completion_id']},refused\n")
    dump = tmp_path / "dump.jsonl.gz"
    store.dump(dump)
    return [
        ("probes import", ["probes", "import", str(probes)]),
        ("verdicts import", ["verdicts", "import", str(labels), "--annotator", "me"]),
        ("targets add", ["targets", "add", "t3", "--model", "m", "--base-url", fake_url]),
        ("run", ["run", "--target", f"openai:fake-model@{fake_url}", *SELECTION, "--run-id", "new"]),
        ("run", ["run", "--run-id", "r1", "--quiet"]),  # a resume writes too
        ("review sample", ["review", "sample", "--run-id", "r1", "--fraction", "0.5", "--seed", "0"]),
        ("import-align", ["import-align", str(align), "--quiet"]),
        ("restore", ["restore", str(dump)]),
        ("judge", ["judge", "--run-id", "r1", "--quiet"]),
        ("judge", ["judge", "--run-id", "r1", "--rejudge", "--quiet"]),
        ("mitigate", ["mitigate", "--out", str(tmp_path / "adapter"), "--from-run", "r1"]),
    ]


@pytest.mark.slow
def test_every_write_command_is_refused_in_a_read_only_session_and_the_file_is_unchanged(db, fake, tmp_path,
                                                                                         align_file):
    commands = _write_commands(db, fake.url, tmp_path, align_file)
    assert {name for name, _ in commands} == {
        action.get_default("writes") for action in _subparsers() if action.get_default("writes")}
    for name, argv in commands:
        refused(db, argv, f"read-only: {name} would write to {db}; nothing was done (unset AUDIT_READONLY",
                AUDIT_READONLY="1")
    name, argv = commands[0]
    refused(db, ["--read-only", *argv], f"read-only: {name} would write to {db}; nothing was done (drop --read-only")
    refused(db, [*argv, "--read-only"], f"read-only: {name} would write to {db}")  # after the command too
    assert fake.log() == []


def _subparsers():
    """Every leaf subcommand parser of the CLI."""
    import argparse

    def walk(parser):
        children = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not children:
            yield parser
        for action in children:
            for child in action.choices.values():
                yield from walk(child)

    return list(walk(cli.build_parser()))


@pytest.mark.slow
def test_reads_work_in_a_read_only_session_and_leave_the_file_unchanged(db, tmp_path):
    before = state(db)
    out = tmp_path / "out"
    out.mkdir()
    for argv in (["stats"], ["info"], ["targets", "list"], ["review", "status"], ["export", "--out", str(out / "a.csv")],
                 ["export", "--format", "report", "--out", str(out / "r.html")],
                 ["run", "--plan", "--languages", "en", "--groups", "black"],  # sizes a run, creates none
                 ["restore", str(out / "none.jsonl.gz"), "--if-empty"]):  # a database with results is left as it is
        done = run_cli([*argv, "--db", str(db)], AUDIT_READONLY="1")
        assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stderr)
    assert (out / "a.csv").stat().st_size and (out / "r.html").stat().st_size
    assert state(db) == before


def test_the_dashboard_and_the_cli_read_the_same_setting(monkeypatch):
    from core.cli.common import read_only_requested
    from ui.common import readonly

    for value, expected in (("1", True), ("yes", True), ("TRUE", True), ("0", False), ("", False)):
        monkeypatch.setenv("AUDIT_READONLY", value)
        assert readonly() is expected and read_only_requested() is expected


# -- unexpected errors -----------------------------------------------------------------------------------
def test_an_unexpected_error_is_one_line_and_a_log_file(monkeypatch, tmp_path, capsys, db):
    from core.cli import info

    def broken(args):
        raise RuntimeError(f"something nobody planned for\nwith {KEY.upper()} in it")

    monkeypatch.setattr(info, "cmd_info", broken)
    monkeypatch.setenv("AUDIT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv(KEY_ENV, KEY)
    from core.redact import watch_env

    watch_env(KEY_ENV)
    assert cli.main(["info", "--db", str(db)]) == 1
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    [log] = (tmp_path / "logs").iterdir()
    assert line == f"error: RuntimeError: something nobody planned for with *** in it (details in {log})"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "raise RuntimeError" in text
    assert "python -m core info --db" in text and _fragments_in(text) == []

    monkeypatch.setattr(info, "cmd_info", lambda args: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert cli.main(["info", "--db", str(db)]) == 130 and capsys.readouterr().err == "stopped\n"


def test_an_unexpected_error_in_a_subprocess_prints_no_traceback(tmp_path):
    code = ("import sys\nfrom core.cli import info\n"
            "def broken(args):\n    raise KeyError('gone')\n"
            "info.cmd_info = broken\nfrom core.cli import main\nsys.exit(main(['info']))")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=env(AUDIT_LOG_DIR=str(tmp_path)))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: KeyError: 'gone' (details in ") and len(done.stderr.splitlines()) == 1
    assert "KeyError: 'gone'" in next(tmp_path.iterdir()).read_text()


# -- keys echoed back --------------------------------------------------------------------------------------
def _fragments_in(text: str, key: str = KEY) -> list[str]:
    """Every 8-character piece of the key found in the text, in any case."""
    folded, low = text.lower(), key.lower()
    return sorted({low[i:i + 8] for i in range(len(low) - 7) if low[i:i + 8] in folded})


ECHOES = (str.upper, str.lower, lambda key: key[:12], lambda key: key[9:19],
          lambda key: key[:6].upper() + key[6:20].lower())  # upper, lower, cut, a middle piece, mixed case


@pytest.mark.slow
def test_a_key_echoed_in_another_case_or_cut_is_masked_in_the_store_the_output_and_the_logs(fake, tmp_path):
    """400 and 500 answers are stored as completion errors (and the run's message, once every completion is one);
    401 stops the run with its message on stderr and in runs.message. Every form of the key is masked."""
    import itertools

    db = tmp_path / "db" / "audit.duckdb"
    logs = tmp_path / "logs"
    saved = run_cli(["targets", "add", "echo", "--model", "fake-model", "--base-url", fake.url, "--api-key-env",
                     KEY_ENV, "--max-retries", "0", "--db", str(db)])
    assert saved.returncode == 0, saved.stderr
    forms = itertools.cycle(ECHOES)
    runs = [("mixed-1", ("400", "500") * 3), ("mixed-2", ("500", "400") * 3)]  # each form meets a 400 and a 500
    runs += [(f"denied-{i}", ("401",)) for i in range(len(ECHOES))]  # a 401 stops the run: one form per run
    outputs = []
    for run_id, faults in runs:
        fake.reset()
        fake.behaviour.echo_key = lambda key: next(forms)(key)
        if faults == ("401",):
            fake.always("", "401")
        else:
            fake.script(*faults[:5])
        done = run_cli(["run", "--target", "echo", *SELECTION, "--run-id", run_id, "--db", str(db), "--json"],
                       AUDIT_LOG_DIR=str(logs))
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert all(entry.authorization == f"Bearer {KEY}" for entry in fake.log())  # the key did go out
        outputs.append(done.stdout + done.stderr)
    store = Store(db, readonly=True)
    # each run on its own: both answered the same probes, and a view counts one answer per probe (the latest run's)
    errors = [e for run in ("mixed-1", "mixed-2")
              for e in store.completion_rows({"run_id": [run]})["error"].dropna().tolist()]
    messages = store.runs()["message"].dropna().tolist()
    assert len(errors) == 10 and len(messages) == len(runs)
    assert all("***" in text for text in errors + messages)  # the echo was stored, masked
    dump = tmp_path / "dump.jsonl.gz"
    assert run_cli(["dump", str(dump), "--db", str(db)]).returncode == 0
    found = {"completions.error": _fragments_in("\n".join(errors)), "runs.message": _fragments_in("\n".join(messages)),
             "stdout/stderr": _fragments_in("\n".join(outputs)), "dump": _fragments_in(gzip.open(dump, "rt").read())}
    for path in [*db.parent.iterdir(), *(logs.iterdir() if logs.exists() else [])]:  # the file, its WAL, any log
        found[str(path)] = _fragments_in(path.read_bytes().decode("latin-1"))
    assert all(not pieces for pieces in found.values()), found
    assert json.loads(outputs[0].split("\n")[0])["errors"] == 5
