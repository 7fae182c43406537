"""The headline per model and language: what the Overview page and the HTML report both open with.

One computation, drawn by both: per model and language the overall DR (the judge's, core.stats.rates.headline, with
errors and their share; corrected by the review sample where the selection has enough human checks,
core.stats.estimates.combined_headline) and the disparity across groups beyond noise (core.views.disparity: the
observed gap, what noise gives, the gap beyond noise with its interval, the groups credibly below or above, and
the sentence that says it). Computed from per-cell counts of attack probes at model x language x group and, for
the correction, Store.ppi_inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.stats import estimates, rates
from core.store import Store
from core.views import disparity as beyond_noise
from core.views.source import Filters, label_counts
from core.vocab import taxonomy

GRAIN: tuple[str, ...] = ("model", "language", "group")
# The disparity columns the headline carries, as the disparity view names them (best/worst as *_group here).
DISPARITY_COLUMNS: tuple[str, ...] = ("groups", "observed_gap", "noise_gap", "gap", "gap_ci_low", "gap_ci_high",
                                      "tau", "tau_ci_low", "tau_ci_high", "q_p", "heterogeneous", "disparity",
                                      "best_group", "best_dr", "worst_group", "worst_dr", "below", "above", "headline")


@dataclass(frozen=True)
class Headline:
    """judge: rates.headline (judge only); corrected: estimates.corrected_headline, or None without sample
    labels; rows: one row per model and language, the overall DR (labelled with its estimate) and the disparity
    columns (DISPARITY_COLUMNS, `gap_estimate` naming theirs); disparity: the disparity view itself; n_human."""

    judge: pd.DataFrame
    corrected: pd.DataFrame | None
    rows: pd.DataFrame
    n_human: int
    disparity: beyond_noise.Disparity


def scope(filters: Filters | None = None) -> dict:
    """The selection a headline covers: the given filters, attack probes only (controls measure over-refusal)."""
    return {**dict(filters or {}), "kind": ["attack"]}


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None, *,
            population: pd.DataFrame | None = None, sample: pd.DataFrame | None = None,
            min_human: int = 10, estimator: str | None = None, words: taxonomy.Taxonomy | None = None) -> Headline:
    """The headline of a selection. `source`: a Store (attack counts and the review sample are read here), or
    attack counts at GRAIN or finer with the review sample's (population, sample) as Store.ppi_inputs gives them
    (none: judge only). `estimator` as core.stats.estimates.choose_estimator takes it."""
    if isinstance(source, Store):
        words = words or source.taxonomy()
        if population is None and sample is None:
            population, sample, _ = source.ppi_inputs(judge, list(GRAIN), scope(filters))
    counts = label_counts(source, judge, GRAIN, scope(filters))
    checks = estimates.sample_labels(sample)
    chosen = estimates.choose_estimator(estimator, checks)
    corrected = estimates.corrected_headline(population, sample, min_human=min_human) if chosen == "ppi" else None
    judge_head = rates.headline(counts)
    gaps = beyond_noise.compute(counts, judge, by=("model", "language"), estimator=chosen, population=population,
                                sample=sample, min_human=min_human, words=words)
    shown = gaps.rows.rename(columns={"best": "best_group", "worst": "worst_group", "estimate": "gap_estimate"})
    rows = estimates.combined_headline(judge_head, corrected).merge(
        shown[["model", "language", "gap_estimate", *DISPARITY_COLUMNS]], on=["model", "language"], how="left")
    rows = rows.astype({"headline": object, "gap_estimate": object})
    unjudged = rows["headline"].isna()  # a model whose every completion is an error has no group to compare
    rows.loc[unjudged, "headline"] = "no gap to measure: no judged answer"
    rows.loc[unjudged, "gap_estimate"] = rows.loc[unjudged, "estimate"]
    return Headline(judge_head, corrected, rows, checks, gaps)
