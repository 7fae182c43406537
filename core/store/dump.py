"""The dump room: a whole database as one gzipped JSONL file, and back (the committed demo results are one)."""
from __future__ import annotations

import json
import os

import pandas as pd

from core.store.errors import StoreError
from core.store.schema import SCHEMA_VERSION
from core.store.writes import _numbered


class Dump:
    """dump() and restore()."""

    _DUMP_TABLES: tuple[str, ...] = ("taxonomies", "probes", "targets", "runs", "run_probes", "run_targets", "completions",
                                     "verdicts", "annotations", "review_sample", "completion_attempts")

    def dump(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Write every row of every table to a gzipped JSONL file ({"table": ..., "row": {...}} per line)."""
        import gzip

        counts: dict[str, int] = {}
        with self.connect() as con, gzip.open(path, "wt", encoding="utf-8", compresslevel=9) as handle:
            handle.write(json.dumps({"table": "meta", "row": {"schema_version": SCHEMA_VERSION}}) + "\n")
            for table in self._DUMP_TABLES:
                # Table names are constants, not input; seq is this file's own key, given anew on restore.
                exclude = " EXCLUDE (seq)" if table in ("completions", "verdicts", "review_sample") else ""
                frame = con.execute(f"SELECT *{exclude} FROM {table}").df()
                for row in json.loads(frame.to_json(orient="records", date_format="iso")):
                    handle.write(json.dumps({"table": table, "row": row}, ensure_ascii=False) + "\n")
                counts[table] = len(frame)
        return counts

    def restore(self, path: str | os.PathLike[str]) -> dict[str, int]:
        """Load a dump written by dump(); rows already present are kept as they are. Returns rows added."""
        import gzip

        rows: dict[str, list[dict]] = {table: [] for table in self._DUMP_TABLES}
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise StoreError(f"{path}:{number}:{exc.colno}: invalid JSON: {exc.msg}") from None
                table = record.get("table")
                if table == "meta":
                    version = record["row"].get("schema_version")
                    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
                        raise StoreError(f"{path}: dump of schema version {version}, this program reads "
                                         f"versions 1 to {SCHEMA_VERSION}")
                    continue
                if table not in rows:
                    raise StoreError(f"{path}:{number}: unknown table {table!r}")
                rows[table].append(record["row"])
        added: dict[str, int] = {}
        with self._writing(recount_all=True) as (con, _):
            for table in self._DUMP_TABLES:
                if not rows[table]:
                    added[table] = 0
                    continue
                frame = pd.DataFrame(rows[table])
                columns = [r[0] for r in con.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                    "AND table_catalog = current_database() ORDER BY ordinal_position",
                    [table]).fetchall()]
                if table == "completions" and "retries" not in frame.columns:  # a dump of schema version 1
                    frame["retries"] = 0
                frame = frame.drop(columns=["seq"], errors="ignore")
                source = "incoming_rows"
                if table == "completions":  # seq is given anew after this file's last one
                    frame = _numbered(con, frame)
                elif table == "verdicts":  # a verdict takes its completion's seq (and lands only with it)
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
                before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                conflict = "" if table == "annotations" else " ON CONFLICT DO NOTHING"
                con.execute(f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM {source}{conflict}")
                added[table] = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
                con.unregister("incoming_rows")
        return added
