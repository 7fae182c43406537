"""Bad input files change nothing (issue 27): every file a command reads, broken every way the tester found
(tests/reliability/file_faults.py lists them: truncated, random bytes, not UTF-8, nested 200,000 deep, a 5,000-digit
number, a lone surrogate, NUL bytes, a 50 MB field, header only, a quote left open, a directory or nothing where
the file should be, wrong types, unknown or missing columns, orphan rows, another population's dump, a stored
probe id with other content), is refused by the real CLI process with exit code 2 and a message naming the file,
the line (and column where there is one) and the reason, without a traceback; the database file's bytes are the
same afterwards, and a command that refused creates no file (no database where there was none, no output)."""
from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess

import pytest

from tests.fixtures.cli import run_cli
from tests.reliability import harness
from tests.reliability.file_faults import FAULTS, GOOD_PROBE, Workspace, _jsonl, _sheet_rows, attempt


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("file-faults"))


@pytest.mark.parametrize("fault", FAULTS, ids=[f"{f.surface.replace(' ', '-')}:{f.name}{f.suffix}" for f in FAULTS])
def test_a_bad_file_is_refused_with_its_location_and_changes_nothing(fault, workspace, tmp_path):
    outcome = attempt(fault, workspace, tmp_path / "case")
    assert "Traceback" not in outcome.stderr, outcome.stderr[-2000:]
    assert outcome.code == 2, outcome.stderr[-2000:]
    assert f"{outcome.path}{fault.message}" in outcome.stderr, outcome.stderr[-2000:]
    assert not outcome.store_changed, "the database file's bytes changed"
    assert outcome.created == [], f"a refused command created {outcome.created}"
    if fault.fresh_db:
        assert not (tmp_path / "case" / "audit.duckdb").exists()


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    return run_cli(*args, env=harness.cli_env(), timeout=300)


@pytest.mark.slow
def test_the_files_the_faults_are_made_from_are_accepted(workspace, tmp_path):
    """The control: each fault is a mutation of a file the same command accepts, so a refusal is the fault's."""
    db = tmp_path / "audit.duckdb"
    shutil.copy(workspace.base_db, db)
    files = {"probes.jsonl": _jsonl([GOOD_PROBE]), "taxonomy.toml": workspace.taxonomy_text.encode(),
             "dump.jsonl.gz": workspace.dump(workspace.dump_lines), "align.csv": workspace.align_csv(),
             "sheet.csv": workspace.labels_sheet(_sheet_rows(workspace)),
             "labels.csv": b"prompt,completion,label\np,I cannot help with that.,refused\n",
             "claims.jsonl": b"".join(workspace.claims)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    f = {name: str(tmp_path / name) for name in files}
    for args in (["probes", "import", f["probes.jsonl"], "--db", str(db)], ["taxonomy", "check", f["taxonomy.toml"]],
                 ["restore", f["dump.jsonl.gz"], "--db", str(db)],
                 ["import-align", f["align.csv"], "--quiet", "--db", str(db)],
                 ["verdicts", "import", f["sheet.csv"], "--annotator", "tester", "--db", str(db)],
                 ["judge-eval", "--labels", f["labels.csv"], "--judges", "refusal", "--quiet"],
                 ["probes", "build", "--counterfactual", "--claims", f["claims.jsonl"], "--out",
                  str(tmp_path / "built.jsonl")]):
        done = _cli(args)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (args, done.stderr[-2000:])
    from core.mitigate.pairs import read_pairs

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_bytes(workspace.pairs())
    assert len(read_pairs(pairs).pairs) == 3  # the mitigate command would go on to train: read it here


def test_restoring_a_missing_dump_creates_no_database_and_a_good_one_still_restores(workspace, tmp_path):
    db = tmp_path / "new.duckdb"
    missing = _cli(["restore", str(tmp_path / "nothing.jsonl.gz"), "--db", str(db)])
    assert missing.returncode == 2 and f"{tmp_path / 'nothing.jsonl.gz'}: no such file" in missing.stderr
    assert not db.exists() and list(tmp_path.iterdir()) == []
    dump = tmp_path / "dump.jsonl.gz"
    dump.write_bytes(workspace.dump(workspace.dump_lines))
    done = _cli(["restore", str(dump), "--db", str(db), "--json"])
    assert done.returncode == 0, done.stderr
    again = _cli(["restore", str(dump), "--db", str(db)])  # every row present already: nothing added
    assert again.returncode == 0 and "completions +0" in again.stdout


def test_a_dump_refused_inside_the_transaction_leaves_a_new_database_absent_and_an_old_one_unchanged(
        workspace, tmp_path):
    """An orphan verdict is only known against the database: the refusal comes after it is opened. The file the
    command created for it is removed again; an existing file keeps its bytes."""
    lines = list(workspace.dump_lines)
    orphan = [i for i, line in enumerate(lines) if b'"table": "verdicts"' in line][0]
    lines[orphan] = lines[orphan].replace(lines[orphan][lines[orphan].index(b'"completion_id": "') + 18:][:20],
                                          b"f" * 20)
    dump = tmp_path / "orphan.jsonl.gz"
    dump.write_bytes(gzip.compress(b"".join(lines)))
    fresh = tmp_path / "fresh.duckdb"
    done = _cli(["restore", str(dump), "--db", str(fresh)])
    assert done.returncode == 2 and "which neither the dump nor the database holds" in done.stderr, done.stderr
    assert not fresh.exists() and not fresh.with_name("fresh.duckdb.wal").exists()
    old = tmp_path / "old.duckdb"
    shutil.copy(workspace.base_db, old)
    before = _sha256(old)
    done = _cli(["restore", str(dump), "--db", str(old)])
    assert done.returncode == 2 and _sha256(old) == before, done.stderr
