"""cell_counts: label counts per cell, kept in the transaction of every write (see _refresh_cells)."""
from __future__ import annotations

import duckdb
import pandas as pd

from core import dimensions
from core.store.rows import FROM_ROWS, select

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
_QUOTED = ", ".join(f'"{name}"' for name in CELL_COLUMNS)
_CELL_REFRESH = f"""
    WITH scoped AS (SELECT c.seq, {select(CELL_COLUMNS)}, c.error {FROM_ROWS} {{scope}}),
    humans AS (SELECT seq, label FROM verdicts WHERE judge = 'human' AND seq IS NOT NULL),
    labels AS (
        SELECT v.seq, v.judge, v.label FROM verdicts v
        WHERE v.judge <> 'human' AND NOT EXISTS (SELECT 1 FROM humans h WHERE h.seq = v.seq)
        UNION ALL SELECT seq, 'human', label FROM humans)
    INSERT INTO cell_counts (judge, {_QUOTED}, label, n)
    SELECT l.judge, {", ".join(f's."{name}"' for name in CELL_COLUMNS)}, l.label, count(*)
    FROM scoped s JOIN labels l USING (seq) GROUP BY ALL
    UNION ALL
    SELECT '', {_QUOTED}, 'all', count(*) FROM scoped GROUP BY ALL
    UNION ALL
    SELECT '', {_QUOTED}, 'error', count(*) FROM scoped WHERE error IS NOT NULL GROUP BY ALL
"""


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
