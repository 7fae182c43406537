"""The audit store: one DuckDB file holding probes, targets, runs, completions, verdicts, annotations.

All SQL of the project lives in this package, parameterised. Callers see one class, `Store`, and import
everything from here (`from core.store import Store, StoreError, CompletionRecord...`).

How it is built, for a newcomer: `Store` is one class made of one mixin per room, each room a module that
holds its methods and the SQL they need; a method of any room can be called on a Store directly. Every
method opens the file with `self.connect()` for its unit of work and closes it at once (so other processes
can write in between); every method that writes does so through `self._writing()`, one transaction that
checks the store is writable and recounts `cell_counts` for what it changed.

| module          | what it holds                                                                          |
| --------------- | -------------------------------------------------------------------------------------- |
| `connection.py` | the attachment manager, deferred Ctrl-C, lock waits, the read-only check, `_writing()`  |
| `errors.py`     | StoreError, StoreLocked, VerdictImportError                                            |
| `schema.py`     | the migrations (`sql/NNN_*.sql`, one per schema version) and the version checks         |
| `rows.py`       | the joined rows every query starts from (completion + probe + effective verdict), filters |
| `cells.py`      | `cell_counts`: label counts per cell, recounted in the transaction of every write       |
| `catalog.py`    | probes, targets, runs                                                                  |
| `writes.py`     | completions and verdicts (a run's batches, a re-judge, a person's verdict)             |
| `queries.py`    | what views read: judged rows, label counts, drill-down, counterfactuals, exports        |
| `paired.py`     | one version against another on the probes both answered (core/stats/comparison.py's tables)     |
| `review.py`     | the human review sample, imported labels, the inputs of corrected rates                 |
| `dump.py`       | a whole database as one gzipped JSONL file, and back                                   |

Which dimensions a query can filter or count by comes from core/vocab/dimensions.py, the one table of slices.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.store.catalog import Catalog
from core.store.cells import CELL_COLUMNS, _refresh_cells
from core.store.connection import Connection
from core.store.dump import Dump
from core.store.errors import DumpFileError, ProbeChanged, StoreError, StoreLocked, TaxonomyConflict, VerdictImportError
from core.store.paired import PAIRED_DIMENSIONS, Paired
from core.store.queries import Queries
from core.store.review import Review
from core.store.rows import FILTER_COLUMNS, VERDICT_FILTERS
from core.store.schema import _MIGRATIONS, DEFAULT_DB, SCHEMA_VERSION, Schema
from core.store.writes import CompletionRecord, VerdictRecord, Writes, completion_id_for

__all__ = ["CELL_COLUMNS", "DEFAULT_DB", "FILTER_COLUMNS", "PAIRED_DIMENSIONS", "SCHEMA_VERSION", "VERDICT_FILTERS",
           "CompletionRecord", "DumpFileError", "ProbeChanged", "Store", "StoreError", "StoreLocked", "TaxonomyConflict", "VerdictImportError", "VerdictRecord",
           "completion_id_for", "_MIGRATIONS", "_refresh_cells"]


class Store(Connection, Schema, Catalog, Writes, Queries, Paired, Review, Dump):
    """A DuckDB audit file. Cheap to create: nothing is opened until a method needs it."""

    def __init__(self, path: str | os.PathLike[str] | None = None, readonly: bool = False,
                 lock_timeout: float = 10.0) -> None:
        self.path = Path(path or os.environ.get("AUDIT_DB") or DEFAULT_DB)
        self.readonly = readonly
        self.lock_timeout = lock_timeout
        if readonly and not self.path.exists():
            raise StoreError(f"{self.path}: no such database (it is opened read-only, so it is not created)")
        if not readonly:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.connect() as con:
                self._migrate(con)
        else:
            with self.connect() as con:
                self._check_version(con)
