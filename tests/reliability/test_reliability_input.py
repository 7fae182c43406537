"""Bad input: probe files (CSV, JSONL, Parquet) and judge-eval label files that are malformed, truncated, in
the wrong encoding, with wrong columns, oversized, or with unknown groups/strategies, empty or 1 MB prompts.
Each is refused through the CLI with exit code 2 and a message naming the file, the line and the reason,
no traceback, and the database it was to be imported into is unchanged, row for row."""
from __future__ import annotations

import json

import pytest

from core import cli
from tests.fixtures import dashboard_db
from tests.fixtures.cli import run_cli
from tests.reliability import harness
from tests.reliability.cases import GOOD, PROBE_FILES, _csv

LABELS_HEADER = b"prompt,completion,label\n"
LABEL_FILES: list[tuple[str, bytes, str]] = [
    ("truncated.csv", LABELS_HEADER + b'p,"a completion cut off,refused\n', ":2:3: malformed CSV record"),
    ("extra-fields.csv", LABELS_HEADER + b"p,c,refused,surplus\n", ":2: 4 fields, but the header has 3"),
    ("latin1.csv", LABELS_HEADER + "p,r\xe9ponse,refused\n".encode("latin-1"), ":2:4: not UTF-8 (byte 0xe9)"),
    ("utf16.csv", (LABELS_HEADER + b"p,c,refused\n").decode().encode("utf-16"), ":1:1: the file looks like UTF-16"),
    ("wrong-columns.csv", b"question,answer,verdict\np,c,refused\n", ":1: missing columns 'prompt', 'completion'"),
    ("unknown-label.csv", LABELS_HEADER + b"p,c,maybe\n", ":2:3: unknown label 'maybe'"),
    ("unknown-kind.csv", b"prompt,completion,label,kind\np,c,refused,exam\n", ":2:4: unknown kind 'exam'"),
    ("empty.csv", b"", ":1: the file is empty"),
    ("header-only.csv", LABELS_HEADER, ":2: no labelled rows after the header"),
]


@pytest.fixture(scope="module")
def audit_db(tmp_path_factory):
    """A database with runs, completions and verdicts already stored: bad imports must not touch it."""
    path = tmp_path_factory.mktemp("bad-input") / "audit.duckdb"
    dashboard_db.build(path)
    return path


def _cli(argv: list[str], capsys) -> tuple[int, str]:
    code = cli.main(argv)  # an uncaught exception here is a traceback a user would see: the test fails
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name,data,message", PROBE_FILES, ids=[case[0] for case in PROBE_FILES])
def test_bad_probe_file_is_refused_with_file_line_and_reason_and_nothing_stored_changes(
        name, data, message, audit_db, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    before = harness.snapshot(audit_db)
    code, err = _cli(["probes", "import", str(path), "--db", str(audit_db)], capsys)
    assert code == 2, err
    assert f"{path}{message}" in err, err
    assert harness.snapshot(audit_db) == before


def test_oversized_probe_and_label_files_are_refused_before_reading(audit_db, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUDIT_MAX_INPUT_MB", "0.5")
    probes = tmp_path / "large.csv"
    probes.write_bytes(_csv([dict(GOOD, jb_prompt=f"prompt {i} " + "y" * 100) for i in range(6000)]))
    before = harness.snapshot(audit_db)
    code, err = _cli(["probes", "import", str(probes), "--db", str(audit_db)], capsys)
    assert code == 2 and f"{probes}: the file is 0.8 MB, larger than the limit of 0.5 MB" in err, err
    assert "AUDIT_MAX_INPUT_MB" in err and harness.snapshot(audit_db) == before
    labels = tmp_path / "labels.csv"
    labels.write_bytes(LABELS_HEADER + b"p,c,refused\n" * 50_000)
    code, err = _cli(["judge-eval", "--labels", str(labels), "--quiet"], capsys)
    assert code == 2 and f"{labels}: the file is 0.6 MB, larger than the limit of 0.5 MB" in err, err


@pytest.mark.parametrize("name,data,message", LABEL_FILES, ids=[case[0] for case in LABEL_FILES])
def test_bad_label_file_is_refused_with_file_line_and_reason(name, data, message, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    code, err = _cli(["judge-eval", "--labels", str(path), "--quiet"], capsys)
    assert code == 2, err
    assert f"{path}{message}" in err, err


def test_a_megabyte_completion_in_a_labels_file_is_judged_not_refused(tmp_path, capsys):
    path = tmp_path / "long.csv"
    path.write_bytes(LABELS_HEADER + b"p,I'm sorry but I can't help with that.,refused\np," + b"z" * 1_000_000
                     + b",complied\n")
    code = cli.main(["judge-eval", "--labels", str(path), "--quiet", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["n"] == 2


def test_bad_files_through_the_real_cli_process_exit_2_without_a_traceback(audit_db, tmp_path):
    """The same refusals from a separate `python -m core` process, as a script or CI job sees them."""
    before = harness.snapshot(audit_db)
    for name, data, message in (PROBE_FILES[1], PROBE_FILES[5], PROBE_FILES[15]):
        path = tmp_path / name
        path.write_bytes(data)
        done = run_cli("probes", "import", str(path), "--db", str(audit_db), env=harness.cli_env(), timeout=120)
        assert done.returncode == 2 and f"{path}{message}" in done.stderr and "Traceback" not in done.stderr
    assert harness.snapshot(audit_db) == before
