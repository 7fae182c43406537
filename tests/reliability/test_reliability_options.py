"""Bad option values, ids and writes in a read-only session, through the CLI as a user runs it (a subprocess):
each is refused with exit 2 and one line naming the option and what it allows (or the command and the database),
no traceback, and the database file is byte for byte and mtime for mtime what it was. An error nobody anticipated
is one line and a log file, exit 1. Keys a server echoes back (in another case, or cut) are masked everywhere.

The rules themselves are core/options.py; tests/reliability/test_reliability_option_fuzz.py throws generated
values at the same surfaces."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from core import cli
from core.store import Store
from tests.fixtures import dashboard_db
from tests.fixtures.paths import PYTHON, ROOT
from tests.fixtures.cli import run_cli as core_cli

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


def file_state(db: Path) -> tuple:
    """What must not change: the file's bytes and mtime, and whether a WAL is beside it."""
    return hashlib.sha256(db.read_bytes()).hexdigest(), db.stat().st_mtime_ns, Path(f"{db}.wal").exists()


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


# -- numbers and ids -------------------------------------------------------------------------------------
SELECTION = ["--languages", "en", "--groups", "black", "--per-cell", "1", "--quiet"]
# Targets that would answer at once if a value slipped through (the fake server of the reliability suite).
API_RUN = ["run", "--target", "openai:fake-model@{url}", *SELECTION]
LOCAL_RUN = ["run", "--target", "smollm2", *SELECTION]
ADD = ["targets", "add", "t2", "--model", "m", "--base-url", "{url}"]
BAD_VALUES: list[tuple[str, list[str], str]] = [  # id, argv, what stderr says
    ("run ray --ray-workers 0", [*API_RUN, "--executor", "ray", "--ray-workers", "0"],
     "--ray-workers 0: must be a whole number from 1 to 4,096"),
    ("run local --batch-size 0", [*LOCAL_RUN, "--batch-size", "0"], "--batch-size 0: must be a whole number from 1"),
    ("run API --batch-size 0", [*API_RUN, "--batch-size", "0"], "--batch-size 0: must be a whole number from 1"),
    ("run --batch-size 100000", [*LOCAL_RUN, "--batch-size", "100000"], "--batch-size 100000: must be a whole number"),
    ("run --temperature nan", [*API_RUN, "--temperature", "nan"], "--temperature nan: must be a finite number from 0 to 2"),
    ("run --temperature inf", [*API_RUN, "--temperature", "inf"], "--temperature inf: must be a finite number"),
    ("run --temperature 1e9", [*API_RUN, "--temperature", "1e9"], "--temperature 1000000000: must be a finite number"),
    ("run --temperature -1", [*API_RUN, "--temperature=-1"], "--temperature -1: must be a finite number from 0 to 2"),
    ("run --price-input -1", [*API_RUN, "--price-input=-1"], "--price-input -1: must be a finite number from 0 to"),
    ("run --price-output inf", [*API_RUN, "--price-output", "inf"], "--price-output inf: must be a finite number"),
    ("run --max-concurrency 0", [*API_RUN, "--max-concurrency", "0"], "--max-concurrency 0: must be a whole number"),
    ("run --max-new-tokens 0", [*API_RUN, "--max-new-tokens", "0"], "--max-new-tokens 0: must be a whole number"),
    ("run --per-cell 0", [*API_RUN, "--per-cell", "0"], "--per-cell 0: must be a whole number from 1"),
    ("run --seed -1", [*API_RUN, "--seed=-1"], "--seed -1: must be a whole number from 0"),
    ("run --run-id path and html", [*API_RUN, "--run-id", "../x<b>y</b>"], "--run-id '../x<b>y</b>': an id is 1 to 128"),
    ("run --run-id blank", [*API_RUN, "--run-id", " "], "--run-id ' ': an id is"),
    ("run --run-id too long", [*API_RUN, "--run-id", "r" * 129], ": an id is 1 to 128 letters, digits or . _ - : @"),
    ("targets add --rpm -1", [*ADD, "--rpm=-1"], "--rpm -1: must be a finite number above 0"),
    ("targets add --tpm 0", [*ADD, "--tpm", "0"], "--tpm 0: must be a finite number above 0"),
    ("targets add --timeout nan", [*ADD, "--timeout", "nan"], "--timeout nan: must be a finite number above 0"),
    ("targets add --timeout inf", [*ADD, "--timeout", "inf"], "--timeout inf: must be a finite number above 0"),
    ("targets add --temperature 1e9", [*ADD, "--temperature", "1e9"], "--temperature 1000000000: must be"),
    ("targets add --price-input -1", [*ADD, "--price-input=-1"], "--price-input -1: must be a finite number from 0"),
    ("targets add --price-output -0.5", [*ADD, "--price-output=-0.5"], "--price-output -0.5: must be"),
    ("targets add --max-concurrency 0", [*ADD, "--max-concurrency", "0"], "--max-concurrency 0: must be a whole"),
    ("targets add --max-retries -1", [*ADD, "--max-retries=-1"], "--max-retries -1: must be a whole number from 0"),
    ("targets add --outage-window nan", [*ADD, "--outage-window", "nan"], "--outage-window nan: must be"),
    ("targets add --outage-failures 0", [*ADD, "--outage-failures", "0"], "--outage-failures 0: must be a whole"),
    ("targets add --size-b -3", [*ADD, "--size-b=-3"], "--size-b -3: must be a finite number above 0"),
    ("targets add name with path and html", ["targets", "add", "../x<b>", "--model", "m", "--base-url", "{url}"],
     "target name '../x<b>': an id is 1 to 128"),
    ("targets add name read as a spec", ["targets", "add", "openai:x", "--model", "m", "--base-url", "{url}"],
     "target name 'openai:x': not smollm2 or gemma3-270m (built in), and no ':'"),
    ("import-align --run-id path and html", ["import-align", "{align}", "--run-id", "../x<script>", "--quiet"],
     "--run-id '../x<script>': an id is"),
    ("import-align model column not an id", ["import-align", "{bad_align}", "--quiet"],
     "column 'jb_response_../m<b>': the model '../m<b>' becomes a target id, and an id is 1 to 128"),
    ("export --out missing folder", ["export", "--out", "{missing}/deeper/x.csv"], "does not exist (create it first)"),
    ("export --out the database", ["export", "--out", "{db}"], "that is the database itself"),
    ("dump into a missing folder", ["dump", "{missing}/x.jsonl.gz"], "does not exist (create it first)"),
]


def filled(argv: list[str], folder: Path, url: str, db: Path) -> list[str]:
    """BAD_VALUES' argv with its placeholders filled: the server, the database, a missing folder and MiJaBench-Align
    files (a good one, and one whose model column is not an id) written into `folder`."""
    header = "text,group,language,scenario_category,scenario,jb_strategy,jb_prompt,jb_response_{}\n"
    row = "seed 1,black,english,History,A museum.,persona_assign,prompt 1,I can't.\n"
    (folder / "align.csv").write_text(header.format("m1") + row)
    (folder / "bad-align.csv").write_text(header.format("../m<b>") + row)
    return [arg.format(url=url, db=db, missing=folder / "nope", align=folder / "align.csv",
                       bad_align=folder / "bad-align.csv") for arg in argv]


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
    from core.run.request import RunRequest
    from core.options import OptionError
    from core.probes.selection import Selection

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
