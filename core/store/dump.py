"""The dump room: a whole database as one gzipped JSONL file, and back (the committed demo results are one).

A restore is all or nothing: the whole file is read and checked first (core.files.reading, the one reading layer, for
the file, its encoding and each line's JSON; then every row against the schema: known tables and columns,
types, required values, keys given once, completion ids that match their run, probe and target), then every
row lands in one transaction that also refuses rows pointing at nothing (a verdict of a completion neither the
dump nor the database holds) and another population's probes (as `probes import` does). A refused restore
raises DumpFileError (`FILE:LINE: reason`) and leaves the database as it was.
"""
from __future__ import annotations

import datetime
import functools
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from core.files.reading import JSONProblem, check_file, max_input_bytes, not_utf8_message, parse_json
from core.store.errors import DumpFileError
from core.store.schema import _MIGRATIONS, SCHEMA_VERSION
from core.store.writes import _numbered, completion_id_for
from core.vocab import taxonomy

# How much larger than the file its decompressed text may be (the demo's ratio is 9): a bound on what a
# small hostile gzip file (a "zip bomb") can make the program hold.
MAX_DUMP_RATIO = 20

_TABLES: tuple[str, ...] = ("taxonomies", "probes", "targets", "runs", "run_probes", "run_targets", "completions",
                            "verdicts", "annotations", "review_sample", "completion_attempts")
# What each table's rows point at: (column, table, its column). Targets are not required: a run may name a
# target the database never saved (the store's API allows it), so a dump of such a database restores.
_REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "run_probes": (("run_id", "runs", "run_id"), ("probe_id", "probes", "probe_id")),
    "run_targets": (("run_id", "runs", "run_id"),),
    "completions": (("run_id", "runs", "run_id"), ("probe_id", "probes", "probe_id")),
    "verdicts": (("completion_id", "completions", "completion_id"),),
    "annotations": (("completion_id", "completions", "completion_id"),),
    "review_sample": (("completion_id", "completions", "completion_id"),),
    "completion_attempts": (("completion_id", "completions", "completion_id"),),
}
_WHAT = {"run_probes": "planned probe", "run_targets": "run target", "completions": "completion",
         "verdicts": "verdict", "annotations": "annotation", "review_sample": "review sample row",
         "completion_attempts": "earlier attempt"}
_INT_RANGES = {"INTEGER": 2**31, "BIGINT": 2**63}


@dataclass(frozen=True)
class _Column:
    name: str
    type: str
    required: bool  # NOT NULL without a default


@functools.cache
def _schema() -> tuple[dict[str, dict[str, _Column]], dict[str, tuple[str, ...]]]:
    """The columns and primary keys of every table at SCHEMA_VERSION, from the migrations run in memory (so a
    dump is checked before any database is opened, let alone created)."""
    with duckdb.connect(":memory:") as con:
        for migration in _MIGRATIONS:
            con.execute(migration)
        columns: dict[str, dict[str, _Column]] = {}
        for table, name, kind, nullable, default in con.execute(
                "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns "
                "ORDER BY table_name, ordinal_position").fetchall():
            columns.setdefault(table, {})[name] = _Column(name, kind, nullable == "NO" and default is None)
        keys = {table: tuple(names) for table, names in con.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY'").fetchall()}
    return columns, keys


def _type_problem(column: _Column, value) -> str | None:
    """Why `value` cannot go into `column`, or None."""
    if value is None:
        return "missing (this column needs a value)" if column.required else None
    kind = column.type
    if kind == "VARCHAR":
        return None if isinstance(value, str) else f"expected text, found {json.dumps(value)[:40]}"
    if kind in _INT_RANGES:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"expected an integer, found {json.dumps(value)[:40]}"
        bound = _INT_RANGES[kind]
        return None if -bound <= value < bound else f"the integer {value} is out of range for {kind}"
    if kind == "DOUBLE":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else f"expected a number, found {json.dumps(value)[:40]}"
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"expected true or false, found {json.dumps(value)[:40]}"
    if kind.startswith("TIMESTAMP"):
        if not isinstance(value, str):
            return f"expected a timestamp (ISO 8601 text), found {json.dumps(value)[:40]}"
        try:
            datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return f"expected a timestamp (ISO 8601 text), found {value[:40]!r}"
    return None


@dataclass
class DumpRows:
    """A dump read and checked: its rows per table, each with the line it came from."""

    path: str
    rows: dict[str, list[dict]] = field(default_factory=lambda: {table: [] for table in _TABLES})
    lines: dict[str, list[int]] = field(default_factory=lambda: {table: [] for table in _TABLES})
    version: int = SCHEMA_VERSION

    def where(self, table: str, index: int) -> str:
        return f"{self.path}:{self.lines[table][index]}"


def _dump_lines(path) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of a gzipped dump, every gzip failure a located DumpFileError, the decompressed size
    bounded (MAX_DUMP_RATIO times the input limit)."""
    check_file(path, "dump", DumpFileError)
    limit, total, number = max_input_bytes() * MAX_DUMP_RATIO, 0, 0
    try:
        with gzip.open(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                total += len(raw)
                if total > limit:
                    raise DumpFileError(f"{path}:{number}: decompressed, the dump is larger than "
                                        f"{limit / 2**20:,.0f} MB ({MAX_DUMP_RATIO} times the input limit); "
                                        "raise AUDIT_MAX_INPUT_MB for a dump this large")
                yield number, raw
    except gzip.BadGzipFile as exc:
        if number == 0 and "Not a gzipped file" in str(exc):
            raise DumpFileError(f"{path}:1: not a gzip file (a dump is the .jsonl.gz `python -m core dump` writes)") \
                from None
        raise DumpFileError(f"{path}:{number + 1}: corrupt gzip data ({exc}); nothing was restored") from None
    except EOFError:
        raise DumpFileError(f"{path}:{number + 1}: the gzip data ends early (a truncated or partly copied file); "
                            "nothing was restored") from None
    except (zlib.error, OSError) as exc:
        raise DumpFileError(f"{path}:{number + 1}: corrupt gzip data ({exc}); nothing was restored") from None


def read_dump(path: str | os.PathLike[str]) -> DumpRows:
    """Read and check a whole dump (see the module docstring); DumpFileError `FILE:LINE: reason` on the first
    problem. Touches no database."""
    columns, keys = _schema()
    dump = DumpRows(str(path))
    seen: dict[str, dict[tuple, int]] = {table: {} for table in _TABLES}
    lines = 0
    for number, raw in _dump_lines(path):
        lines = number
        where = f"{path}:{number}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DumpFileError(not_utf8_message(str(path), raw, exc, number, "dump")) from None
        if not text.strip():
            continue
        try:
            record = parse_json(text)
        except JSONProblem as exc:
            raise DumpFileError(exc.at(path, number)) from None
        if not isinstance(record, dict):
            raise DumpFileError(f"{where}: expected a JSON object per line")
        table, row = record.get("table"), record.get("row")
        if not isinstance(table, str) or not isinstance(row, dict):
            raise DumpFileError(f'{where}: expected {{"table": NAME, "row": {{...}}}}, found keys '
                                f"{', '.join(map(repr, record)) or 'none'}")
        if table == "meta":
            version = row.get("schema_version")
            if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
                raise DumpFileError(f"{where}: a dump of schema version {json.dumps(version)[:20]}; this program "
                                    f"reads versions 1 to {SCHEMA_VERSION}")
            dump.version = version
            continue
        if table not in dump.rows:
            raise DumpFileError(f"{where}: unknown table {table!r}; a dump holds {', '.join(_TABLES)}")
        known = columns[table]
        for name in row:
            if name not in known:
                raise DumpFileError(f"{where}: table {table} has no column {name!r} (its columns: "
                                    f"{', '.join(known)})")
        for column in known.values():
            if column.name == "seq":  # this file's own key, given anew on restore
                continue
            problem = _type_problem(column, row.get(column.name))
            if problem:
                raise DumpFileError(f"{where}: table {table}, column {column.name}: {problem}")
        if table == "completions":
            expected = completion_id_for(row["run_id"], row["probe_id"], row["target_id"])
            if row["completion_id"] != expected:
                raise DumpFileError(f"{where}: completion_id {row['completion_id']!r} is not the id of run "
                                    f"{row['run_id']!r}, probe {row['probe_id']!r} and target {row['target_id']!r} "
                                    f"({expected!r}); a completion's id is made from those three")
        key_columns = tuple(c for c in keys.get(table, ()) if c != "seq")
        if key_columns:
            key = tuple(row.get(c) for c in key_columns)
            if key in seen[table]:
                raise DumpFileError(f"{where}: table {table}: the same {', '.join(key_columns)} as line "
                                    f"{seen[table][key]}")
            seen[table][key] = number
        dump.rows[table].append(row)
        dump.lines[table].append(number)
    if not lines:
        raise DumpFileError(f"{path}:1: an empty dump (not one line); a dump starts with its schema version")
    return dump


class Dump:
    """dump(), read_dump() and restore()."""

    _DUMP_TABLES: tuple[str, ...] = _TABLES

    def dump(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Write every row of every table to a gzipped JSONL file ({"table": ..., "row": {...}} per line)."""
        counts: dict[str, int] = {}
        with self.connect() as con, gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as handle:
            handle.write(json.dumps({"table": "meta", "row": {"schema_version": SCHEMA_VERSION}}) + "\n")
            for table in self._DUMP_TABLES:
                # Table names are constants, not input; seq is this file's own key, given anew on restore. Rows in
                # a fixed order (insertion order where there is a seq), so the same database always dumps to the
                # same file: a scan's own order varies from one run to the next.
                numbered = table in ("completions", "verdicts", "review_sample")
                order = "ORDER BY seq" if numbered else "ORDER BY ALL"
                frame = con.execute(f"SELECT *{' EXCLUDE (seq)' if numbered else ''} FROM {table} {order}").df()
                for row in json.loads(frame.to_json(orient="records", date_format="iso")):
                    handle.write(json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n")
                counts[table] = len(frame)
        return counts

    def restore(self, path: str | os.PathLike[str] | DumpRows) -> dict[str, int]:
        """Load a dump written by dump() (or already read by read_dump); rows already present are kept as they
        are. Returns rows added per table. All or nothing: DumpFileError and nothing written on any problem."""
        dump = path if isinstance(path, DumpRows) else read_dump(path)
        added: dict[str, int] = {}
        with self._writing(recount_all=True) as (con, _):
            self._check_population(con, dump)
            self._check_references(con, dump)
            for table in self._DUMP_TABLES:
                if not dump.rows[table]:
                    added[table] = 0
                    continue
                try:
                    added[table] = self._insert(con, table, pd.DataFrame(dump.rows[table]))
                except duckdb.Error as exc:  # a constraint the checks above do not know: still nothing written
                    raise DumpFileError(f"{dump.path}: table {table} cannot be restored: {exc}; nothing was "
                                        "restored") from None
        return added

    def _check_population(self, con, dump: DumpRows) -> None:
        """The dump's probes are of one taxonomy, which the database holds or has no other than (and which is
        stored, in the dump or the database): one database, one population."""
        names: dict[str, int] = {}
        for index, row in enumerate(dump.rows["probes"]):
            names.setdefault(row.get("taxonomy") or taxonomy.DEFAULT_NAME, index)
        if not names:
            return
        first = min(names.values())
        if len(names) > 1:
            raise DumpFileError(f"{dump.where('probes', first)}: the dump holds probes of {len(names)} taxonomies "
                                f"({', '.join(sorted(names))}); one database holds one population")
        (name,) = names
        conflict = self._population_conflict(con, name, None, "the dump's probes")
        if conflict:
            raise DumpFileError(f"{dump.where('probes', first)}: {conflict} Nothing was restored.")
        stored = {row.get("name") for row in dump.rows["taxonomies"]}
        if name != taxonomy.DEFAULT_NAME and name not in stored and not con.execute(
                "SELECT count(*) FROM taxonomies WHERE name = ?", [name]).fetchall()[0][0]:
            raise DumpFileError(f"{dump.where('probes', first)}: probes of taxonomy {name!r}, which neither the dump "
                                "nor the database holds (its table taxonomies)")

    def _check_references(self, con, dump: DumpRows) -> None:
        """Every row points at rows the dump or the database holds (a verdict at its completion...)."""
        for table, references in _REFERENCES.items():
            for column, parent, parent_column in references:
                given = {row[parent_column] for row in dump.rows[parent]}
                wanted = {row.get(column) for row in dump.rows[table]} - given
                if not wanted:
                    continue
                # Table and column names are this module's constants; the ids are a parameter.
                found = {r[0] for r in con.execute(f"SELECT {parent_column} FROM {parent} WHERE {parent_column} "
                                                   "IN (SELECT unnest(?))", [sorted(wanted)]).fetchall()}
                for index, row in enumerate(dump.rows[table]):
                    if row.get(column) in wanted - found:
                        raise DumpFileError(
                            f"{dump.where(table, index)}: {_WHAT[table]} of {parent_column.removesuffix('_id')} "
                            f"{row.get(column)!r}, which neither the dump nor the database holds ({parent}); "
                            "nothing was restored")

    def _insert(self, con, table: str, frame: pd.DataFrame) -> int:
        """Insert one table's rows (those already present kept); returns how many were new."""
        columns = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_catalog = current_database() ORDER BY ordinal_position", [table]).fetchall()]
        if table == "completions" and "retries" not in frame.columns:  # a dump of schema version 1
            frame["retries"] = 0
        frame = frame.drop(columns=["seq"], errors="ignore")
        source = "incoming_rows"
        if table == "completions":  # seq is given anew after this file's last one
            frame = _numbered(con, frame)
        elif table == "verdicts":  # a verdict takes its completion's seq
            source = "(SELECT i.*, c.seq FROM incoming_rows i JOIN completions c USING (completion_id))"
        elif table == "review_sample":  # as verdicts; and a run that has a sample here keeps it whole
            # (two random samples mixed would be neither), so the dump's rows of that run are skipped
            source = ("(SELECT i.*, c.seq FROM incoming_rows i JOIN completions c USING (completion_id) "
                      "WHERE i.run_id NOT IN (SELECT run_id FROM review_sample))")
        # A dump of an older version lacks the columns added since (runs.message): they keep their default.
        # seq comes from the completion (the join above) where the frame has none of its own.
        given = [c for c in columns if c in frame.columns or (c == "seq" and source != "incoming_rows")]
        quoted = ", ".join(f'"{c}"' for c in given)
        con.register("incoming_rows", frame[[c for c in given if c in frame.columns]])
        try:
            before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            conflict = "" if table == "annotations" else " ON CONFLICT DO NOTHING"
            con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM {source}{conflict}")
            return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
        finally:
            con.unregister("incoming_rows")
