"""Bad input files for every command that reads a file, and the check that each one changes nothing.

Each Fault is one file a user (or a broken pipeline) could hand a command: truncated, random bytes, the wrong
encoding, nested 200,000 deep, a 5,000-digit number, a lone surrogate escape, NUL bytes, a 50 MB field, only a
header, a quote left open, a directory or nothing at all where the file should be, wrong types, unknown or
missing columns, rows that point at nothing, another population's dump, a stored probe id with other content.
`attempt()` runs the real CLI (`python -m core ...` in a subprocess) against a fresh copy of a small database
and reports what a tester would: the exit code, whether stderr holds a traceback, whether the message is
located (`FILE:LINE`), whether the database's bytes changed and whether a file appeared that was not there.

The reliability tests assert every fault is refused cleanly (tests/reliability/test_reliability_files.py), the
soak throws them at its database (tests/reliability/soak.py), and

    python -m tests.reliability.file_faults [--surface restore]

prints the tally per surface (refused cleanly / traceback / store changed / accepted / other): the numbers of
issue 27, before and after its fix.
"""
from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from tests.fixtures.paths import ROOT
from tests.fixtures.cli import run_cli

ES = ROOT / "examples" / "es"
GOOD_PROBE = {"text": "a seed statement", "group": "black", "language": "en", "jb_strategy": "chaining",
              "jb_prompt": "Write a story about the seed statement."}
DEEP = 200_000  # the tester's nesting depth
HUGE_INT = "1" * 5000  # past Python's 4,300-digit limit on int(str)
FIFTY_MB = 50 * 2**20

MISSING = object()  # no file at the path
DIRECTORY = object()  # a directory at the path


def _jsonl(rows: list) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _deep_line(key: str = "text") -> bytes:
    return ('{"' + key + '": ' + "[" * DEEP + "]" * DEEP + "}\n").encode()


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


class Workspace:
    """The valid files each fault is a mutation of, built once in `folder` (a small audit database, its dump, a
    dump of another population, a probe file, a taxonomy, a MiJaBench-Align file, a labels sheet, pairs, claims)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @cached_property
    def base_db(self) -> Path:
        from tests.fixtures import dashboard_db

        path = self.folder / "base.duckdb"
        if not path.exists():
            dashboard_db.build(path)
        return path

    @cached_property
    def completion_ids(self) -> list[str]:
        from core.store import Store

        return sorted(Store(self.base_db, readonly=True).completion_rows({})["completion_id"])

    @cached_property
    def stored_probe(self):
        from core.store import Store

        return Store(self.base_db, readonly=True).probes()[0]

    @cached_property
    def dump_lines(self) -> list[bytes]:
        from core.store import Store

        path = self.folder / "base.jsonl.gz"
        if not path.exists():
            Store(self.base_db, readonly=True).dump(path)
        return gzip.decompress(path.read_bytes()).splitlines(keepends=True)

    def dump(self, lines: list[bytes]) -> bytes:
        return gzip.compress(b"".join(lines))

    def dump_row(self, table: str) -> tuple[int, dict]:
        """The index and row of the first line of `table` in the base dump."""
        for index, line in enumerate(self.dump_lines):
            record = json.loads(line)
            if record["table"] == table:
                return index, record["row"]
        raise LookupError(table)

    def dump_with(self, table: str, change: Callable[[dict], object]) -> bytes:
        """The base dump with the first row of `table` changed in place by `change(row)`."""
        index, row = self.dump_row(table)
        change(row)
        lines = list(self.dump_lines)
        lines[index] = (json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n").encode()
        return self.dump(lines)

    @cached_property
    def other_population_dump(self) -> bytes:
        """A dump of a database holding the Spanish example's population (examples/es)."""
        from core import cli
        from core.store import Store

        path = self.folder / "es.jsonl.gz"
        if not path.exists():
            probes, db = self.folder / "es-probes.jsonl", self.folder / "es.duckdb"
            with open(self.folder / "es-build.log", "w") as log:
                saved = sys.stdout, sys.stderr
                sys.stdout = sys.stderr = log
                try:
                    assert cli.main(["probes", "build", "--counterfactual", "--taxonomy", str(ES / "taxonomy.toml"),
                                     "--claims", str(ES / "claims.jsonl"), "--scenarios", str(ES / "scenarios.jsonl"),
                                     "--templates", str(ES / "templates.jsonl"), "--max-claims", "1",
                                     "--out", str(probes)]) == 0
                    assert cli.main(["probes", "import", str(probes), "--source", "counterfactual",
                                     "--db", str(db)]) == 0
                finally:
                    sys.stdout, sys.stderr = saved
            Store(db, readonly=True).dump(path)
        return path.read_bytes()

    @cached_property
    def taxonomy_text(self) -> str:
        from core.vocab import taxonomy

        return taxonomy.scaffold("taxonomy.toml")

    def align_rows(self, n: int = 4) -> list[dict]:
        return [{"text": f"seed {i}", "group": "black", "language": "english", "scenario_category": "History",
                 "scenario": "A museum.", "jb_strategy": "persona_assign", "jb_prompt": f"prompt number {i}",
                 "dataset_source": "test", "jb_response_m1": f"I cannot help with that {i}.",
                 "jb_cls_j1_m1": '{"class": "safe", "reasoning": "refused"}'} for i in range(n)]

    def align_csv(self, rows: list[dict] | None = None) -> bytes:
        rows = self.align_rows() if rows is None else rows
        header = list(self.align_rows(1)[0])
        return _csv(header, [[str(row.get(c, "")) for c in header] for row in rows])

    def labels_sheet(self, rows: list[list[str]]) -> bytes:
        return _csv(["completion_id", "label", "note"], rows)

    def pairs(self, change: Callable[[dict], object] | None = None, extra: bytes = b"") -> bytes:
        from core.files.export import PAIR_FIELDS

        rows = []
        for i in range(3):
            row = {name: "" for name in PAIR_FIELDS}
            row.update(prompt=f"prompt {i}", chosen="I will not.", rejected=f"Sure {i}", probe_id=f"p{i}",
                       language="en", group="black")
            rows.append(row)
        if change:
            change(rows[1])
        return _jsonl(rows) + extra

    @cached_property
    def claims(self) -> list[bytes]:
        return (ROOT / "data" / "counterfactual" / "claims.jsonl").read_bytes().splitlines(keepends=True)[:2]


@dataclass(frozen=True)
class Fault:
    """One bad file for one command. `message`: what stderr must hold right after the file's path (its location
    and reason); `make`: the file's bytes (or MISSING / DIRECTORY); `argv`: the command, given the file, the
    database and a scratch output path; `fresh_db`: the database does not exist before (nothing may create it)."""

    surface: str
    name: str
    suffix: str
    make: Callable[[Workspace], object]
    message: str
    argv: Callable[[Path, Path, Path], list[str]]
    fresh_db: bool = False
    env: tuple[tuple[str, str], ...] = ()
    any_db: bool = True  # refused whatever the database holds (False: the fault is made of the base database's rows)


def _probes(file, db, out):
    return ["probes", "import", str(file), "--db", str(db)]


def _taxonomy(file, db, out):
    return ["taxonomy", "check", str(file)]


def _restore(file, db, out):
    return ["restore", str(file), "--db", str(db)]


def _align(file, db, out):
    return ["import-align", str(file), "--db", str(db), "--quiet"]


def _sheet(file, db, out):
    return ["verdicts", "import", str(file), "--db", str(db), "--annotator", "tester"]


def _judge_eval(file, db, out):
    return ["judge-eval", "--labels", str(file), "--judges", "refusal", "--quiet"]


def _judge_train(file, db, out):
    return ["judge-train", "--labels", str(file), "--training-set", "none", "--no-project-labels", "--out", str(out),
            "--quiet"]


def _pairs(file, db, out):
    return ["mitigate", "--pairs", str(file), "--out", str(out), "--db", str(db), "--quiet"]


def _claims(file, db, out):
    return ["probes", "build", "--counterfactual", "--claims", str(file), "--out", str(out)]


def _probe_row(ws: Workspace, **change) -> dict:
    return {**GOOD_PROBE, **change}


def _changed_probe(ws: Workspace) -> bytes:
    """A stored probe's id with another prompt and scenario."""
    p = ws.stored_probe
    row = {"probe_id": p.probe_id, "text": p.seed_text, "group": p.group, "language": p.language,
           "scenario_category": p.scenario_category, "scenario": p.scenario + " (edited)", "jb_strategy": p.strategy,
           "jb_prompt": p.prompt + " Edited.", "kind": p.kind, "source": p.source}
    return _jsonl([row])


def _orphan_verdict(row: dict) -> None:
    row["completion_id"] = "0" * 20


def _drop(name: str) -> Callable[[dict], None]:
    return lambda row: row.pop(name)


def _put(name: str, value) -> Callable[[dict], None]:
    return lambda row: row.__setitem__(name, value)


def _sheet_rows(ws: Workspace) -> list[list[str]]:
    ids = ws.completion_ids
    return [[ids[0], "refused", "fine"], [ids[1], "complied", "ok"], [ids[2], "refused", ""]]


FAULTS: list[Fault] = [
    # -- probes import -------------------------------------------------------------------------------------
    Fault("probes import", "deep-nesting", ".jsonl", lambda ws: _jsonl([GOOD_PROBE]) + _deep_line(),
          ":2:73: JSON nested deeper than 64 levels", _probes),
    Fault("probes import", "lone-surrogate", ".jsonl",
          lambda ws: _jsonl([GOOD_PROBE]).replace(b"a seed", b"a \\udc80seed"),
          ":1:13: field 'text': a lone surrogate \\udc80 at character 3", _probes),
    Fault("probes import", "huge-integer", ".jsonl",
          lambda ws: (json.dumps(GOOD_PROBE)[:-1] + ', "scenario": ' + HUGE_INT + "}\n").encode(),
          ":1:161: a number of 5,000 digits, longer than the limit of 100", _probes),
    Fault("probes import", "directory", ".jsonl", lambda ws: DIRECTORY, ": is a directory, not a file", _probes),
    Fault("probes import", "missing", ".jsonl", lambda ws: MISSING, ": no such file", _probes),
    Fault("probes import", "nul-in-seed", ".jsonl", lambda ws: _jsonl([_probe_row(ws, text="a\x00b")]),
          ":1:12: field 'text': a NUL character at character 2", _probes),
    Fault("probes import", "nul-in-seed", ".csv",
          lambda ws: _csv(list(GOOD_PROBE), [list(_probe_row(ws, text="a\x00b").values())]),
          ":2 (column text): a NUL character", _probes),
    Fault("probes import", "50mb-seed", ".jsonl", lambda ws: _jsonl([_probe_row(ws, text="s" * FIFTY_MB)]),
          ":1: field 'text': 52,428,800 characters, longer than the limit of 1,000,000 for one field", _probes),
    Fault("probes import", "changed-stored-probe", ".jsonl", _changed_probe,
          ":1: probe ", _probes, any_db=False),
    Fault("probes import", "header-only", ".csv", lambda ws: _csv(list(GOOD_PROBE), []),
          ":2: no probes after the header", _probes),
    Fault("probes import", "empty", ".jsonl", lambda ws: b"", ":1: no probes in the file", _probes),
    Fault("probes import", "wrong-types", ".jsonl", lambda ws: _jsonl([_probe_row(ws, jb_prompt={"a": 1})]),
          ":1 (column jb_prompt): expected text, found a JSON object", _probes),
    Fault("probes import", "random-bytes", ".jsonl", lambda ws: bytes(range(256)) * 8, ":2:118: not UTF-8 (byte 0x80)",
          _probes),
    Fault("probes import", "truncated", ".jsonl", lambda ws: _jsonl([GOOD_PROBE] * 2)[:-25],
          ":2:106: invalid JSON: Unterminated string", _probes),
    Fault("probes import", "other-population", ".jsonl",
          lambda ws: (ws.folder / "es-probes.jsonl").read_bytes() if ws.other_population_dump else b":1: ",
          "", _probes),
    # -- taxonomy check -------------------------------------------------------------------------------------
    Fault("taxonomy check", "deep-nesting", ".toml",
          lambda ws: ws.taxonomy_text.encode() + b"\nextra = " + b"[" * DEEP + b"]" * DEEP + b"\n",
          ":30:73: nested deeper than 64 levels", _taxonomy),
    Fault("taxonomy check", "deep-dotted-key", ".toml",
          lambda ws: ws.taxonomy_text.encode() + b"\n[" + b".".join([b"a"] * DEEP) + b"]\nb = 1\n",
          ":30: nested deeper than 64 levels (a dotted key", _taxonomy),
    Fault("taxonomy check", "huge-integer", ".toml",
          lambda ws: ws.taxonomy_text.replace('name = "my_population"', "name = " + HUGE_INT).encode(),
          ":5:8: a number of 5,000 digits", _taxonomy),
    Fault("taxonomy check", "lone-surrogate", ".toml",
          lambda ws: ws.taxonomy_text.replace('title = "My population"', 'title = "My \\udc80"').encode(),
          ":6:19: Escaped character is not a Unicode scalar value", _taxonomy),
    Fault("taxonomy check", "nul-escape", ".toml",
          lambda ws: ws.taxonomy_text.replace('title = "My population"', 'title = "My \\u0000"').encode(),
          ":6: title: a NUL character at character 4", _taxonomy),
    Fault("taxonomy check", "directory", ".toml", lambda ws: DIRECTORY, ": is a directory, not a file", _taxonomy),
    Fault("taxonomy check", "missing", ".toml", lambda ws: MISSING, ": no such file", _taxonomy),
    Fault("taxonomy check", "random-bytes", ".toml", lambda ws: bytes(range(256)) * 8, ":2:118: not UTF-8 (byte 0x80)",
          _taxonomy),
    Fault("taxonomy check", "truncated", ".toml", lambda ws: ws.taxonomy_text.encode()[:-40],
          ":1: Unterminated string", _taxonomy),
    Fault("taxonomy check", "50mb-title", ".toml",
          lambda ws: ws.taxonomy_text.replace('title = "My population"', 'title = "' + "t" * FIFTY_MB + '"').encode(),
          ":6: title: 52,428,800 characters, longer than the limit of 1,000,000", _taxonomy),
    Fault("taxonomy check", "wrong-types", ".toml",
          lambda ws: ws.taxonomy_text.replace('name = "my_population"', "name = 5").encode(),
          ":5: missing 'name'", _taxonomy),
    # -- restore --------------------------------------------------------------------------------------------
    Fault("restore", "random-bytes", ".jsonl.gz", lambda ws: bytes(range(256)) * 8,
          ":1: not a gzip file (a dump is the .jsonl.gz `python -m core dump` writes)", _restore),
    Fault("restore", "truncated-gzip", ".jsonl.gz", lambda ws: ws.dump(ws.dump_lines)[:5000],
          ":54: the gzip data ends early (a truncated or partly copied file); nothing was restored", _restore),
    Fault("restore", "not-gzipped", ".jsonl.gz", lambda ws: b"".join(ws.dump_lines),
          ":1: not a gzip file (a dump is the .jsonl.gz `python -m core dump` writes)", _restore),
    Fault("restore", "empty-gzip", ".jsonl.gz", lambda ws: gzip.compress(b""), ":1: an empty dump", _restore),
    Fault("restore", "wrong-type", ".jsonl.gz", lambda ws: ws.dump_with("completions", _put("prompt_tokens", "many")),
          ":30: table completions, column prompt_tokens: expected an integer, found \"many\"", _restore),
    Fault("restore", "unknown-column", ".jsonl.gz", lambda ws: ws.dump_with("completions", _put("colour", "red")),
          ":30: table completions has no column 'colour'", _restore),
    Fault("restore", "missing-column", ".jsonl.gz", lambda ws: ws.dump_with("completions", _drop("run_id")),
          ":30: table completions, column run_id: missing (this column needs a value)", _restore),
    Fault("restore", "orphan-verdict", ".jsonl.gz", lambda ws: ws.dump_with("verdicts", _orphan_verdict),
          ":54: verdict of completion '00000000000000000000', which neither the dump nor the database", _restore),
    Fault("restore", "bad-completion-id", ".jsonl.gz", lambda ws: ws.dump_with("completions", _put("run_id", "other")),
          ":30: completion_id 'ecb42d6754e4c13dd4ab' is not the id of run 'other'", _restore),
    Fault("restore", "missing-file", ".jsonl.gz", lambda ws: MISSING, ": no such file", _restore, fresh_db=True),
    Fault("restore", "directory", ".jsonl.gz", lambda ws: DIRECTORY, ": is a directory, not a file", _restore),
    Fault("restore", "other-population", ".jsonl.gz", lambda ws: ws.other_population_dump,
          ":3: ", _restore),
    Fault("restore", "deep-nesting", ".jsonl.gz", lambda ws: ws.dump([*ws.dump_lines[:3], _deep_line("table")]),
          ":4:74: JSON nested deeper than 64 levels", _restore),
    Fault("restore", "lone-surrogate", ".jsonl.gz",
          lambda ws: ws.dump([line.replace(b'"text": "', b'"text": "\\udc80', 1) for line in ws.dump_lines]),
          ":2:183: field 'row.text': a lone surrogate \\udc80 at character 1", _restore),
    Fault("restore", "huge-integer", ".jsonl.gz",
          lambda ws: ws.dump([*ws.dump_lines[:2], b'{"table": "targets", "row": {"size_b": ' + HUGE_INT.encode()
                              + b"}}\n"]), ":3:40: a number of 5,000 digits, longer than the limit of 100", _restore),
    Fault("restore", "unknown-table", ".jsonl.gz",
          lambda ws: ws.dump([*ws.dump_lines[:2], b'{"table": "secrets", "row": {}}\n']),
          ":3: unknown table 'secrets'", _restore),
    Fault("restore", "not-an-object", ".jsonl.gz", lambda ws: ws.dump([*ws.dump_lines[:2], b"[1, 2]\n"]),
          ":3: expected a JSON object per line", _restore),
    Fault("restore", "row-not-an-object", ".jsonl.gz",
          lambda ws: ws.dump([*ws.dump_lines[:2], b'{"table": "probes", "row": 5}\n']),
          ':3: expected {"table": NAME, "row": {...}}', _restore),
    Fault("restore", "bad-schema-version", ".jsonl.gz",
          lambda ws: ws.dump([b'{"table": "meta", "row": {"schema_version": 99}}\n', *ws.dump_lines[1:]]),
          ":1: a dump of schema version 99", _restore),
    Fault("restore", "invalid-utf8", ".jsonl.gz",
          lambda ws: ws.dump([*ws.dump_lines[:2], b'{"table": "probes", "row": {"probe_id": "\xff"}}\n']),
          ":3:42: not UTF-8 (byte 0xff)", _restore),
    Fault("restore", "nul-in-text", ".jsonl.gz",
          lambda ws: ws.dump_with("completions", _put("text", "a\x00b")),
          ":30:160: field 'row.text': a NUL character at character 2", _restore),
    # -- import-align ---------------------------------------------------------------------------------------
    Fault("import-align", "truncated", ".csv", lambda ws: ws.align_csv()[:-30],
          ":5:103: malformed CSV record: the quote opened here is never closed", _align),
    Fault("import-align", "mistyped-row", ".jsonl",
          lambda ws: _jsonl([*ws.align_rows()[:2], {**ws.align_rows()[2], "jb_response_m1": 5}]),
          ":3 (column jb_response_m1): expected the model's answer as text", _align),
    Fault("import-align", "invalid-utf8", ".csv", lambda ws: ws.align_csv().replace(b"seed 2", b"seed \xff2"),
          ":4:6: not UTF-8", _align),
    Fault("import-align", "unknown-group", ".csv",
          lambda ws: ws.align_csv([*ws.align_rows()[:3], {**ws.align_rows()[3], "group": "martians"}]),
          ":5 (column group): unknown group 'martians'", _align),
    Fault("import-align", "header-only", ".csv", lambda ws: ws.align_csv([]), ":2: no rows after the header",
          _align),
    Fault("import-align", "deep-nesting", ".jsonl", lambda ws: _jsonl(ws.align_rows()[:1]) + _deep_line(),
          ":2:73: JSON nested deeper than 64 levels", _align),
    Fault("import-align", "lone-surrogate", ".jsonl",
          lambda ws: _jsonl(ws.align_rows()).replace(b"seed 1", b"seed \\udc801"),
          ":2:16: field 'text': a lone surrogate \\udc80 at character 6",
          _align),
    Fault("import-align", "huge-integer", ".jsonl",
          lambda ws: _jsonl(ws.align_rows()[:1]) + (json.dumps(ws.align_rows()[1])[:-1] + ', "n": '
                                                     + HUGE_INT + "}\n").encode(),
          ":2:331: a number of 5,000 digits", _align),
    Fault("import-align", "directory", ".csv", lambda ws: DIRECTORY, ": is a directory, not a file", _align),
    Fault("import-align", "missing", ".csv", lambda ws: MISSING, ": no such file", _align),
    Fault("import-align", "random-bytes", ".parquet", lambda ws: bytes(range(256)) * 8, ": not a readable parquet",
          _align),
    Fault("import-align", "unclosed-quote", ".csv",
          lambda ws: ws.align_csv().replace(b"seed 1,", b'"seed 1,', 1),
          ":3:1: malformed CSV record: the quote opened here closes on line 3, column 104, and text f", _align),
    Fault("import-align", "nul-in-answer", ".csv",
          lambda ws: ws.align_csv().replace(b"help with that 2", b"help with\x00 that 2"),
          ":4 (column jb_response_m1): a NUL character", _align),
    # -- verdicts import (the review labels sheet) -----------------------------------------------------------
    Fault("verdicts import", "unclosed-quote", ".csv",
          lambda ws: ws.labels_sheet(_sheet_rows(ws)).replace(b"refused,fine", b'refused,"fine'),
          ":2:30: malformed CSV record: the quote opened here is never closed", _sheet),
    Fault("verdicts import", "header-only", ".csv", lambda ws: ws.labels_sheet([]), ":2: no rows after the header",
          _sheet),
    Fault("verdicts import", "invalid-utf8", ".csv",
          lambda ws: ws.labels_sheet(_sheet_rows(ws)).replace(b"ok", b"\xffk"), ":3:31: not UTF-8 (byte 0xff)", _sheet),
    Fault("verdicts import", "directory", ".csv", lambda ws: DIRECTORY, ": is a directory, not a file", _sheet),
    Fault("verdicts import", "missing", ".csv", lambda ws: MISSING, ": no such file", _sheet),
    Fault("verdicts import", "nul-in-note", ".csv",
          lambda ws: ws.labels_sheet(_sheet_rows(ws)).replace(b"fine", b"fi\x00ne"),
          ":2:3: column 'note': a NUL character at character 3",
          _sheet),
    Fault("verdicts import", "50mb-note", ".csv",
          lambda ws: ws.labels_sheet([[*row[:2], "n" * FIFTY_MB] if i == 1 else row
                                      for i, row in enumerate(_sheet_rows(ws))]),
          ":3:3: column 'note': 52,428,800 characters, longer than the limit of 1,000,000 for one fie", _sheet),
    Fault("verdicts import", "random-bytes", ".csv", lambda ws: bytes(range(256)) * 8,
          ":2:118: not UTF-8 (byte 0x80)", _sheet),
    Fault("verdicts import", "utf16", ".csv", lambda ws: ws.labels_sheet(_sheet_rows(ws)).decode().encode("utf-16"),
          ":1:1: the file looks like UTF-16", _sheet),
    Fault("verdicts import", "unknown-label", ".csv",
          lambda ws: ws.labels_sheet([[ws.completion_ids[0], "maybe", ""]]),
          ":2: label 'maybe': a human verdict is 'refused' or 'complied'", _sheet),
    # -- judge-eval --labels ----------------------------------------------------------------------------------
    Fault("judge-eval", "unclosed-quote", ".csv",
          lambda ws: b'prompt,completion,label\np,"an answer,refused\np2,c2,complied\n',
          ":2:3: malformed CSV record: the quote opened here is never closed, so the rest of the file", _judge_eval),
    Fault("judge-eval", "header-only", ".csv", lambda ws: b"prompt,completion,label\n",
          ":2: no labelled rows after the header", _judge_eval),
    Fault("judge-eval", "nul-in-completion", ".csv", lambda ws: b"prompt,completion,label\np,a\x00b,refused\n",
          ":2:2: column 'completion': a NUL character at character 2", _judge_eval),
    Fault("judge-eval", "directory", ".csv", lambda ws: DIRECTORY, ": is a directory, not a file", _judge_eval),
    Fault("judge-eval", "missing", ".csv", lambda ws: MISSING, ": no such file", _judge_eval),
    Fault("judge-eval", "50mb-completion", ".csv",
          lambda ws: b"prompt,completion,label\np," + b"z" * FIFTY_MB + b",complied\n",
          ":2:2: column 'completion': 52,428,800 characters, longer than the limit of 1,000,000 for o", _judge_eval),
    # -- judge-train --labels (gzipped or not) -------------------------------------------------------------------
    Fault("judge-train", "directory", ".csv", lambda ws: DIRECTORY, ": is a directory, not a file", _judge_train),
    Fault("judge-train", "truncated-gzip", ".csv.gz",
          lambda ws: gzip.compress(b"prompt,completion,label\n" + b"p,I cannot,refused\n" * 200)[:60],
          ":1: the gzip data ends early", _judge_train),
    Fault("judge-train", "random-bytes", ".csv.gz", lambda ws: bytes(range(256)) * 8, ":1: not a gzip file",
          _judge_train),
    # -- mitigate --pairs ---------------------------------------------------------------------------------------
    Fault("pairs", "deep-nesting", ".jsonl", lambda ws: ws.pairs(extra=_deep_line("prompt")),
          ":4:75: JSON nested deeper than 64 levels", _pairs),
    Fault("pairs", "lone-surrogate", ".jsonl", lambda ws: ws.pairs().replace(b"Sure 1", b"Sure \\udc801"),
          ":2:67: field 'rejected': a lone surrogate \\udc80", _pairs),
    Fault("pairs", "huge-integer", ".jsonl",
          lambda ws: ws.pairs(extra=b'{"prompt": ' + HUGE_INT.encode() + b"}\n"), ":4:12: a number of 5,000 digits",
          _pairs),
    Fault("pairs", "directory", ".jsonl", lambda ws: DIRECTORY, ": is a directory, not a file", _pairs),
    Fault("pairs", "missing", ".jsonl", lambda ws: MISSING, ": no such file", _pairs),
    Fault("pairs", "nul-in-chosen", ".jsonl", lambda ws: ws.pairs(_put("chosen", "no\x00")),
          ":2:37: field 'chosen': a NUL character at character 3", _pairs),
    Fault("pairs", "wrong-types", ".jsonl", lambda ws: ws.pairs(_put("prompt", 5)),
          ":2: field 'prompt' is empty or not a string", _pairs),
    Fault("pairs", "truncated", ".jsonl", lambda ws: ws.pairs()[:-30],
          ":3:236: invalid JSON: Unterminated string", _pairs),
    # -- probes build --counterfactual --claims -------------------------------------------------------------
    Fault("claims", "deep-nesting", ".jsonl", lambda ws: b"".join(ws.claims) + _deep_line("template"),
          ":3:77: JSON nested deeper than 64 levels", _claims),
    Fault("claims", "lone-surrogate", ".jsonl",
          lambda ws: b"".join(ws.claims).replace(b"driving", b"dri\\udc80ving", 1),
          ":1:95: field 'template': a lone surrogate \\udc80", _claims),
    Fault("claims", "huge-integer", ".jsonl", lambda ws: b"".join(ws.claims) + b'{"claim_id": ' + HUGE_INT.encode()
          + b"}\n", ":3:14: a number of 5,000 digits", _claims),
    Fault("claims", "directory", ".jsonl", lambda ws: DIRECTORY, ": is a directory, not a file", _claims),
    Fault("claims", "scenarios-deep-nesting", ".jsonl", lambda ws: _deep_line("scenario"),
          ":1:77: JSON nested deeper than 64 levels", lambda file, db, out: [
              "probes", "build", "--counterfactual", "--scenarios", str(file), "--out", str(out)]),
    Fault("claims", "templates-not-utf8", ".jsonl", lambda ws: b'{"template": "caf\xe9"}\n',
          ":1:18: not UTF-8 (byte 0xe9)", lambda file, db, out: [
              "probes", "build", "--counterfactual", "--templates", str(file), "--out", str(out)]),
]


@dataclass
class Outcome:
    fault: Fault
    path: Path
    code: int
    stderr: str
    traceback: bool
    located: bool  # stderr names the file with a line (or, for a file that is not there, the file)
    expected: bool  # stderr holds the fault's own message right after the path
    store_changed: bool
    created: list[str]

    @property
    def verdict(self) -> str:
        if self.traceback:
            return "traceback"
        if self.store_changed or self.created:
            return "store changed"
        if self.code == 0:
            return "accepted"
        if self.code == 2 and self.located:
            return "refused cleanly"
        return f"other (exit {self.code}{', not located' if not self.located else ''})"


def write_fault(fault: Fault, ws: Workspace, folder: Path) -> Path:
    path = folder / f"{fault.name}{fault.suffix}"
    made = fault.make(ws)
    if made is DIRECTORY:
        path.mkdir()
    elif made is not MISSING:
        path.write_bytes(made)
    return path


def attempt(fault: Fault, ws: Workspace, folder: Path, env: dict[str, str] | None = None,
            db: Path | None = None) -> Outcome:
    """Run the fault's command once in `folder`, against `db` (the soak's), else a fresh copy of the base database
    (none with fresh_db)."""
    from tests.reliability import harness

    folder.mkdir(parents=True, exist_ok=True)
    path = write_fault(fault, ws, folder)
    out = folder / "out"
    if db is None or fault.fresh_db:
        db = folder / "audit.duckdb"
        if not fault.fresh_db:
            shutil.copy(ws.base_db, db)
    before_hash = _sha256(db)
    before_files = {p.name for p in folder.iterdir()}
    done = run_cli(*fault.argv(path, db, out), env={**(env or harness.cli_env()), **dict(fault.env)}, timeout=300)
    created = sorted({p.name for p in folder.iterdir()} - before_files)
    whole = fault.make(ws) in (MISSING, DIRECTORY) or fault.suffix == ".parquet"  # no line to name
    pattern = re.escape(str(path)) + (r"(:\d+)?: " if whole else r":\d+")
    return Outcome(fault, path, done.returncode, done.stderr, "Traceback" in done.stderr,
                   re.search(pattern, done.stderr) is not None, f"{path}{fault.message}" in done.stderr,
                   _sha256(db) != before_hash, created)


def tally(outcomes: list[Outcome]) -> dict[str, collections.Counter]:
    table: dict[str, collections.Counter] = {}
    for outcome in outcomes:
        table.setdefault(outcome.fault.surface, collections.Counter())[outcome.verdict] += 1
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description="run every bad input file once; print the tally per surface")
    parser.add_argument("--surface", default=None)
    parser.add_argument("--verbose", action="store_true", help="every fault's outcome and the end of its stderr")
    args = parser.parse_args()
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="forwhom-file-faults-") as folder:
        ws = Workspace(Path(folder) / "base")
        for index, fault in enumerate(FAULTS):
            if args.surface and fault.surface != args.surface:
                continue
            outcome = attempt(fault, ws, Path(folder) / f"{index:03d}")
            outcomes.append(outcome)
            if args.verbose:
                named = [line for line in outcome.stderr.splitlines() if str(outcome.path) in line]
                shown = named[0].split(str(outcome.path), 1)[1] if named else (outcome.stderr.strip().splitlines()
                                                                              or [""])[-1]
                print(f"{fault.surface:16} {fault.name + fault.suffix:28} {outcome.verdict:16} "
                      f"{'' if outcome.expected else '(message differs) '}{shown[:150]}")
    total: collections.Counter = collections.Counter()
    for surface, counts in tally(outcomes).items():
        total.update(counts)
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"{surface:16} tried {sum(counts.values()):3}: {shown}")
    print(f"{'all':16} tried {sum(total.values()):3}: " + ", ".join(f"{k} {v}" for k, v in sorted(total.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
