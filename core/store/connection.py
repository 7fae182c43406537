"""The connection room: how a unit of work opens the file (connect), and how every write runs (_writing).

Connections are opened per unit of work and closed at once, because DuckDB lets only one process hold
a file for writing: a long run then leaves gaps in which the dashboard can read. A process that still
finds the file locked after `lock_timeout` seconds gets a StoreLocked error with a plain message.
"Opening" attaches the file to one in-memory DuckDB kept for the whole process (_Attachments), which takes
the same file lock as duckdb.connect() at a tenth of its cost.
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd

from core.store.cells import _refresh_cells
from core.store.errors import StoreError, StoreLocked

# What a write refused on a read-only store says, unless the write says more precisely what cannot be done.
_UNCHANGED = "it cannot be changed here, and nothing was written"

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


def _first(cursor: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a result, or None. (fetchone() would leave the result open in DuckDB 2.)"""
    rows = cursor.fetchall()
    return rows[0] if rows else None


class Connection:
    """Store's way in: `connect()` for every unit of work that reads, `_writing()` for every one that writes."""

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
                if self.readonly and "read-only" in str(exc):  # SQL of a caller's own, past _writable
                    raise self._read_only(_UNCHANGED) from None
                raise
            except RuntimeError as exc:
                _raise_interrupt(exc)
                raise
        finally:
            if con is not None:
                with _deferred_interrupts():
                    _ATTACHMENTS.release(self.path, con)

    @contextlib.contextmanager
    def _writing(self, what: str = _UNCHANGED, recount_all: bool = False
                 ) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[pd.DataFrame]]]:
        """Every write of the store: one transaction that lands whole or not at all, and keeps cell_counts right.

        Refuses a read-only store first (`what`: what cannot be done). Yields the connection and a list to which
        the write appends frames of what it changed: target_id and probe_id of the answers whose completions or
        verdicts it changed, or target_id alone where every answer of the target may count anew (a run's status);
        their cell_counts are recounted inside the same transaction (cells._refresh_cells; everything with
        `recount_all`), so the counts can never disagree with the rows, whichever write changed them.
        """
        self._writable(what)
        with self.connect() as con:
            con.execute("BEGIN")
            touched: list[pd.DataFrame] = []
            try:
                yield con, touched
                if recount_all:
                    _refresh_cells(con)
                elif touched:
                    _refresh_cells(con, pd.concat(touched))
                con.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(duckdb.Error, RuntimeError):  # the error that got here is what counts
                    con.execute("ROLLBACK")
                raise

    def _writable(self, what: str = _UNCHANGED) -> None:
        """The read-only check: a store opened read-only (a demo session) refuses every change."""
        if self.readonly:
            raise self._read_only(what)

    def _read_only(self, what: str) -> StoreError:
        return StoreError(f"{self.path} is open read-only (a demo session): {what}")
