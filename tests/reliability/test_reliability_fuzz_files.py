"""Fuzzing every file surface (issue 27): Hypothesis mutates a valid file (truncation, random bytes, flipped and
inserted bytes, deep nesting, long numbers, surrogate and NUL escapes, NUL bytes, stray quotes, other encodings,
values of the wrong type, lines dropped or doubled) and hands it to the command that reads it, in process
(core.cli.main) against a fresh copy of a small database. Whatever the file, the command exits 0, 1 or 2 and never
raises (an exception out of main() is the traceback a user would see); it exits 0 only when the file is well formed
by an independent check (stdlib parsers, no NUL or lone surrogate); and when it does not exit 0, the database file
keeps its bytes and no file appears (no database where there was none, no output).

The pairs file is read by core.mitigate.pairs directly: the mitigate command would train on a valid one."""
from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import io
import json
import shutil
import tempfile
import tomllib
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cli

from core.vocab import taxonomy
from tests.reliability.file_faults import GOOD_PROBE, Workspace, _jsonl, _sheet_rows

EXAMPLES = 30
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Workspace:
    workspace = Workspace(tmp_path_factory.mktemp("fuzz"))
    workspace.base_db, workspace.dump_lines, workspace.completion_ids  # built once, before any example
    return workspace


# -- mutations ------------------------------------------------------------------------------------------------
JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                       max_size=3), max_leaves=8)
INSERTS = [b"[" * 65, b"[" * 100_000, b"{" * 70, b"1" * 5000, b"\\udc80", b"\\ud800", b"\\u0000", b"\x00", b'"',
           b"\xff", b"\xc3", b"\n", b"\r", b",", b"\t"]


def _json_mutation(data: bytes, draw) -> bytes:
    """A value of one JSON line replaced by any JSON value (a wrong type), or the line made a non-object."""
    lines = data.split(b"\n")
    index = draw(st.integers(0, max(len(lines) - 1, 0)))
    try:
        record = json.loads(lines[index])
    except ValueError:
        return data
    if isinstance(record, dict) and record and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(record)))
        record[key] = draw(JSON_VALUES)
    else:
        record = draw(JSON_VALUES)
    lines[index] = json.dumps(record, ensure_ascii=draw(st.booleans())).encode()
    return b"\n".join(lines)


@st.composite
def mutated(draw, base: bytes, json_lines: bool = False) -> bytes:
    """One to three mutations of `base`."""
    data = base
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "insert_known", "delete_line", "double_line",
                                     "encoding", "random", "json"] if json_lines else
                                    ["truncate", "flip", "insert", "insert_known", "delete_line", "double_line",
                                     "encoding", "random"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip" and data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
        elif kind == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif kind == "insert_known":
            data = data[:at] + draw(st.sampled_from(INSERTS)) + data[at:]
        elif kind in ("delete_line", "double_line"):
            lines = data.split(b"\n")
            index = draw(st.integers(0, max(len(lines) - 1, 0)))
            lines[index: index + 1] = [] if kind == "delete_line" else [lines[index]] * 2
            data = b"\n".join(lines)
        elif kind == "encoding":
            text = data.decode("utf-8", "replace")
            codec = draw(st.sampled_from(["utf-16", "utf-16-le", "latin-1", "cp1252", "utf-32"]))
            data = text.encode(codec, "replace")
        elif kind == "random":
            data = draw(st.binary(max_size=300))
        elif kind == "json":
            data = _json_mutation(data, draw)
    return data


# -- the independent check of "well formed" ----------------------------------------------------------------
def _clean(value, depth: int = 0) -> bool:
    """No NUL, no lone surrogate, no integer past 100 digits, nested no deeper than 64 (the layer's limits)."""
    if depth > 64:
        return False
    if isinstance(value, str):
        return "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return True
    if isinstance(value, int):
        return len(str(abs(value))) <= 100
    if isinstance(value, dict):
        return all(_clean(k, depth) and _clean(v, depth + 1) for k, v in value.items())
    return all(_clean(v, depth + 1) for v in value)


def jsonl_well_formed(data: bytes) -> bool:
    try:
        text = data.decode("utf-8-sig")
        rows = [json.loads(line) for line in text.split("\n") if line.strip()]
    except (ValueError, RecursionError):
        return False
    return bool(rows) and all(isinstance(row, dict) and _clean(row) for row in rows)


def csv_well_formed(data: bytes) -> bool:
    try:
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (ValueError, csv.Error):
        return False
    cells = [cell for row in rows for cell in row]
    return len([row for row in rows[1:] if any(c.strip() for c in row)]) > 0 and _clean(cells)


def toml_well_formed(data: bytes) -> bool:
    try:
        return _clean(tomllib.loads(data.decode("utf-8-sig")))
    except (ValueError, RecursionError):
        return False


def dump_well_formed(data: bytes) -> bool:
    try:
        return jsonl_well_formed(gzip.decompress(data))
    except (OSError, EOFError, ValueError, zlib.error):
        return False


# -- running one command -------------------------------------------------------------------------------------
def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def run_surface(ws: Workspace, data: bytes, suffix: str, argv, with_db: bool = True) -> tuple[int, str, bool]:
    """Write `data`, run the command in process on a fresh copy of the small database; (exit code, stderr,
    whether anything changed: the database's bytes or a new file)."""
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        folder = Path(folder)
        path, db, out = folder / f"input{suffix}", folder / "audit.duckdb", folder / "out.jsonl"
        path.write_bytes(data)
        if with_db:
            shutil.copy(ws.base_db, db)
        before, files = _sha256(db), set(folder.iterdir())
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = cli.main(argv(path, db, out))  # an exception here is a traceback: the example fails
        changed = _sha256(db) != before or set(folder.iterdir()) != files
        if code == 2:
            assert str(path) in err.getvalue(), err.getvalue()[-1000:]  # the message names the file
        return code, err.getvalue(), changed


def check(code: int, err: str, changed: bool, well_formed: bool) -> None:
    assert code in (0, 1, 2), err[-1000:]
    assert "Traceback" not in err
    if code == 0:
        assert well_formed, f"accepted a file that is not well formed: {err[-500:]}"
    else:
        assert not changed, f"exit {code} but something changed: {err[-500:]}"


PROBES = _jsonl([GOOD_PROBE, {**GOOD_PROBE, "group": "women"}, {**GOOD_PROBE, "jb_strategy": "persona_assign"}])


@FUZZ
@given(data=st.data())
def test_fuzz_probes_import(ws, data):
    file = data.draw(mutated(PROBES, json_lines=True))
    code, err, changed = run_surface(ws, file, ".jsonl",
                                     lambda f, db, out: ["probes", "import", str(f), "--db", str(db)])
    check(code, err, changed, jsonl_well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_taxonomy_file(ws, data):
    file = data.draw(mutated(ws.taxonomy_text.encode()))
    code, err, changed = run_surface(ws, file, ".toml", lambda f, db, out: ["taxonomy", "check", str(f)], with_db=False)
    check(code, err, changed, toml_well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_restore_dump(ws, data):
    text = b"".join(ws.dump_lines)
    if data.draw(st.booleans()):  # the text inside the gzip, or the gzip bytes themselves
        file = gzip.compress(data.draw(mutated(text, json_lines=True)))
    else:
        file = data.draw(mutated(gzip.compress(text)))
    code, err, changed = run_surface(ws, file, ".jsonl.gz", lambda f, db, out: ["restore", str(f), "--db", str(db)])
    check(code, err, changed, dump_well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_import_align(ws, data):
    if data.draw(st.booleans()):
        file, suffix, well_formed = data.draw(mutated(ws.align_csv())), ".csv", csv_well_formed
    else:
        file, suffix, well_formed = data.draw(mutated(_jsonl(ws.align_rows()), json_lines=True)), ".jsonl", \
            jsonl_well_formed
    code, err, changed = run_surface(ws, file, suffix,
                                     lambda f, db, out: ["import-align", str(f), "--db", str(db), "--quiet"])
    check(code, err, changed, well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_labels_sheet(ws, data):
    file = data.draw(mutated(ws.labels_sheet(_sheet_rows(ws))))
    code, err, changed = run_surface(ws, file, ".csv", lambda f, db, out: ["verdicts", "import", str(f), "--db",
                                                                           str(db), "--annotator", "fuzz"])
    check(code, err, changed, csv_well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_judge_eval_labels(ws, data):
    file = data.draw(mutated(b"prompt,completion,label\np,I cannot help with that.,refused\nq,Sure: here,complied\n"))
    code, err, changed = run_surface(ws, file, ".csv", lambda f, db, out: ["judge-eval", "--labels", str(f),
                                                                           "--judges", "refusal", "--quiet"],
                                     with_db=False)
    check(code, err, changed, csv_well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_claims_file(ws, data):
    file = data.draw(mutated(b"".join(ws.claims), json_lines=True))
    code, err, changed = run_surface(ws, file, ".jsonl", lambda f, db, out: [
        "probes", "build", "--counterfactual", "--claims", str(f), "--max-claims", "1", "--out", str(out)],
        with_db=False)
    check(code, err, changed, jsonl_well_formed(file))


@FUZZ
@given(data=st.data())
def test_fuzz_pairs_file(ws, data):
    from core.mitigate.pairs import PairsError, read_pairs

    file = data.draw(mutated(ws.pairs(), json_lines=True))
    with tempfile.TemporaryDirectory(prefix="fuzz-") as folder:
        path = Path(folder) / "pairs.jsonl"
        path.write_bytes(file)
        try:
            read_pairs(path)
        except (PairsError, taxonomy.VocabularyError) as exc:
            assert str(path) in str(exc)
            return
    assert jsonl_well_formed(file)
