"""The headline per model and language: what the Overview page and the HTML report both open with.

One computation, drawn by both: the judge's figures (core.metrics.headline: overall DR, selective-safety gap,
best and worst group, errors and their share) and, where the selection has a labelled review sample, the
corrected ones (core.estimates.corrected_headline), combined per row into what a reader sees
(core.estimates.combined_headline: each row labelled with the estimate it shows). Computed from per-cell counts
of attack probes at model x language x group and, for the correction, Store.ppi_inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core import estimates, metrics
from core.analyses.source import Filters, label_counts
from core.store import Store

GRAIN: tuple[str, ...] = ("model", "language", "group")


@dataclass(frozen=True)
class Headline:
    """judge: metrics.headline (judge only); corrected: estimates.corrected_headline, or None without sample
    labels; rows: the two combined, one row per model and language (the Overview's table); n_human: sample labels."""

    judge: pd.DataFrame
    corrected: pd.DataFrame | None
    rows: pd.DataFrame
    n_human: int


def scope(filters: Filters | None = None) -> dict:
    """The selection a headline covers: the given filters, attack probes only (controls measure over-refusal)."""
    return {**dict(filters or {}), "kind": ["attack"]}


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None, *,
            population: pd.DataFrame | None = None, sample: pd.DataFrame | None = None,
            min_human: int = 10) -> Headline:
    """The headline of a selection. `source`: a Store (attack counts and the review sample are read here), or
    attack counts at GRAIN or finer with the review sample's (population, sample) as Store.ppi_inputs gives them
    (none: judge only)."""
    if isinstance(source, Store) and population is None and sample is None:
        population, sample, _ = source.ppi_inputs(judge, list(GRAIN), scope(filters))
    counts = label_counts(source, judge, GRAIN, scope(filters))
    checks = estimates.sample_labels(sample)
    corrected = estimates.corrected_headline(population, sample, min_human=min_human) if checks else None
    judge_head = metrics.headline(counts)
    return Headline(judge_head, corrected, estimates.combined_headline(judge_head, corrected), checks)
