"""Store reads for pages, cached per database version (the file's modification time is in every key).

The judged frame of a large store (528,000 completions) takes seconds to load and is large to copy, so
pages ask for the small table they draw instead: DuckDB counts labels per cell (Store.label_counts), and
core.metrics computes the Defense Rate table from those counts once per (database version, judge,
filters, grouping) and serves it from the cache on every later rerun. A write
(a finished batch, a human verdict) changes the file's modification time, so no view shows stale data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

from core.metrics import CELL_GRAIN, DefenseRates
from core.store import Store

# The mean a cell deviates from: its model's, within one language (group sets differ by language).
DEVIATION_BASELINE: tuple[str, ...] = ("model", "language")


def _key(filters: Mapping[str, Sequence[str]]) -> tuple:
    """Filters as a hashable, order-independent cache key."""
    return tuple(sorted((name, tuple(values)) for name, values in filters.items() if values))


@st.cache_resource(show_spinner="Loading results…", max_entries=4)
def _frame(path: str, mtime: float, judge: str, filters: tuple) -> pd.DataFrame:
    return Store(path, readonly=True).judged(judge, dict(filters))


def frame(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Store.judged() held once per server, not copied per call (st.cache_data would pickle ~100 MB at
    528,000 completions on every use): callers must only read it."""
    return _frame(path, mtime, judge, _key(filters))


@st.cache_data(show_spinner="Counting verdicts…", max_entries=64)
def _counts(path: str, mtime: float, judge: str, filters: tuple, by: tuple[str, ...]) -> pd.DataFrame:
    return Store(path, readonly=True).label_counts(judge, list(by), dict(filters))


def counts(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]], by: Sequence[str]) -> pd.DataFrame:
    """Store.label_counts(): refused, complied, unparsed and errors per cell of `by`, counted by DuckDB."""
    return _counts(path, mtime, judge, _key(filters), tuple(by))


@st.cache_data(show_spinner="Computing Defense Rates…", max_entries=64)
def _rates(path: str, mtime: float, judge: str, filters: tuple, by: tuple[str, ...], deviations: bool) -> pd.DataFrame:
    # Counted by DuckDB (kilobytes), never the 528,000-row judged frame (see Store.label_counts), at one
    # fine grain per filter set, so every table of a page comes from one query; DefenseRates sums up to `by`.
    grain = CELL_GRAIN if set(by) <= set(CELL_GRAIN) else tuple(by)
    table = DefenseRates(_counts(path, mtime, judge, filters, grain), list(by))
    if deviations:
        return table.deviations([c for c in DEVIATION_BASELINE if c in by])
    return table.table


def rates(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]], by: Sequence[str],
          deviations: bool = False) -> pd.DataFrame:
    """DefenseRates(judged frame, by).table (n, dr, ci_low, ci_high...), or with each cell's deviation from its
    model's mean per language (deviation, dev_ci_low, dev_ci_high, significant) when `deviations`."""
    return _rates(path, mtime, judge, _key(filters), tuple(by), deviations)


@st.cache_data(show_spinner=False, max_entries=8)
def summary(path: str, mtime: float) -> dict:
    """Store.summary() (models, languages, counts, judges)."""
    return Store(path, readonly=True).summary()


@st.cache_data(show_spinner=False, max_entries=8)
def runs(path: str, mtime: float) -> pd.DataFrame:
    """Store.runs(): every run with planned and stored counts, newest first."""
    return Store(path, readonly=True).runs()


@st.cache_data(show_spinner=False, max_entries=8)
def run_targets(path: str, mtime: float) -> pd.DataFrame:
    """Store.run_target_counts(): per run and target, completions, errors (and their share) and pending probes."""
    return Store(path, readonly=True).run_target_counts()


@st.cache_data(show_spinner="Finding completions…", max_entries=32)
def _completion_page(path: str, mtime: float, judge: str, filters: tuple, verdicts: tuple, limit: int,
                     offset: int) -> tuple[pd.DataFrame, int]:
    return Store(path, readonly=True).completion_page(judge, dict(filters), list(verdicts), limit, offset)


def completion_page(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]],
                    verdicts: Sequence[str], limit: int, offset: int) -> tuple[pd.DataFrame, int]:
    """Store.completion_page(): one page of matching completions (previews, not full texts) and the total."""
    return _completion_page(path, mtime, judge, _key(filters), tuple(verdicts), int(limit), int(offset))
