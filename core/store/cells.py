"""cell_counts: label counts per cell, kept in the transaction of every write (see _refresh_cells)."""
from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pandas as pd

from core.store.rows import _ANSWER_RANK, FROM_ROWS, _chosen_runs, column, select
from core.vocab import dimensions

# The cells that cell_counts is kept at (core/vocab/dimensions.py says which and why); a count by or filtered on
# another dimension joins the tables.
CELL_COLUMNS: tuple[str, ...] = dimensions.cell_dimensions()

_CELL_FILTERS: dict[str, str] = {name: f'"{name}"' for name in CELL_COLUMNS}

# The cell dimensions a probe fixes (all but the completion's own run and model): a probe's answers, in every run,
# fall in one cell of these, so recounting a cell recounts every answer of its probes.
_PROBE_CELL: tuple[str, ...] = tuple(name for name in CELL_COLUMNS if name not in ("model", "run_id"))

# cell_counts decomposes the effective label so every judge's counts are a sum of rows:
#   judge J, label L: completions whose J verdict is L and that have no human verdict;
#   judge 'human', label L: completions with a human verdict L (they count as L for every judge);
#   judge '', label 'error' / 'all': completions with an error / every completion (so cells with no verdict
#   still appear, as they do in the joined query).
# `current` splits each cell by whether its completions are the current answer of their (target, probe): the
# answer a view shows when no runs are chosen (rows.py, _ANSWER_RANK: the latest completed run's, else the
# latest run's). It depends on every run of the target, so a recount covers every run: of a whole target, or
# of the cells (target x _PROBE_CELL) a write's probes fall in, whose window partitions are then whole.
# Recomputed inside the write's transaction; {scope} restricts the completions (a WHERE or a JOIN clause).
_QUOTED = ", ".join(f'"{name}"' for name in CELL_COLUMNS)
_CELL_REFRESH = f"""
    WITH scoped AS (SELECT c.seq, {select(CELL_COLUMNS)}, c.error, {_ANSWER_RANK} = 1 AS current
                    {FROM_ROWS} LEFT JOIN runs r ON r.run_id = c.run_id {{scope}}),
    verdicts_of AS (SELECT v.seq, v.judge, v.label FROM verdicts v WHERE v.seq IN (SELECT seq FROM scoped)),
    humans AS (SELECT seq, label FROM verdicts_of WHERE judge = 'human'),
    labels AS (
        SELECT v.seq, v.judge, v.label FROM verdicts_of v
        WHERE v.judge <> 'human' AND NOT EXISTS (SELECT 1 FROM humans h WHERE h.seq = v.seq)
        UNION ALL SELECT seq, 'human', label FROM humans)
    INSERT INTO cell_counts (judge, {_QUOTED}, current, label, n)
    SELECT l.judge, {", ".join(f's."{name}"' for name in CELL_COLUMNS)}, s.current, l.label, count(*)
    FROM scoped s JOIN labels l USING (seq) GROUP BY ALL
    UNION ALL
    SELECT '', {_QUOTED}, current, 'all', count(*) FROM scoped GROUP BY ALL
    UNION ALL
    SELECT '', {_QUOTED}, current, 'error', count(*) FROM scoped WHERE error IS NOT NULL GROUP BY ALL
"""
# The cells of a write's (target_id, probe_id) pairs (registered as cell_probes; the cells as cell_keys), the
# cell_counts rows of those cells, and every (target, probe) those cells hold (registered as cell_answers: the
# completions to recount are found by these two keys, which prunes the scan, rather than by joining every answer
# of the target with its probe first).
_CELL_KEYS = f"SELECT DISTINCT k.target_id AS model, {select(_PROBE_CELL)} FROM cell_probes k JOIN probes p USING (probe_id)"
_KEPT_IN_KEYS = " AND ".join(["cell_counts.model = k.model",
                              *(f'cell_counts."{name}" IS NOT DISTINCT FROM k."{name}"' for name in _PROBE_CELL)])
_CELL_ANSWERS = "SELECT DISTINCT k.model AS target_id, p.probe_id FROM cell_keys k JOIN probes p ON " + " AND ".join(
    f'k."{name}" IS NOT DISTINCT FROM {column(name)}' for name in _PROBE_CELL)
_ROWS_IN_KEYS = "JOIN cell_answers a ON a.target_id = c.target_id AND a.probe_id = c.probe_id"


def _refresh_cells(con: duckdb.DuckDBPyConnection, scope: pd.DataFrame | None = None) -> None:
    """Recount cell_counts for what a write changed (everything when `scope` is None).

    `scope` holds target_id and, where the write knows them, probe_id: the answers it added, judged or
    retried. A row with a probe recounts the cells of that probe for its target (every run: which answer of a
    probe is current depends on all of them), a few hundred rows for a batch; a row without one (a run's status
    changed, so every answer of its targets may rank anew) recounts all runs of the target. Called inside the
    transaction of each write that changes a completion, a verdict or a run's status, so the counts can never
    disagree with the rows, rather than bookkeeping for each kind of change.
    """
    if scope is None:
        con.execute("DELETE FROM cell_counts")
        con.execute(_CELL_REFRESH.format(scope=""))
        return
    scope = scope.assign(probe_id=scope["probe_id"] if "probe_id" in scope.columns else None)
    whole = scope.loc[scope["probe_id"].isna(), ["target_id"]].drop_duplicates()
    if len(whole):
        con.register("cell_scope", whole)
        con.execute("DELETE FROM cell_counts USING cell_scope s WHERE cell_counts.model = s.target_id")
        con.execute(_CELL_REFRESH.format(scope="WHERE c.target_id IN (SELECT target_id FROM cell_scope)"))
        con.unregister("cell_scope")
    keyed = scope.loc[scope["probe_id"].notna() & ~scope["target_id"].isin(whole["target_id"]),
                      ["target_id", "probe_id"]].drop_duplicates()
    if len(keyed):
        con.register("cell_probes", keyed)
        keys = con.execute(_CELL_KEYS).df()
        con.unregister("cell_probes")
        con.register("cell_keys", keys)
        con.execute(f"DELETE FROM cell_counts USING cell_keys k WHERE {_KEPT_IN_KEYS}")
        answers = con.execute(_CELL_ANSWERS).df()
        con.unregister("cell_keys")
        con.register("cell_answers", answers)
        con.execute(_CELL_REFRESH.format(scope=_ROWS_IN_KEYS))
        con.unregister("cell_answers")


def _cell_selection(con: duckdb.DuckDBPyConnection,
                    filters: dict[str, Sequence[str] | str | None] | None) -> str | None:
    """The condition on cell_counts that keeps one answer per (target, probe) of a selection (its other filters
    go in _where), or None where the kept counts cannot say it and the query must join the rows (rows._answers).

    No runs chosen: the current answers, kept per cell. Chosen runs that share no target: every row of those
    runs (one answer per probe each). Chosen runs of which two answered for one target: which answer of a probe
    is the latest among just those runs is not kept, so the rows are joined.
    """
    runs = _chosen_runs(filters)
    if not runs:
        return "current"
    shared = con.execute(
        "SELECT count(*) FROM (SELECT model FROM cell_counts WHERE judge = '' AND label = 'all' AND run_id IN "
        f"({', '.join('?' for _ in runs)}) GROUP BY model HAVING count(DISTINCT run_id) > 1)", runs).fetchall()[0][0]
    return None if shared else "true"
