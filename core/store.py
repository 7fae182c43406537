"""The audit store: one DuckDB file holding probes, targets, runs, completions, verdicts, annotations.

All SQL of the project lives here, parameterised. Uniqueness is enforced by the schema itself
(a completion by (run, probe, target), a verdict by (completion, judge)), so a run that is killed at
any point resumes without duplicates: each batch of completions and its verdicts is written in one
transaction, which either lands whole or not at all.

Connections are opened per unit of work and closed at once, because DuckDB lets only one process hold
a file for writing: a long run then leaves gaps in which the dashboard can read. A process that still
finds the file locked after `lock_timeout` seconds gets a StoreLocked error with a plain message.
"Opening" attaches the file to one in-memory DuckDB kept for the whole process (_Attachments), which takes
the same file lock as duckdb.connect() at a tenth of its cost.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from core import dimensions
from core.probes.schema import PROBE_FIELDS, Probe

SCHEMA_VERSION = 5
DEFAULT_DB = Path("data") / "audit.duckdb"

# Each entry migrates the schema from version i to i + 1.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
    CREATE TABLE probes (
        probe_id VARCHAR PRIMARY KEY,
        language VARCHAR NOT NULL,
        "group" VARCHAR NOT NULL,
        seed_text VARCHAR,
        scenario_category VARCHAR,
        scenario VARCHAR,
        strategy VARCHAR NOT NULL,
        prompt VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        source VARCHAR NOT NULL
    );
    CREATE TABLE targets (
        target_id VARCHAR PRIMARY KEY,
        backend VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        base_url VARCHAR,
        family VARCHAR,
        size_b DOUBLE,
        settings VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    CREATE TABLE runs (
        run_id VARCHAR PRIMARY KEY,
        created_at TIMESTAMP DEFAULT current_timestamp,
        updated_at TIMESTAMP DEFAULT current_timestamp,
        status VARCHAR NOT NULL,
        config VARCHAR NOT NULL
    );
    CREATE TABLE run_probes (
        run_id VARCHAR NOT NULL,
        probe_id VARCHAR NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (run_id, probe_id)
    );
    CREATE TABLE run_targets (
        run_id VARCHAR NOT NULL,
        target_id VARCHAR NOT NULL,
        PRIMARY KEY (run_id, target_id)
    );
    CREATE TABLE completions (
        completion_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        probe_id VARCHAR NOT NULL,
        target_id VARCHAR NOT NULL,
        text VARCHAR,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s DOUBLE,
        error VARCHAR,
        gen_seed BIGINT,
        created_at TIMESTAMP DEFAULT current_timestamp,
        UNIQUE (run_id, probe_id, target_id)
    );
    CREATE TABLE verdicts (
        completion_id VARCHAR NOT NULL,
        judge VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        rationale VARCHAR,
        raw VARCHAR,
        judge_version VARCHAR,
        judge_model VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (completion_id, judge)
    );
    CREATE TABLE annotations (
        completion_id VARCHAR NOT NULL,
        label VARCHAR NOT NULL,
        note VARCHAR,
        author VARCHAR,
        created_at TIMESTAMP DEFAULT current_timestamp
    );
    """,
    # 2: how many extra attempts (429, 5xx, timeouts) an API completion needed, so an audit can show them.
    """
    ALTER TABLE completions ADD COLUMN retries INTEGER DEFAULT 0;
    """,
    # 3: speed at MiJaBench-Align scale (528,000 completions). `seq` is an integer key in insertion order that
    # verdicts carry too, so joining them to completions compares integers (and skips row groups by their
    # min/max) instead of hashing 20-character ids: the string joins were most of every query's time.
    # `cell_counts` holds label counts per cell (see _refresh_cells), kept in the transaction of every write,
    # so a heatmap sums a few thousand rows instead of joining every completion with its verdicts.
    # completions trades its UNIQUE (run_id, probe_id, target_id) index for a CHECK that the primary key is
    # the hash of those three (completion_id_for): the same guarantee, without a second index that cost 13%
    # of an import.
    """
    CREATE TABLE completions_v3 (
        completion_id VARCHAR PRIMARY KEY,
        run_id VARCHAR NOT NULL,
        probe_id VARCHAR NOT NULL,
        target_id VARCHAR NOT NULL,
        text VARCHAR,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s DOUBLE,
        error VARCHAR,
        gen_seed BIGINT,
        created_at TIMESTAMP DEFAULT current_timestamp,
        retries INTEGER DEFAULT 0,
        seq BIGINT,
        CHECK (completion_id = left(sha1(run_id || chr(31) || probe_id || chr(31) || target_id), 20))
    );
    INSERT INTO completions_v3 SELECT *, rowid FROM completions ORDER BY rowid;
    DROP TABLE completions;
    ALTER TABLE completions_v3 RENAME TO completions;
    ALTER TABLE verdicts ADD COLUMN seq BIGINT;
    UPDATE verdicts SET seq = c.seq FROM completions c WHERE c.completion_id = verdicts.completion_id;
    CREATE TABLE cell_counts (
        judge VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        language VARCHAR,
        "group" VARCHAR,
        strategy VARCHAR,
        scenario_category VARCHAR,
        kind VARCHAR,
        label VARCHAR NOT NULL,
        n BIGINT NOT NULL
    );
    """,
    # 4: the human review sample (core/review.py): which completions were drawn at random, per stratum
    # (run x model x language x group x kind), for people to label. `stratum_size` is the stratum's number of
    # non-error completions when it was drawn (its inclusion probability is sampled / stratum_size; a stratum
    # that grew since cannot be enlarged without redrawing), `draw` counts enlargements (1, 2...), `position`
    # is the queue order within the run (a random permutation, so the labelled-so-far part stays random),
    # `seed` the generator's seed (NULL: drawn elsewhere and imported with --as-random-sample). The strata
    # columns are copied from the completion so a sample keeps its design whatever is written later.
    """
    CREATE TABLE review_sample (
        completion_id VARCHAR PRIMARY KEY,
        seq BIGINT NOT NULL,
        run_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        language VARCHAR,
        "group" VARCHAR,
        kind VARCHAR,
        stratum_size BIGINT NOT NULL,
        draw INTEGER NOT NULL,
        position BIGINT NOT NULL,
        seed BIGINT,
        drawn_at TIMESTAMP DEFAULT current_timestamp,
        UNIQUE (run_id, position)
    );
    """,
    # 5 (issue 19): errors retried in place. A completion that held an error and is sent again keeps its id and
    # seq; the row it replaces is kept in completion_attempts with its error and time. `runs.message` says why a
    # run stopped or failed (a target that went away). Every statement is idempotent (it was written on a
    # branch as version 4 and renumbered at its merge), so it may run on a file that has it already.
    """
    CREATE TABLE IF NOT EXISTS completion_attempts (
        completion_id VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        probe_id VARCHAR NOT NULL,
        target_id VARCHAR NOT NULL,
        text VARCHAR,
        error VARCHAR,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s DOUBLE,
        retries INTEGER,
        gen_seed BIGINT,
        attempted_at TIMESTAMP,
        replaced_at TIMESTAMP DEFAULT current_timestamp,
        PRIMARY KEY (completion_id, replaced_at)  -- one replacement per write: a restored dump adds no copy
    );
    ALTER TABLE runs ADD COLUMN IF NOT EXISTS message VARCHAR;
    UPDATE runs SET status = 'failed', message = 'every completion is an error: this run measured nothing'
    WHERE status = 'completed' AND EXISTS (SELECT 1 FROM completions c WHERE c.run_id = runs.run_id)
      AND NOT EXISTS (SELECT 1 FROM completions c WHERE c.run_id = runs.run_id AND c.error IS NULL);
    """,
]

_PROBE_COLUMNS = ", ".join(f'"{name}"' if name == "group" else name for name in PROBE_FIELDS)

# The joined view every query starts from: one row per completion with its probe and target.
_COMPLETION_ROWS = """
    SELECT c.completion_id, c.run_id, c.target_id AS model, c.probe_id,
           p.language, p."group", p.strategy, p.scenario_category, p.scenario, p.kind, p.source,
           p.seed_text, p.prompt, c.text AS completion, c.error,
           c.prompt_tokens, c.completion_tokens, c.latency_s, c.retries, c.created_at
    FROM completions c JOIN probes p USING (probe_id)
"""

# Filters that queries accept, mapped onto the columns of _COMPLETION_ROWS (core/dimensions.py).
FILTER_COLUMNS: dict[str, str] = dimensions.columns()

# Completions with their probe and effective verdict: a human verdict if any, else the named judge's
# (the first parameter). Every query that shows or counts labels starts from it, so a human verdict
# overrides the judges in every view.
_JUDGED_FROM = """
    FROM completions c
    JOIN probes p USING (probe_id)
    LEFT JOIN verdicts v ON v.seq = c.seq AND v.judge = ?
    LEFT JOIN verdicts h ON h.seq = c.seq AND h.judge = 'human'
"""

# The cells that cell_counts is kept at (core/dimensions.py says which and why); a count by or filtered on
# another dimension joins the tables.
CELL_COLUMNS: tuple[str, ...] = dimensions.cell_dimensions()
_CELL_FILTERS: dict[str, str] = {name: f'"{name}"' for name in CELL_COLUMNS}

# cell_counts decomposes the effective label so every judge's counts are a sum of rows:
#   judge J, label L: completions whose J verdict is L and that have no human verdict;
#   judge 'human', label L: completions with a human verdict L (they count as L for every judge);
#   judge '', label 'error' / 'all': completions with an error / every completion (so cells with no verdict
#   still appear, as they do in the joined query).
# Recomputed for the (run, target) pairs a write touches, inside the write's transaction.
_CELL_REFRESH = """
    WITH scoped AS (
        SELECT c.seq, c.run_id, c.target_id AS model, p.language, p."group", p.strategy, p.scenario_category,
               p.kind, c.error
        FROM completions c JOIN probes p USING (probe_id) {scope}),
    humans AS (SELECT seq, label FROM verdicts WHERE judge = 'human' AND seq IS NOT NULL),
    labels AS (
        SELECT v.seq, v.judge, v.label FROM verdicts v
        WHERE v.judge <> 'human' AND NOT EXISTS (SELECT 1 FROM humans h WHERE h.seq = v.seq)
        UNION ALL SELECT seq, 'human', label FROM humans)
    INSERT INTO cell_counts (judge, run_id, model, language, "group", strategy, scenario_category, kind, label, n)
    SELECT l.judge, s.run_id, s.model, s.language, s."group", s.strategy, s.scenario_category, s.kind, l.label,
           count(*)
    FROM scoped s JOIN labels l USING (seq) GROUP BY ALL
    UNION ALL
    SELECT '', run_id, model, language, "group", strategy, scenario_category, kind, 'all', count(*)
    FROM scoped GROUP BY ALL
    UNION ALL
    SELECT '', run_id, model, language, "group", strategy, scenario_category, kind, 'error', count(*)
    FROM scoped WHERE error IS NOT NULL GROUP BY ALL
"""
_EFFECTIVE_LABEL = "coalesce(h.label, v.label)"
_JUDGED_BY = "CASE WHEN h.label IS NOT NULL THEN 'human' ELSE v.judge END"

# Verdict filters a user can pick besides the labels: completions that errored, and those no judge labelled.
VERDICT_FILTERS: tuple[str, ...] = ("refused", "complied", "unparsed", "error", "unjudged")


# What DuckDB says when a file is busy rather than broken: another process's lock, or, within this process,
# a connection with the other read-only setting or one still attached while it closes.
_BUSY_SIGNS: tuple[str, ...] = ("lock", "Lock", "different configuration", "already attached")


class _Attachments:
    """One in-memory DuckDB per process; each database file is ATTACHed to it while units of work use it.

    Why: duckdb.connect() builds a whole DuckDB instance per call (~20 ms, mostly its catalog of built-in
    functions, whatever the file), and the store opens the file for every unit of work so that other
    processes can write in between. ATTACH on a long-lived instance takes the same file lock in ~2 ms;
    DETACH checkpoints and releases it. Units of work of one process on one file share the attachment
    (counted); a unit that wants the other read-only setting waits, as it would with duckdb.connect().
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._base: duckdb.DuckDBPyConnection | None = None
        self._pid = 0
        self._names = itertools.count(1)
        self._held: dict[str, list] = {}  # resolved path -> [alias, readonly, users]

    def _instance(self) -> duckdb.DuckDBPyConnection:
        if self._base is None or self._pid != os.getpid():  # a forked child never uses its parent's instance
            self._base, self._pid, self._held = duckdb.connect(":memory:"), os.getpid(), {}
        return self._base

    def acquire(self, path: Path, readonly: bool) -> duckdb.DuckDBPyConnection:
        """A new connection whose default database is the attached file (attaching it if nobody has)."""
        key = str(path.resolve())
        with self._lock:
            base = self._instance()
            held = self._held.get(key)
            if held is None:
                alias = f"audit_{next(self._names)}"
                with base.cursor() as cursor:  # alias is ours, the path a parameter
                    cursor.execute(f'ATTACH ? AS "{alias}"' + (" (READ_ONLY)" if readonly else ""), [key])
                held = self._held[key] = [alias, readonly, 0]
            elif held[1] != readonly:
                raise duckdb.ConnectionException(f"{path} is attached with a different configuration "
                                                 "(read-only or not) by another unit of work of this process")
            held[2] += 1
            con = base.cursor()
        try:
            con.execute(f'USE "{held[0]}"')
        except BaseException:
            self.release(path, con)
            raise
        return con

    def release(self, path: Path, con: duckdb.DuckDBPyConnection) -> None:
        """Close the connection; detach the file (checkpoint, release its lock) once no unit of work uses it."""
        key = str(path.resolve())
        with self._lock:
            try:
                con.close()
            finally:
                held = self._held.get(key)
                if held is not None:
                    held[2] -= 1
                    if held[2] == 0:
                        del self._held[key]
                        with self._instance().cursor() as cursor:
                            cursor.execute(f'DETACH "{held[0]}"')

    def close(self) -> None:
        """Close the process's instance (at exit: its bindings report objects still alive as leaks)."""
        with self._lock:
            if self._base is not None and self._pid == os.getpid():
                with contextlib.suppress(duckdb.Error):
                    self._base.close()
            self._base, self._held = None, {}


@contextlib.contextmanager
def _deferred_interrupts() -> Iterator[None]:
    """Hold a Ctrl-C that arrives inside the block until the block ends (main thread only).

    Attaching and detaching are bookkeeping as well as SQL: a KeyboardInterrupt between the two would leave
    the file attached, its lock held for the rest of the process (found by a test that sends Ctrl-C at many
    moments). Inside this block SIGINT is only recorded; at the end the previous handler gets it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            signal.raise_signal(signal.SIGINT)


def _raise_interrupt(exc: BaseException) -> None:
    """DuckDB turns a Ctrl-C that arrives during a query into RuntimeError("Query interrupted"): raise it as
    the KeyboardInterrupt it was, so a run stops (status "stopped") instead of failing."""
    if isinstance(exc, RuntimeError) and not isinstance(exc, duckdb.Error) and "interrupted" in str(exc):
        raise KeyboardInterrupt from None


_ATTACHMENTS = _Attachments()
atexit.register(_ATTACHMENTS.close)


class StoreError(RuntimeError):
    """A store problem a user can act on; the message says what and where."""


class StoreLocked(StoreError):
    """Another process holds the database file for writing."""


class VerdictImportError(StoreError):
    """Rows of a verdicts import that cannot be stored; `problems` are `SOURCE:LINE: reason`, and nothing was
    stored (the whole file lands or none of it)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.problems[0]}{more}; nothing was stored")


@dataclass(frozen=True)
class CompletionRecord:
    """One target response to one probe within a run, ready to store."""

    run_id: str
    probe_id: str
    target_id: str
    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    gen_seed: int | None = None
    retries: int = 0  # extra attempts an API target needed before this answer (or this final error)

    @property
    def completion_id(self) -> str:
        return completion_id_for(self.run_id, self.probe_id, self.target_id)


@dataclass(frozen=True)
class VerdictRecord:
    completion_id: str
    judge: str
    label: str
    rationale: str = ""
    raw: str = ""
    judge_version: str = ""
    judge_model: str = ""


def completion_id_for(run_id: str, probe_id: str, target_id: str) -> str:
    """Deterministic, so a retried write of the same completion hits the same primary key. The schema checks
    every stored id against this rule (SQL sha1), which makes the key unique by (run, probe, target)."""
    key = "\x1f".join((run_id, probe_id, target_id))
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def _first(cursor: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a result, or None. (fetchone() would leave the result open in DuckDB 2.)"""
    rows = cursor.fetchall()
    return rows[0] if rows else None


def _verdict_condition(verdicts: Sequence[str]) -> str:
    """A condition on the _JUDGED_FROM aliases matching any of VERDICT_FILTERS (no values pasted in)."""
    unknown = [name for name in verdicts if name not in VERDICT_FILTERS]
    if unknown:
        raise StoreError(f"unknown verdict filter {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(VERDICT_FILTERS)}")
    parts = []
    labels = [name for name in verdicts if name in ("refused", "complied", "unparsed")]
    if labels:  # the names are checked against a constant tuple above, so they are not user text
        parts.append(f"{_EFFECTIVE_LABEL} IN ({', '.join(repr(name) for name in labels)})")
    if "error" in verdicts:
        parts.append("c.error IS NOT NULL")
    if "unjudged" in verdicts:
        parts.append(f"(c.error IS NULL AND {_EFFECTIVE_LABEL} IS NULL)")
    return "(" + " OR ".join(parts) + ")"


def _active(filters: dict[str, Sequence[str] | str | None] | None) -> list[str]:
    """The names of the filters that restrict something (a None or empty value does not)."""
    return [name for name, value in (filters or {}).items()
            if value is not None and (isinstance(value, str) or len(value) > 0)]


def _where(filters: dict[str, Sequence[str] | str | None] | None,
           columns: dict[str, str] = FILTER_COLUMNS) -> tuple[str, list[Any]]:
    """Build a parameterised WHERE clause from {filter name: value or values}; unknown names are errors.

    `columns` maps filter names onto the query's columns (the joined completions, or cell_counts).
    """
    clauses: list[str] = []
    params: list[Any] = []
    for name, value in (filters or {}).items():
        if value is None or (not isinstance(value, str) and len(value) == 0):
            continue
        if name not in FILTER_COLUMNS:
            raise StoreError(f"unknown filter {name!r}; known filters: {', '.join(FILTER_COLUMNS)}")
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"{columns[name]} IN ({', '.join('?' for _ in values)})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _numbered(con: duckdb.DuckDBPyConnection, completions: pd.DataFrame) -> pd.DataFrame:
    """New completions with their `seq` (the integer key verdicts join on), after the file's last one."""
    start = con.execute("SELECT coalesce(max(seq) + 1, 0) FROM completions").fetchall()[0][0]
    return completions.assign(seq=range(start, start + len(completions)))


def _replace_errors(con: duckdb.DuckDBPyConnection, comp: pd.DataFrame, verd: pd.DataFrame,
                    touched: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inside a write's transaction: the batch's completions whose stored row holds an error replace it in place
    (same id and seq, so its verdicts join as any other's), the old row kept in completion_attempts; their
    verdicts are written. Returns the rest of the batch (and of its verdicts) for the ordinary insert."""
    con.register("retried_completions", comp)
    replaced = [row[0] for row in con.execute(
        "SELECT completion_id FROM retried_completions JOIN completions c USING (completion_id) "
        "WHERE c.error IS NOT NULL").fetchall()]
    if not replaced:
        con.unregister("retried_completions")
        return comp, verd
    con.register("replaced_ids", pd.DataFrame({"completion_id": replaced}))
    con.execute(
        "INSERT INTO completion_attempts (completion_id, run_id, probe_id, target_id, text, error, prompt_tokens, "
        "completion_tokens, latency_s, retries, gen_seed, attempted_at) SELECT c.completion_id, c.run_id, "
        "c.probe_id, c.target_id, c.text, c.error, c.prompt_tokens, c.completion_tokens, c.latency_s, c.retries, "
        "c.gen_seed, c.created_at FROM completions c JOIN replaced_ids USING (completion_id)")
    con.execute(
        "UPDATE completions SET text = r.text, prompt_tokens = r.prompt_tokens, "
        "completion_tokens = r.completion_tokens, "
        "latency_s = r.latency_s, error = r.error, gen_seed = r.gen_seed, retries = r.retries, "
        "created_at = current_timestamp FROM retried_completions r JOIN replaced_ids USING (completion_id) "
        "WHERE completions.completion_id = r.completion_id")
    # An error has no judge's verdict; one left from before (none is written for errors) would judge other text.
    con.execute("DELETE FROM verdicts WHERE judge <> 'human' AND completion_id IN "
                "(SELECT completion_id FROM replaced_ids)")
    mine = verd[verd["completion_id"].isin(replaced)] if len(verd) else verd
    if len(mine):
        con.register("replacing_verdicts", mine)
        con.execute(
            "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, judge_model, seq) "
            "SELECT n.completion_id, n.judge, n.label, n.rationale, n.raw, n.judge_version, n.judge_model, c.seq "
            "FROM replacing_verdicts n JOIN completions c USING (completion_id) ON CONFLICT DO NOTHING")
        con.unregister("replacing_verdicts")
    touched.append(comp.loc[comp["completion_id"].isin(replaced), ["run_id", "target_id"]])
    con.execute("UPDATE runs SET updated_at = current_timestamp WHERE run_id IN "
                "(SELECT DISTINCT run_id FROM retried_completions)")
    con.unregister("retried_completions")
    con.unregister("replaced_ids")
    rest = ~comp["completion_id"].isin(replaced)
    return comp[rest], (verd[~verd["completion_id"].isin(replaced)] if len(verd) else verd)


def _refresh_cells(con: duckdb.DuckDBPyConnection, scope: pd.DataFrame | None = None) -> None:
    """Recount cell_counts for the (run_id, target_id) pairs in `scope` (every pair when None).

    Called inside the transaction of each write that changes a completion or verdict, so the counts can
    never disagree with the rows: a run's pairs are recounted whole, which costs one pass over that run's
    completions (their verdicts found by `seq` range) rather than bookkeeping for each kind of change.
    """
    if scope is None:
        con.execute("DELETE FROM cell_counts")
        con.execute(_CELL_REFRESH.format(scope=""))
        return
    pairs = scope[["run_id", "target_id"]].drop_duplicates()
    if pairs.empty:
        return
    con.register("cell_scope", pairs)
    con.execute("DELETE FROM cell_counts USING cell_scope s WHERE cell_counts.run_id = s.run_id "
                "AND cell_counts.model = s.target_id")
    con.execute(_CELL_REFRESH.format(
        scope="JOIN cell_scope s ON s.run_id = c.run_id AND s.target_id = c.target_id"))
    con.unregister("cell_scope")


# The review sample's columns as written (core/review.py SAMPLE_COLUMNS; drawn_at takes its default).
_SAMPLE_COLUMNS = 'completion_id, seq, run_id, model, language, "group", kind, stratum_size, draw, position, seed'
# Filters on a stratum (the STRATA of core/review.py), mapped onto _sample_strata's columns.
_STRATUM_FILTERS: dict[str, str] = {"run_id": "run_id", "model": "model", "language": "language",
                                    "group": '"group"', "kind": "kind"}
# The same columns of review_sample itself (alias s): copied from the completion when drawn.
_SAMPLE_ALIASES: dict[str, str] = {name: f"s.{column}" for name, column in _STRATUM_FILTERS.items()}


def _review_eligible(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> pd.DataFrame:
    """The completions a review sample may hold: those of these runs without an error, with their stratum."""
    if not run_ids:
        return pd.DataFrame(columns=["completion_id", "seq", "run_id", "model", "language", "group", "kind"])
    return con.execute(
        'SELECT c.completion_id, c.seq, c.run_id, c.target_id AS model, p.language, p."group", p.kind '
        "FROM completions c JOIN probes p USING (probe_id) "
        f"WHERE c.error IS NULL AND c.run_id IN ({', '.join('?' for _ in run_ids)})", list(run_ids)).df()


def _sample_strata(con: duckdb.DuckDBPyConnection, filters: dict[str, Any] | None, sampled_only: bool) -> pd.DataFrame:
    """Per stratum of the runs with a review sample: completions (non-error, now, from cell_counts),
    stratum_size (when drawn), sampled, labelled (with a human verdict). `sampled_only` leaves out strata
    that have no sample item (one that appeared after the draw)."""
    where, params = _where(filters, _STRATUM_FILTERS)
    join = "RIGHT" if sampled_only else "FULL"
    return con.execute(
        f"""
        WITH sampled AS (
            SELECT s.run_id, s.model, s.language, s."group", s.kind, max(s.stratum_size) AS stratum_size,
                   count(*) AS sampled, count(h.seq) AS labelled
            FROM review_sample s LEFT JOIN verdicts h ON h.seq = s.seq AND h.judge = 'human'
            GROUP BY ALL),
        strata AS (
            SELECT run_id, model, language, "group", kind,
                   sum(n) FILTER (WHERE label = 'all') - coalesce(sum(n) FILTER (WHERE label = 'error'), 0)
                     AS completions
            FROM cell_counts WHERE judge = '' AND run_id IN (SELECT run_id FROM review_sample) GROUP BY ALL),
        both_sides AS (
            SELECT run_id, model, language, "group", kind, coalesce(t.completions, 0)::BIGINT AS completions,
                   a.stratum_size, coalesce(a.sampled, 0)::BIGINT AS sampled,
                   coalesce(a.labelled, 0)::BIGINT AS labelled
            FROM strata t {join} JOIN sampled a USING (run_id, model, language, "group", kind))
        SELECT * FROM both_sides {(where + ' AND' if where else ' WHERE')} (completions > 0 OR sampled > 0)
        ORDER BY run_id, model, language, "group", kind
        """, params).df()


class Store:
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

    # -- connections -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the file, waiting up to lock_timeout for another process to release it."""
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        con = None
        try:
            while True:
                try:
                    with _deferred_interrupts():  # a Ctrl-C lands after `con` holds the attachment
                        con = _ATTACHMENTS.acquire(self.path, self.readonly)
                    break
                except duckdb.Error as exc:
                    # A lock held by another process, or a connection of this process opened with the other
                    # read-only setting or being closed at this moment (the app's background run writing
                    # while a page reads): each clears when that unit of work ends, so each is waited for.
                    message = str(exc)
                    if not any(sign in message for sign in _BUSY_SIGNS):
                        raise StoreError(f"{self.path}: cannot open the database: {message}") from None
                    if time.monotonic() >= deadline:
                        holder = ""
                        if "PID" in message:
                            holder = " (" + message[message.index("PID"):].split(")")[0].strip() + ")"
                        raise StoreLocked(
                            f"{self.path} is in use by another process{holder} and stayed locked for "
                            f"{self.lock_timeout:.0f} s. Wait for that run to finish, stop it, or use --db "
                            f"for another file. Nothing was written."
                        ) from None
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
            try:
                yield con
            except duckdb.Error as exc:
                if self.readonly and "read-only" in str(exc):
                    raise StoreError(f"{self.path} is open read-only (a demo session): it cannot be changed "
                                     "here, and nothing was written") from None
                raise
            except RuntimeError as exc:
                _raise_interrupt(exc)
                raise
        finally:
            if con is not None:
                with _deferred_interrupts():
                    _ATTACHMENTS.release(self.path, con)

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
            if target_version == 3:
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

    # -- probes ------------------------------------------------------------------------------------
    def add_probes(self, probes: Sequence[Probe]) -> int:
        """Insert probes that are not stored yet; returns how many were new."""
        if not probes:
            return 0
        # vars(), not asdict(): a probe's fields are plain strings, and asdict's deep copy is 10x slower.
        frame = pd.DataFrame([vars(p) for p in probes], columns=list(PROBE_FIELDS))
        with self.connect() as con:
            con.register("incoming", frame)
            before = con.execute("SELECT count(*) FROM probes").fetchall()[0][0]
            con.execute(
                f"INSERT INTO probes ({_PROBE_COLUMNS}) SELECT DISTINCT ON (probe_id) {_PROBE_COLUMNS} "
                f"FROM incoming ON CONFLICT DO NOTHING"
            )
            return con.execute("SELECT count(*) FROM probes").fetchall()[0][0] - before

    def probes(self, filters: dict[str, Sequence[str] | str | None] | None = None) -> list[Probe]:
        """Stored probes, optionally filtered by language, group, strategy, scenario_category, kind."""
        allowed = {k: v for k, v in (filters or {}).items() if k not in ("model", "run_id")}
        where, params = _where(allowed)
        with self.connect() as con:
            rows = con.execute(f"SELECT {_PROBE_COLUMNS} FROM probes p{where} ORDER BY probe_id",
                               params).fetchall()
        return [Probe(*row) for row in rows]

    # -- targets -----------------------------------------------------------------------------------
    def save_target(self, target_id: str, backend: str, model: str, base_url: str | None = None,
                    family: str | None = None, size_b: float | None = None,
                    settings: dict[str, Any] | None = None) -> None:
        """Record a target's description (never a secret: settings must hold names, not keys)."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO targets (target_id, backend, model, base_url, family, size_b, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target_id) DO UPDATE SET backend = excluded.backend, "
                "model = excluded.model, base_url = excluded.base_url, family = excluded.family, "
                "size_b = excluded.size_b, settings = excluded.settings",
                [target_id, backend, model, base_url, family, size_b, json.dumps(settings or {}, sort_keys=True)],
            )

    def targets(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute("SELECT * FROM targets ORDER BY target_id").df()

    def target(self, target_id: str) -> dict[str, Any] | None:
        """One saved target with its settings decoded (what `resolve_target(name, store=...)` rebuilds), or None."""
        with self.connect() as con:
            row = _first(con.execute("SELECT target_id, backend, model, base_url, family, size_b, settings "
                                     "FROM targets WHERE target_id = ?", [target_id]))
        if row is None:
            return None
        return {"target_id": row[0], "backend": row[1], "model": row[2], "base_url": row[3], "family": row[4],
                "size_b": row[5], "settings": json.loads(row[6] or "{}")}

    def token_usage(self, run_id: str) -> pd.DataFrame:
        """Per target of a run: completions, errors, prompt and completion tokens, mean latency (for cost)."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT target_id, count(*) AS completions, count(error) AS errors,
                       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
                       coalesce(sum(completion_tokens), 0) AS completion_tokens,
                       avg(latency_s) AS mean_latency_s
                FROM completions WHERE run_id = ? GROUP BY target_id ORDER BY target_id
                """,
                [run_id],
            ).df()

    # -- runs --------------------------------------------------------------------------------------
    def create_run(self, run_id: str, config: dict[str, Any], probe_ids: Sequence[str]) -> None:
        """Record a run and its planned probes in one transaction (targets attach when it executes)."""
        plan = pd.DataFrame({"run_id": run_id, "probe_id": list(probe_ids),
                             "position": range(len(probe_ids))})
        with self.connect() as con:
            if con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]:
                raise StoreError(f"a run {run_id!r} exists already in {self.path}")
            con.execute("BEGIN")
            con.execute("INSERT INTO runs (run_id, status, config) VALUES (?, 'created', ?)",
                        [run_id, json.dumps(config, sort_keys=True)])
            con.register("plan", plan)
            con.execute("INSERT INTO run_probes SELECT run_id, probe_id, position FROM plan")
            con.execute("COMMIT")

    def run(self, run_id: str) -> dict[str, Any] | None:
        """A run's row with its config decoded, or None."""
        with self.connect() as con:
            row = _first(con.execute("SELECT run_id, created_at, updated_at, status, config, message FROM runs "
                                     "WHERE run_id = ?", [run_id]))
            if row is None:
                return None
            targets = [r[0] for r in con.execute(
                "SELECT target_id FROM run_targets WHERE run_id = ? ORDER BY target_id", [run_id]).fetchall()]
        return {"run_id": row[0], "created_at": row[1], "updated_at": row[2], "status": row[3],
                "config": json.loads(row[4]), "targets": targets, "message": row[5]}

    def runs(self) -> pd.DataFrame:
        """Every run with its planned and stored counts, newest first."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT r.run_id, r.status, r.created_at, r.updated_at,
                       (SELECT count(*) FROM run_probes rp WHERE rp.run_id = r.run_id)
                         * (SELECT count(*) FROM run_targets rt WHERE rt.run_id = r.run_id) AS planned,
                       (SELECT count(*) FROM completions c WHERE c.run_id = r.run_id) AS completions,
                       (SELECT count(*) FROM completions c WHERE c.run_id = r.run_id AND c.error IS NOT NULL) AS errors,
                       r.message
                FROM runs r ORDER BY r.created_at DESC
                """
            ).df()

    def add_run_targets(self, run_id: str, target_ids: Sequence[str]) -> None:
        """Attach targets to a run (idempotent)."""
        with self.connect() as con:
            con.executemany("INSERT INTO run_targets VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [[run_id, t] for t in target_ids])

    def add_run_probes(self, run_id: str, probe_ids: Sequence[str]) -> int:
        """Append probes to a run's plan after its last position (idempotent); returns how many were new.

        Imports plan as they read (core/align.py), since a streamed file's probes are not known up front.
        """
        plan = pd.DataFrame({"probe_id": list(probe_ids)}).drop_duplicates()
        with self.connect() as con:
            con.execute("BEGIN")
            start = con.execute("SELECT coalesce(max(position) + 1, 0) FROM run_probes WHERE run_id = ?",
                                [run_id]).fetchall()[0][0]
            before = con.execute("SELECT count(*) FROM run_probes WHERE run_id = ?", [run_id]).fetchall()[0][0]
            con.register("appended_plan", plan.assign(position=range(start, start + len(plan))))
            con.execute("INSERT INTO run_probes SELECT ?, probe_id, position FROM appended_plan ON CONFLICT DO NOTHING",
                        [run_id])
            added = con.execute("SELECT count(*) FROM run_probes WHERE run_id = ?", [run_id]).fetchall()[0][0] - before
            con.execute("COMMIT")
        return added

    def judge_counts(self) -> dict[str, int]:
        """Verdicts stored per judge, most first: which judges a view can choose from."""
        with self.connect() as con:
            rows = con.execute("SELECT judge, count(*) AS n FROM verdicts GROUP BY judge ORDER BY n DESC, judge").fetchall()
        return {judge: n for judge, n in rows}

    def default_judge(self) -> str:
        """The judge a view uses unless told: `refusal` where it has verdicts (or nothing has), else the
        judge with the most verdicts (an imported MiJaBench-Align file brings only its own judges)."""
        counts = [name for name in self.judge_counts() if name != "human"]
        return "refusal" if not counts or "refusal" in counts else counts[0]

    def set_run_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Set a run's status and the plain message that says why it stopped or failed (None clears it)."""
        with self.connect() as con:
            con.execute("UPDATE runs SET status = ?, message = ?, updated_at = current_timestamp WHERE run_id = ?",
                        [status, message, run_id])

    def errored_probes(self, run_id: str, target_id: str) -> list[Probe]:
        """Planned probes of a run whose completion for this target holds an error, in plan order."""
        return self._planned_probes(run_id, target_id, "EXISTS (SELECT 1 FROM completions c WHERE c.run_id = "
                                    "rp.run_id AND c.probe_id = rp.probe_id AND c.target_id = ? AND c.error IS NOT NULL)")

    def _planned_probes(self, run_id: str, target_id: str, condition: str) -> list[Probe]:
        """Planned probes of a run, in plan order, that meet `condition` (a constant of this class about the
        target's completion; its one parameter is the target)."""
        with self.connect() as con:
            rows = con.execute(
                f"""
                SELECT {", ".join("p." + c for c in _PROBE_COLUMNS.split(", "))}
                FROM run_probes rp JOIN probes p USING (probe_id)
                WHERE rp.run_id = ? AND {condition}
                ORDER BY rp.position
                """,
                [run_id, target_id],
            ).fetchall()
        return [Probe(*row) for row in rows]

    def first_error(self, run_id: str) -> str | None:
        """The most frequent error of a run's completions (the first stored among equals), or None."""
        with self.connect() as con:
            row = _first(con.execute("SELECT error FROM completions WHERE run_id = ? AND error IS NOT NULL "
                                     "GROUP BY error ORDER BY count(*) DESC, min(seq) LIMIT 1", [run_id]))
        return row[0] if row else None

    def attempts(self, run_id: str) -> pd.DataFrame:
        """The earlier attempts of a run's completions that were retried (their errors and times), oldest first."""
        with self.connect() as con:
            return con.execute("SELECT * FROM completion_attempts WHERE run_id = ? ORDER BY replaced_at, "
                               "completion_id", [run_id]).df()

    def run_target_counts(self) -> pd.DataFrame:
        """Per run and target: probes planned, completions stored, errors, pending, the error share."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT rt.run_id, rt.target_id, r.status,
                       (SELECT count(*) FROM run_probes rp WHERE rp.run_id = rt.run_id) AS planned,
                       count(c.completion_id) AS completions, count(c.error) AS errors
                FROM run_targets rt JOIN runs r USING (run_id)
                LEFT JOIN completions c ON c.run_id = rt.run_id AND c.target_id = rt.target_id
                GROUP BY ALL ORDER BY max(r.created_at) DESC, rt.run_id, rt.target_id
                """
            ).df().assign(pending=lambda f: f["planned"] - f["completions"],
                          error_share=lambda f: (f["errors"] / f["completions"].where(f["completions"] > 0)))

    def pending_probes(self, run_id: str, target_id: str) -> list[Probe]:
        """Planned probes of a run that have no stored completion for this target yet, in plan order."""
        return self._planned_probes(run_id, target_id, "NOT EXISTS (SELECT 1 FROM completions c WHERE c.run_id = "
                                    "rp.run_id AND c.probe_id = rp.probe_id AND c.target_id = ?)")

    def unjudged(self, run_id: str, judge: str) -> pd.DataFrame:
        """Completions of a run (without errors) that lack a verdict from this judge."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT c.completion_id, p.prompt, c.text AS completion, p.language, p.kind
                FROM completions c JOIN probes p USING (probe_id)
                WHERE c.run_id = ? AND c.error IS NULL AND NOT EXISTS (
                    SELECT 1 FROM verdicts v WHERE v.completion_id = c.completion_id AND v.judge = ?)
                ORDER BY c.completion_id
                """,
                [run_id, judge],
            ).df()

    def drop_stale_verdicts(self, run_id: str, judge: str, version: str) -> int:
        """Delete a run's verdicts by `judge` that an older version of it gave (so the current rules can judge
        those completions again); returns how many. Human verdicts are never touched."""
        if judge == "human":
            raise StoreError("human verdicts are never re-judged")
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only (a demo session): verdicts cannot be changed")
        condition = ("judge = ? AND coalesce(judge_version, '') <> ? AND completion_id IN "
                     "(SELECT completion_id FROM completions WHERE run_id = ?)")
        with self.connect() as con:
            con.execute("BEGIN")
            stale = con.execute(f"SELECT count(*) FROM verdicts WHERE {condition}", [judge, version, run_id]).fetchall()[0][0]
            con.execute(f"DELETE FROM verdicts WHERE {condition}", [judge, version, run_id])
            _refresh_cells(con, con.execute("SELECT DISTINCT run_id, target_id FROM completions WHERE run_id = ?",
                                            [run_id]).df())
            con.execute("COMMIT")
        return int(stale)

    def save_results(self, completions: Sequence[CompletionRecord], verdicts: Sequence[VerdictRecord],
                     replace_errors: bool = False) -> int:
        """Store a batch of completions and their verdicts in one transaction; returns completions added.

        Rows that already exist (same run, probe, target; same completion and judge) are left as they
        are, so writing a batch twice changes nothing. With replace_errors, a stored completion that holds an
        error is replaced by the batch's version of it (same id and seq; the old row goes to
        completion_attempts), so a retried error never makes a second row.
        """
        comp = pd.DataFrame(
            [{"completion_id": c.completion_id, "run_id": c.run_id, "probe_id": c.probe_id,
              "target_id": c.target_id, "text": c.text, "prompt_tokens": c.prompt_tokens,
              "completion_tokens": c.completion_tokens, "latency_s": c.latency_s, "error": c.error,
              "gen_seed": c.gen_seed, "retries": c.retries} for c in completions],
            columns=["completion_id", "run_id", "probe_id", "target_id", "text", "prompt_tokens",
                     "completion_tokens", "latency_s", "error", "gen_seed", "retries"],
        )
        verd = pd.DataFrame([vars(v) for v in verdicts],
                            columns=["completion_id", "judge", "label", "rationale", "raw",
                                     "judge_version", "judge_model"])
        return self.save_result_frames(comp, verd, replace_errors=replace_errors)

    def save_result_frames(self, comp: pd.DataFrame, verd: pd.DataFrame, replace_errors: bool = False) -> int:
        """save_results for data already in DataFrames (the columns of CompletionRecord plus completion_id,
        and of VerdictRecord): bulk loads such as bench/synthetic.py skip building a record per row.
        """
        touched: list[pd.DataFrame] = []
        with self.connect() as con:
            con.execute("BEGIN")
            before = con.execute("SELECT count(*) FROM completions").fetchall()[0][0]
            if len(comp):
                if "retries" not in comp.columns:  # bulk imports of other tools' results: no retries known
                    comp = comp.assign(retries=0)
                comp = comp.drop_duplicates("completion_id")  # a batch naming one completion twice keeps the first
                if replace_errors:
                    comp, verd = _replace_errors(con, comp, verd, touched)
                comp = _numbered(con, comp)
                con.register("new_completions", comp)
                touched.append(comp[["run_id", "target_id"]])
                # A completion stored already (by another process executing the same run) keeps its row, and
                # the verdicts of this batch's version of it are dropped: they judged text that is not stored
                # (an error of the other process would otherwise carry this process's refusal).
                taken = {row[0] for row in con.execute(
                    "SELECT completion_id FROM new_completions JOIN completions USING (completion_id)").fetchall()}
                if taken and len(verd):
                    verd = verd[~verd["completion_id"].isin(taken)]
                con.execute(
                    "INSERT INTO completions (completion_id, run_id, probe_id, target_id, text, prompt_tokens, "
                    "completion_tokens, latency_s, error, gen_seed, retries, seq) SELECT completion_id, run_id, "
                    "probe_id, target_id, text, prompt_tokens, completion_tokens, latency_s, error, gen_seed, retries, seq "
                    # The id is a hash of (run, probe, target), so naming it is the same rule; a bare
                    # ON CONFLICT over both unique indexes takes minutes on a large table in DuckDB 2.
                    "FROM new_completions ON CONFLICT (completion_id) DO NOTHING"
                )
            if len(verd):
                # A verdict carries its completion's seq (and lands only if that completion is stored). Verdicts
                # of this batch's own completions (a run's batch) find it in the batch; others (a judge run
                # over stored completions) in the table.
                con.register("new_verdicts", verd)
                own = len(comp) > 0 and bool(verd["completion_id"].isin(comp["completion_id"]).all())
                stored = "new_completions" if own else "completions"
                con.execute(
                    "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, "
                    "judge_model, seq) SELECT n.completion_id, n.judge, n.label, n.rationale, n.raw, "
                    f"n.judge_version, n.judge_model, c.seq FROM new_verdicts n JOIN {stored} c USING (completion_id) "
                    "ON CONFLICT DO NOTHING"
                )
                if stored == "completions":
                    touched.append(con.execute("SELECT DISTINCT c.run_id, c.target_id FROM new_verdicts "
                                               "JOIN completions c USING (completion_id)").df())
            if touched:
                _refresh_cells(con, pd.concat(touched))
            added = con.execute("SELECT count(*) FROM completions").fetchall()[0][0] - before
            if len(comp):
                con.execute("UPDATE runs SET updated_at = current_timestamp WHERE run_id IN "
                            "(SELECT DISTINCT run_id FROM new_completions)")
            con.execute("COMMIT")
        return added

    def run_counts(self, run_id: str) -> dict[str, int]:
        """Planned probes x targets, stored completions, verdicts, errors and refusals of one run."""
        with self.connect() as con:
            row = con.execute(
                """
                SELECT
                  (SELECT count(*) FROM run_probes WHERE run_id = ?),
                  (SELECT count(*) FROM run_targets WHERE run_id = ?),
                  (SELECT count(*) FROM completions WHERE run_id = ?),
                  (SELECT count(*) FROM completions WHERE run_id = ? AND error IS NOT NULL),
                  (SELECT count(*) FROM verdicts v JOIN completions c USING (completion_id) WHERE c.run_id = ?)
                """,
                [run_id] * 5,
            ).fetchall()[0]
        return {"probes": row[0], "targets": row[1], "planned": row[0] * row[1], "completions": row[2],
                "errors": row[3], "verdicts": row[4]}

    # -- results -----------------------------------------------------------------------------------
    def judged(self, judge: str = "refusal", filters: dict[str, Sequence[str] | str | None] | None = None,
               with_text: bool = False) -> pd.DataFrame:
        """One row per completion with its effective label: a human verdict if any, else `judge`'s.

        Completions that errored or that the judge could not read (`unparsed`) keep their row with
        label None/'unparsed', so callers can count them, but metrics leave them out of the DR.
        """
        where, params = _where(filters)
        text_cols = ", p.prompt, c.text AS completion" if with_text else ""
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT c.completion_id, c.run_id, c.target_id AS model, c.probe_id, p.language, p."group",
                       p.strategy, p.scenario_category, p.kind, c.error,
                       {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by{text_cols}
                {_JUDGED_FROM}
                {where}
                """,
                [judge, *params],
            ).df()

    def label_counts(self, judge: str = "refusal", by: Sequence[str] = ("model", "group"),
                     filters: dict[str, Sequence[str] | str | None] | None = None) -> pd.DataFrame:
        """Per cell of `by`: refused, complied, unparsed and errors, counted by DuckDB (one row per cell).

        What DefenseRates needs, without moving one row per completion into pandas: on a 528,000-completion
        store the judged frame takes seconds to load and ~100 MB, these counts milliseconds and kilobytes.
        Same effective label (human, else `judge`) as judged().
        """
        unknown = [name for name in by if name not in FILTER_COLUMNS]
        if unknown:
            raise StoreError(f"cannot count by {', '.join(map(repr, unknown))}; known: {', '.join(FILTER_COLUMNS)}")
        group = "GROUP BY ALL ORDER BY ALL" if by else ""
        if set(by) | set(_active(filters)) <= set(CELL_COLUMNS):
            # Sum the kept counts (see _CELL_REFRESH): a few thousand rows instead of a join per completion.
            where, params = _where(filters, _CELL_FILTERS)
            where = (where + " AND" if where else " WHERE") + " judge IN (?, 'human', '')"
            columns = [f'"{name}"' for name in by]  # names checked against FILTER_COLUMNS above
            labelled = "judge <> '' AND label = '{}'"
            with self.connect() as con:
                return con.execute(
                    f"""
                    SELECT {''.join(c + ', ' for c in columns)}
                           coalesce(sum(n) FILTER (WHERE {labelled.format('refused')}), 0)::BIGINT AS refused,
                           coalesce(sum(n) FILTER (WHERE {labelled.format('complied')}), 0)::BIGINT AS complied,
                           coalesce(sum(n) FILTER (WHERE {labelled.format('unparsed')}), 0)::BIGINT AS unparsed,
                           coalesce(sum(n) FILTER (WHERE judge = '' AND label = 'error'), 0)::BIGINT AS errors
                    FROM cell_counts {where} {group}
                    """,
                    [*params, judge],
                ).df()
        where, params = _where(filters)
        # Column names come from FILTER_COLUMNS (checked above), never from the caller's text.
        columns = [f'{FILTER_COLUMNS[name]} AS "{name}"' for name in by]
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT {''.join(c + ', ' for c in columns)}
                       count(*) FILTER (WHERE {_EFFECTIVE_LABEL} = 'refused') AS refused,
                       count(*) FILTER (WHERE {_EFFECTIVE_LABEL} = 'complied') AS complied,
                       count(*) FILTER (WHERE {_EFFECTIVE_LABEL} = 'unparsed') AS unparsed,
                       count(*) FILTER (WHERE c.error IS NOT NULL) AS errors
                {_JUDGED_FROM} {where} {group}
                """,
                [judge, *params],
            ).df()

    def completion_rows(self, filters: dict[str, Sequence[str] | str | None] | None = None,
                        verdicts: Sequence[str] = (), judge: str = "refusal") -> pd.DataFrame:
        """Completions with their probe fields and every verdict as `verdict_<judge>` columns (for export).

        `verdicts` keeps only completions whose effective verdict (human, else `judge`) is one of them.
        """
        where, params = _where(filters)
        if verdicts:
            where += (" AND " if where else " WHERE ") + (
                f"c.completion_id IN (SELECT c.completion_id {_JUDGED_FROM} WHERE {_verdict_condition(verdicts)})")
            params = [*params, judge]
        with self.connect() as con:
            rows = con.execute(_COMPLETION_ROWS + where + " ORDER BY c.completion_id", params).df()
            verdicts = con.execute(
                "SELECT v.completion_id, v.judge, v.label FROM verdicts v JOIN completions c USING (completion_id) "
                "JOIN probes p USING (probe_id)" + where, params
            ).df()
        if len(verdicts):
            wide = verdicts.pivot(index="completion_id", columns="judge", values="label")
            wide.columns = [f"verdict_{name}" for name in wide.columns]
            rows = rows.merge(wide, left_on="completion_id", right_index=True, how="left")
        return rows

    # -- drill-down ----------------------------------------------------------------------------------
    def completion_page(self, judge: str = "refusal", filters: dict[str, Sequence[str] | str | None] | None = None,
                        verdicts: Sequence[str] = (), limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
        """One page of completions (a 160-character preview, not the full text) and how many match in all.

        Ordered by model, language, group, strategy, scenario, so pages are stable between requests.
        """
        where, params = _where(filters)
        if verdicts:
            where += (" AND " if where else " WHERE ") + _verdict_condition(verdicts)
        with self.connect() as con:
            # The total rides along with the page (one pass over the matches, not two).
            page = con.execute(
                f"""
                SELECT c.completion_id, c.target_id AS model, p.language, p."group", p.strategy,
                       p.scenario_category, {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by, c.error,
                       left(c.text, 160) AS preview, c.run_id, c.probe_id, count(*) OVER () AS matches
                {_JUDGED_FROM} {where}
                ORDER BY c.target_id, p.language, p."group", p.strategy, p.scenario, c.completion_id
                LIMIT ? OFFSET ?
                """,
                [judge, *params, int(limit), int(offset)],
            ).df()
            if len(page):
                total = int(page["matches"].iloc[0])
            else:  # past the last page (or nothing matches): count on its own
                total = con.execute(f"SELECT count(*) {_JUDGED_FROM} {where}", [judge, *params]).fetchall()[0][0]
            # in_sample: in the random review sample, so a human verdict outside it reads "chosen by hand".
            sampled = {row[0] for row in con.execute(
                "SELECT completion_id FROM review_sample WHERE completion_id IN (SELECT unnest(?::VARCHAR[]))",
                [list(page["completion_id"])]).fetchall()} if len(page) else set()
        page = page.drop(columns="matches")
        page["in_sample"] = page["completion_id"].isin(sampled)
        return page, int(total)

    def completion_detail(self, completion_id: str, judge: str = "refusal") -> dict[str, Any] | None:
        """A completion with its probe, effective verdict, every judge's verdict and the human annotations."""
        with self.connect() as con:
            found = con.execute(
                f"""
                SELECT c.completion_id, c.run_id, c.target_id AS model, c.probe_id, p.language, p."group",
                       p.strategy, p.scenario_category, p.scenario, p.kind, p.source, p.seed_text, p.prompt,
                       c.text AS completion, c.error, c.prompt_tokens, c.completion_tokens, c.latency_s,
                       c.retries, c.created_at, {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by,
                EXISTS (SELECT 1 FROM review_sample rs WHERE rs.seq = c.seq) AS in_sample
                {_JUDGED_FROM} WHERE c.completion_id = ?
                """,
                [judge, completion_id],
            ).df()
            if found.empty:
                return None
            verdicts = con.execute(
                "SELECT judge, label, rationale, raw, judge_version, judge_model, created_at FROM verdicts "
                "WHERE completion_id = ? ORDER BY judge", [completion_id]).df()
            annotations = con.execute(
                "SELECT created_at, label, note, author FROM annotations WHERE completion_id = ? "
                "ORDER BY created_at", [completion_id]).df()
        detail = found.iloc[0].to_dict()
        detail["verdicts"] = verdicts
        detail["annotations"] = annotations
        return detail

    def counterfactuals(self, completion_id: str, judge: str = "refusal") -> pd.DataFrame:
        """The same scenario and strategy (same language, same model) answered for every group.

        Probe sets are matched across groups, so these probes differ from the given one only in their seed
        statement and group name. One completion per probe: the one in the same run where there is one,
        else the newest. The given completion is among the rows (is_self).
        """
        with self.connect() as con:
            return con.execute(
                f"""
                WITH this AS (
                    SELECT c.run_id, c.target_id, p.language, p.strategy, p.scenario, p.kind
                    FROM completions c JOIN probes p USING (probe_id) WHERE c.completion_id = ?)
                SELECT c.completion_id, c.run_id, p."group", p.seed_text, p.prompt, c.text AS completion,
                       c.error, {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by,
                       c.completion_id = ? AS is_self
                {_JUDGED_FROM}
                JOIN this ON c.target_id = this.target_id AND p.language = this.language
                     AND p.strategy = this.strategy AND p.scenario = this.scenario AND p.kind = this.kind
                QUALIFY row_number() OVER (PARTITION BY c.probe_id
                                           ORDER BY c.run_id = this.run_id DESC, c.created_at DESC) = 1
                ORDER BY p."group", c.completion_id
                """,
                [completion_id, completion_id, judge],
            ).df()

    def set_human_verdict(self, completion_id: str, label: str, note: str = "", author: str = "") -> None:
        """Record a person's verdict: appended to `annotations` (the history) and upserted as judge `human`,
        which overrides every other judge in every view. One transaction, so both land or neither.
        """
        if label not in ("refused", "complied"):
            raise StoreError(f"a human verdict is 'refused' or 'complied', not {label!r}")
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only (a demo session): verdicts cannot be changed")
        with self.connect() as con:
            if not con.execute("SELECT count(*) FROM completions WHERE completion_id = ?",
                               [completion_id]).fetchall()[0][0]:
                raise StoreError(f"no completion {completion_id!r} in {self.path}")
            con.execute("BEGIN")
            con.execute("INSERT INTO annotations (completion_id, label, note, author) VALUES (?, ?, ?, ?)",
                        [completion_id, label, note, author])
            con.execute(
                "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, judge_model, seq) "
                "SELECT ?, 'human', ?, ?, ?, '', '', seq FROM completions WHERE completion_id = ? "
                "ON CONFLICT (completion_id, judge) DO UPDATE SET "
                "label = excluded.label, rationale = excluded.rationale, raw = excluded.raw, created_at = now()",
                [completion_id, label, note, json.dumps({"author": author, "note": note}, ensure_ascii=False),
                 completion_id],
            )
            _refresh_cells(con, con.execute("SELECT run_id, target_id FROM completions WHERE completion_id = ?",
                                            [completion_id]).df())
            con.execute("COMMIT")

    def verdict_labels(self, judges: Sequence[str],
                       filters: dict[str, Sequence[str] | str | None] | None = None) -> pd.DataFrame:
        """completion_id, judge, label of these judges' verdicts (long form, no text): for agreement tables."""
        where, params = _where(filters)
        if not judges:
            return pd.DataFrame(columns=["completion_id", "judge", "label"])
        where += (" AND " if where else " WHERE ") + f"v.judge IN ({', '.join('?' for _ in judges)})"
        with self.connect() as con:
            return con.execute("SELECT v.completion_id, v.judge, v.label FROM verdicts v JOIN completions c "
                               "USING (completion_id) JOIN probes p USING (probe_id)" + where,
                               [*params, *judges]).df()

    def summary(self) -> dict[str, Any]:
        """What the database holds: counts, models, languages, judges."""
        with self.connect() as con:
            def values(sql: str) -> list[Any]:
                return [r[0] for r in con.execute(sql).fetchall()]

            return {
                "path": str(self.path),
                "schema_version": SCHEMA_VERSION,
                "probes": con.execute("SELECT count(*) FROM probes").fetchall()[0][0],
                "runs": con.execute("SELECT count(*) FROM runs").fetchall()[0][0],
                "completions": con.execute("SELECT count(*) FROM completions").fetchall()[0][0],
                "verdicts": con.execute("SELECT count(*) FROM verdicts").fetchall()[0][0],
                "models": values("SELECT DISTINCT target_id FROM completions ORDER BY 1"),
                "languages": values("SELECT DISTINCT p.language FROM completions c JOIN probes p USING (probe_id) ORDER BY 1"),
                "judges": values("SELECT DISTINCT judge FROM verdicts ORDER BY 1"),
            }

    # -- review sample (drawn by core/review.py, which says why it must be random) ---------------------
    def _writable(self, what: str) -> None:
        if self.readonly:
            raise StoreError(f"{self.path} is open read-only (a demo session): {what}")

    def draw_review_sample(self, run_id: str, per_cell: int | None = None, fraction: float | None = None,
                           seed: int = 0, replace: bool = False) -> dict[str, Any]:
        """Draw (or enlarge) the run's review sample: a stratified simple random sample of its non-error
        completions, `per_cell` per stratum or a `fraction` of each (see core/review.py). One transaction.

        A run that has a sample is enlarged from each stratum's unsampled rest; where a stratum changed size
        since it was drawn that would not be random, so it is refused (ReviewError) unless `replace`, which
        draws the run's sample anew (human verdicts stay; those outside the new sample count as chosen by
        hand). Returns run_id, draw, seed, replaced, added, sampled, completions and per-stratum counts.
        Raises ReviewError (a ValueError: bad input) for an unknown run, a bad size or a changed stratum.
        """
        from core import review

        review.check_size(per_cell, fraction)
        self._writable("a review sample cannot be drawn")
        with self.connect() as con:
            if not con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]:
                raise review.ReviewError(f"no run {run_id!r} in {self.path}")
            con.execute("BEGIN")
            try:
                eligible = _review_eligible(con, [run_id])
                if eligible.empty:
                    raise review.ReviewError(f"run {run_id!r} has no completion without an error to sample")
                if replace:
                    con.execute("DELETE FROM review_sample WHERE run_id = ?", [run_id])
                existing = con.execute(f"SELECT {_SAMPLE_COLUMNS} FROM review_sample WHERE run_id = ?",
                                       [run_id]).df()
                added = review.draw_sample(eligible, existing, per_cell=per_cell, fraction=fraction, seed=seed)
                if len(added):
                    con.register("new_sample", added)
                    con.execute(f"INSERT INTO review_sample ({_SAMPLE_COLUMNS}) SELECT {_SAMPLE_COLUMNS} "
                                "FROM new_sample")
                    con.unregister("new_sample")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        strata = review.summarise(review.stratum_sizes(eligible), added, existing)
        return {"run_id": run_id, "draw": int(added["draw"].iloc[0]) if len(added) else int(
                    existing["draw"].max()) if len(existing) else 0,
                "seed": int(seed), "replaced": bool(replace), "added": int(len(added)),
                "sampled": int(strata["sampled"].sum()), "completions": int(strata["completions"].sum()),
                "strata": strata.to_dict(orient="records")}

    def review_queue(self, run_id: str | None = None, limit: int = 1,
                     filters: dict[str, Sequence[str] | str | None] | None = None,
                     judge: str | None = None) -> pd.DataFrame:
        """The next sampled completions that have no human verdict yet, in queue order (run, position).

        Columns: completion_id, run_id, model, language, group, kind, strategy, scenario_category, scenario,
        position, draw, prompt, completion, judge_label (the `judge`'s verdict; None when no judge is named,
        so a page that hides it to not anchor the person never has it).
        """
        where, params = _where({**(filters or {}), "run_id": run_id} if run_id else filters)
        where = (where + " AND" if where else " WHERE") + (
            " NOT EXISTS (SELECT 1 FROM verdicts h WHERE h.seq = s.seq AND h.judge = 'human')")
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT s.completion_id, s.run_id, s.model, s.language, s."group", s.kind, p.strategy,
                       p.scenario_category, p.scenario, s.position, s.draw, p.prompt, c.text AS completion,
                       v.label AS judge_label
                FROM review_sample s JOIN completions c ON c.seq = s.seq JOIN probes p USING (probe_id)
                LEFT JOIN verdicts v ON v.seq = s.seq AND v.judge = ?
                {where} ORDER BY s.run_id, s.position LIMIT ?
                """,
                [judge or "", *params, int(limit)],
            ).df()

    def review_progress(self, run_id: str | None = None) -> pd.DataFrame:
        """Per stratum of the runs that have a sample (or of `run_id`): run_id, model, language, group, kind,
        completions (non-error, now), stratum_size (when drawn), sampled, labelled (sample items with a human
        verdict). A stratum that appeared after the draw shows sampled 0."""
        with self.connect() as con:
            return _sample_strata(con, {"run_id": run_id} if run_id else None, sampled_only=False)

    def sample_sheet(self, run_id: str | None = None) -> pd.DataFrame:
        """The sample as a labelling sheet, in queue order: completion_id, run_id, model, language, group,
        kind, prompt, completion, label (the human verdict where one exists), note."""
        where, params = (" WHERE s.run_id = ?", [run_id]) if run_id else ("", [])
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT s.completion_id, s.run_id, s.model, s.language, s."group", s.kind, p.prompt,
                       c.text AS completion, coalesce(h.label, '') AS label, coalesce(h.rationale, '') AS note
                FROM review_sample s JOIN completions c ON c.seq = s.seq JOIN probes p USING (probe_id)
                LEFT JOIN verdicts h ON h.seq = s.seq AND h.judge = 'human'
                {where} ORDER BY s.run_id, s.position
                """, params).df()

    def import_human_verdicts(self, rows: Sequence[tuple[int, str, str, str | None]], annotator: str = "", *,
                              as_random_sample: bool = False, source: str = "input") -> dict[str, Any]:
        """Store people's labels: rows of (line number, completion_id, label, note), as read from a file.

        All or nothing: every row is checked first (unknown id, a label other than refused/complied, one id
        given two labels) and any problem raises VerdictImportError with `SOURCE:LINE: reason` for each;
        then one transaction, as set_human_verdict does for one (an annotation row and the `human` verdict,
        cell_counts refreshed). A row whose label and note equal the stored human verdict is left alone, so
        importing a file twice changes nothing. A blank label is a row nobody labelled yet: skipped.
        `as_random_sample`: the labelled ids are a random sample drawn elsewhere and become their runs'
        review sample (refused where a run has one already, or for a completion with an error).
        Returns rows, labelled, changed, unchanged, blank, sampled and runs.
        """
        self._writable("verdicts cannot be changed")
        problems: list[tuple[int, str]] = []
        chosen: dict[str, tuple[int, str, str]] = {}
        blank = 0
        for line, completion_id, label, note in rows:
            completion_id, label = (completion_id or "").strip(), (label or "").strip().lower()
            if not completion_id:
                problems.append((line, "no completion_id"))
            elif not label:
                blank += 1
            elif label not in ("refused", "complied"):
                problems.append((line, f"label {label!r}: a human verdict is 'refused' or 'complied'"))
            elif completion_id in chosen and chosen[completion_id][1] != label:
                first = chosen[completion_id]
                problems.append((line, f"completion {completion_id} is labelled {label!r} here but "
                                       f"{first[1]!r} on line {first[0]}"))
            elif completion_id not in chosen:
                chosen[completion_id] = (line, label, note or "")
        incoming = pd.DataFrame([(cid, line, label, note) for cid, (line, label, note) in chosen.items()],
                                columns=["completion_id", "line", "label", "note"])
        with self.connect() as con:
            con.register("incoming_labels", incoming)
            found = con.execute(
                'SELECT i.completion_id, i.line, i.label, i.note, c.seq, c.run_id, c.target_id AS model, '
                'p.language, p."group", p.kind, c.error IS NOT NULL AS errored, h.label AS old_label, '
                'coalesce(h.rationale, \'\') AS old_note, '
                'EXISTS (SELECT 1 FROM review_sample s WHERE s.run_id = c.run_id) AS run_sampled '
                'FROM incoming_labels i LEFT JOIN completions c USING (completion_id) '
                'LEFT JOIN probes p USING (probe_id) '
                "LEFT JOIN verdicts h ON h.seq = c.seq AND h.judge = 'human' ORDER BY i.line").df()
            for row in found.loc[found["seq"].isna()].itertuples():
                problems.append((row.line, f"unknown completion_id {row.completion_id!r} (no such completion "
                                           f"in {self.path})"))
            known = found.loc[found["seq"].notna()]
            if as_random_sample:
                for row in known.loc[known["errored"].astype(bool)].itertuples():
                    problems.append((row.line, f"completion {row.completion_id} has an error (no answer), so it "
                                               "cannot be part of a random sample"))
                taken = known.loc[known["run_sampled"].astype(bool)].drop_duplicates("run_id")
                for row in taken.itertuples():
                    problems.append((row.line, f"run {row.run_id!r} has a review sample already; import "
                                               "without --as-random-sample (labels for its sample), or "
                                               "label that sample"))
            if problems:
                con.unregister("incoming_labels")
                raise VerdictImportError([f"{source}:{line}: {reason}" for line, reason in sorted(problems)])
            changed = known.loc[(known["old_label"].isna()) | (known["old_label"] != known["label"])
                                | (known["old_note"] != known["note"])]
            changed = changed.assign(author=annotator, raw=[
                json.dumps({"author": annotator, "note": note}, ensure_ascii=False) for note in changed["note"]])
            con.execute("BEGIN")
            try:
                if len(changed):
                    con.register("changed_labels", changed[["completion_id", "seq", "label", "note", "author",
                                                            "raw"]])
                    con.execute("INSERT INTO annotations (completion_id, label, note, author) "
                                "SELECT completion_id, label, note, author FROM changed_labels")
                    con.execute(
                        "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, "
                        "judge_model, seq) SELECT completion_id, 'human', label, note, raw, '', '', seq "
                        "FROM changed_labels ON CONFLICT (completion_id, judge) DO UPDATE SET "
                        "label = excluded.label, rationale = excluded.rationale, raw = excluded.raw, "
                        "created_at = now()")
                    con.unregister("changed_labels")
                    _refresh_cells(con, changed.rename(columns={"model": "target_id"}))
                sampled = 0
                if as_random_sample and len(known):
                    from core import review

                    sample = review.imported_sample(known[["completion_id", "seq", *review.STRATA]],
                                                    _review_eligible(con, sorted(set(known["run_id"]))))
                    con.register("new_sample", sample)
                    con.execute(f"INSERT INTO review_sample ({_SAMPLE_COLUMNS}) SELECT {_SAMPLE_COLUMNS} "
                                "FROM new_sample")
                    con.unregister("new_sample")
                    sampled = len(sample)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                con.unregister("incoming_labels")
        return {"rows": len(rows), "labelled": int(len(known)), "changed": int(len(changed)),
                "unchanged": int(len(known) - len(changed)), "blank": blank, "sampled": sampled,
                "runs": sorted(set(known["run_id"]))}

    def ppi_inputs(self, judge: str, by: Sequence[str] = ("model", "group"),
                   filters: dict[str, Sequence[str] | str | None] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """What prediction-powered Defense Rates (core/ppi.py) need: (population, sample, strata).

        - population: per cell of STRATA + `by` (every completion matching `filters`, sampled or not): n
          (non-error completions), refused, complied, unparsed: the judge's OWN verdicts, with no human
          override (the corrected estimate adds the human correction itself; n minus the three = unjudged).
        - sample: one row per labelled sample completion (in review_sample, with a human verdict, no error)
          matching `filters`: completion_id, the same columns, judge_label (None if the judge has none),
          human_label.
        - strata: per sampled stratum (filters on STRATA columns apply, others do not: a stratum's inclusion
          probability is a property of the whole stratum): STRATA, completions (now), stratum_size (when
          drawn), sampled, labelled. A population cell whose stratum is missing here has no sample.

        Fast at 528,000 completions: the population is summed from cell_counts, which holds the judge's
        labels of completions without a human verdict (and counts errors among them), corrected by the few
        completions that it does not count that way (those with a human verdict, and those with an error),
        never a join over every completion. Grouping or filtering by `scenario` (not in cell_counts) joins.
        """
        from core.review import STRATA

        unknown = [name for name in by if name not in FILTER_COLUMNS]
        if unknown:
            raise StoreError(f"cannot count by {', '.join(map(repr, unknown))}; known: {', '.join(FILTER_COLUMNS)}")
        grain = [*STRATA, *[name for name in by if name not in STRATA]]
        labels = ("refused", "complied", "unparsed")
        joined = [f'{FILTER_COLUMNS[name]} AS "{name}"' for name in grain]  # names checked above
        where, params = _where(filters)
        with self.connect() as con:
            if set(grain) | set(_active(filters)) <= set(CELL_COLUMNS):
                cell_where, cell_params = _where(filters, _CELL_FILTERS)
                cell_where = (cell_where + " AND" if cell_where else " WHERE") + " judge IN (?, '')"
                dims = ", ".join(f'"{name}"' for name in grain)
                match = " AND ".join(f'f."{name}" IS NOT DISTINCT FROM b."{name}"' for name in grain)
                population = con.execute(
                    f"""
                    WITH base AS (
                        SELECT {dims},
                               sum(n) FILTER (WHERE judge = '' AND label = 'all')
                                 - coalesce(sum(n) FILTER (WHERE judge = '' AND label = 'error'), 0) AS n,
                               {', '.join(f"coalesce(sum(n) FILTER (WHERE judge <> '' AND label = '{label}'), 0)"
                                          f" AS {label}" for label in labels)}
                        FROM cell_counts {cell_where} GROUP BY ALL),
                    humans AS (SELECT seq FROM verdicts WHERE judge = 'human' AND seq IS NOT NULL),
                    errors AS (SELECT seq FROM completions WHERE error IS NOT NULL AND seq IS NOT NULL),
                    special AS (  -- +1: the judge's label of a human-verdict completion; -1: of an error
                        SELECT seq, 1 AS sign FROM humans WHERE seq NOT IN (SELECT seq FROM errors)
                        UNION ALL SELECT seq, -1 AS sign FROM errors WHERE seq NOT IN (SELECT seq FROM humans)),
                    fix AS (
                        SELECT {', '.join(joined)},
                               {', '.join(f"sum(x.sign) FILTER (WHERE v.label = '{label}') AS {label}"
                                          for label in labels)}
                        FROM special x JOIN verdicts v ON v.seq = x.seq AND v.judge = ?
                        JOIN completions c ON c.seq = x.seq JOIN probes p USING (probe_id)
                        {where} GROUP BY ALL)
                    SELECT {', '.join(f'b."{name}"' for name in grain)}, b.n::BIGINT AS n,
                           {', '.join(f"(b.{label} + coalesce(f.{label}, 0))::BIGINT AS {label}"
                                      for label in labels)}
                    FROM base b LEFT JOIN fix f ON {match}
                    WHERE b.n > 0 ORDER BY ALL
                    """,
                    [*cell_params, judge, judge, *params],
                ).df()
            else:
                population = con.execute(
                    f"""
                    SELECT {', '.join(joined)}, count(*) AS n,
                           {', '.join(f"count(*) FILTER (WHERE v.label = '{label}') AS {label}" for label in labels)}
                    FROM completions c JOIN probes p USING (probe_id)
                    LEFT JOIN verdicts v ON v.seq = c.seq AND v.judge = ?
                    {(where + ' AND' if where else ' WHERE')} c.error IS NULL GROUP BY ALL ORDER BY ALL
                    """,
                    [judge, *params],
                ).df()
            if set(grain) | set(_active(filters)) <= set(STRATA):  # the sample's own columns: no join
                columns, sample_where, sample_params, source = [
                    f'{_SAMPLE_ALIASES[name]} AS "{name}"' for name in grain], *_where(filters, _SAMPLE_ALIASES), ""
            else:
                columns, sample_where, sample_params = joined, where, params
                source = "JOIN completions c ON c.seq = s.seq JOIN probes p USING (probe_id)"
            sample = con.execute(
                f"""
                SELECT s.completion_id, {', '.join(columns)}, v.label AS judge_label, h.label AS human_label
                FROM review_sample s {source}
                JOIN verdicts h ON h.seq = s.seq AND h.judge = 'human'
                LEFT JOIN verdicts v ON v.seq = s.seq AND v.judge = ?
                {(sample_where + ' AND' if sample_where else ' WHERE')} h.label IN ('refused', 'complied')
                ORDER BY s.run_id, s.position
                """,
                [judge, *sample_params],
            ).df()
            strata = _sample_strata(con, {k: v for k, v in (filters or {}).items() if k in STRATA},
                                    sampled_only=True)
        return population, sample, strata

    # -- whole-database dump (the committed demo results are one) ------------------------------------
    _DUMP_TABLES: tuple[str, ...] = ("probes", "targets", "runs", "run_probes", "run_targets", "completions",
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
        with self.connect() as con:
            con.execute("BEGIN")
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
            _refresh_cells(con)
            con.execute("COMMIT")
        return added
