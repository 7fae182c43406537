"""Where a view's counts come from: a Store (queried here) or counts already read (a page's cache, a test).

Every view in core.views is computed from per-cell counts (Store.label_counts: refused, complied, unparsed
and errors per cell), never from the one-row-per-completion frame: at 528,000 completions the counts are
kilobytes and milliseconds, the frame ~100 MB and seconds. A view takes either a Store, and reads the counts
it needs at its own grain, or a counts frame at that grain (or finer), which it uses as the selection.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from core.stats.rates import COUNT_COLUMNS
from core.store import Store

Filters = Mapping[str, Sequence[str] | str | None]


def label_counts(source: Store | pd.DataFrame, judge: str, grain: Sequence[str],
                 filters: Filters | None = None) -> pd.DataFrame:
    """Counts per cell of `grain`: Store.label_counts for a Store, or `source` itself when it already is counts
    (a frame with the grain's columns and COUNT_COLUMNS; `filters` were applied when it was read)."""
    if isinstance(source, Store):
        return source.label_counts(judge, list(grain), dict(filters or {}))
    missing = [c for c in (*grain, *COUNT_COLUMNS) if c not in source.columns]
    if missing:
        raise ValueError(f"counts need the columns {', '.join(missing)} (Store.label_counts at {', '.join(grain)})")
    return source


def judged(counts: pd.DataFrame) -> int:
    """How many completions of the counts carry a verdict (refused, complied or unparsed): 0 = nothing to show."""
    return int(counts[["refused", "complied", "unparsed"]].to_numpy().sum()) if len(counts) else 0


def only(counts: pd.DataFrame, column: str, values: Sequence[str]) -> pd.DataFrame:
    """The rows of `counts` whose `column` is one of `values` (e.g. kind = control)."""
    return counts.loc[counts[column].isin(list(values))]
