"""The schema room: the migrations (core/store/sql/NNN_*.sql, one per schema version) and the version checks."""
from __future__ import annotations

from pathlib import Path

import duckdb

from core.store.cells import _refresh_cells
from core.store.connection import _first
from core.store.errors import StoreError

SCHEMA_VERSION = 8

DEFAULT_DB = Path("data") / "audit.duckdb"


_SQL = Path(__file__).with_name("sql")
# Each entry migrates the schema from version i to i + 1 (the file's comments say why each exists).
_MIGRATIONS: list[str] = [path.read_text(encoding="utf-8") for path in sorted(_SQL.glob("[0-9][0-9][0-9]_*.sql"))]
# The last migration that changes cell_counts' columns: the counts are rebuilt after it (in its transaction), from
# the rows, with today's columns. Earlier ones that created or changed the table (3) leave that to it, since
# this program's recount writes columns their table does not have yet.
_RECOUNTED_AT = 7


class Schema:
    """Bringing a file to SCHEMA_VERSION (or refusing one this program cannot read)."""

    def _migrate(self, con: duckdb.DuckDBPyConnection) -> None:
        has_meta = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' "
            "AND table_catalog = current_database()"
        ).fetchall()[0][0]
        version = 0
        if has_meta:
            row = _first(con.execute("SELECT value FROM meta WHERE key = 'schema_version'"))
            version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this program's "
                             f"{SCHEMA_VERSION}: upgrade For Whom to open it")
        for target_version in range(version + 1, SCHEMA_VERSION + 1):
            con.execute("BEGIN")
            con.execute(_MIGRATIONS[target_version - 1])
            if target_version == _RECOUNTED_AT:
                _refresh_cells(con)
            con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(target_version)])
            con.execute("COMMIT")

    def _check_version(self, con: duckdb.DuckDBPyConnection) -> None:
        try:
            row = _first(con.execute("SELECT value FROM meta WHERE key = 'schema_version'"))
        except duckdb.CatalogException:
            raise StoreError(f"{self.path} is not a For Whom database (no schema version)") from None
        if not row or int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {row[0] if row else '?'}; this program "
                             f"reads version {SCHEMA_VERSION}. Open it once without read-only to migrate.")

    def schema_version(self) -> int:
        with self.connect() as con:
            return int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()[0][0])
