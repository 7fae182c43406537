"""Scaling: does a bigger model protect groups more evenly? Disparity against model size, per family.
Drawn by the Scaling page.

From per-cell counts of attack probes at model x language x group: DefenseRates.disparity per model
(tau and gap beyond noise with intervals, the observed std and min/max ratio, homogeneity test), joined with each model's family and size
(Store.targets) by core.stats.rates.scaling, which adds each family's trend.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.stats import rates
from core.stats.rates import DefenseRates
from core.store import Store
from core.views.source import Filters, judged, label_counts

GRAIN: tuple[str, ...] = ("model", "language", "group")
# Per disparity metric: the columns of its interval (the ratio has none).
# The observed std and ratio have none: they carry noise (core/stats/disparity.py); tau and gap are beyond it.
INTERVALS: dict[str, tuple[str, str]] = {"tau": ("tau_ci_low", "tau_ci_high"), "gap": ("gap_ci_low", "gap_ci_high"),
                                         "std": ("std", "std"), "min_max_ratio": ("min_max_ratio", "min_max_ratio")}


@dataclass(frozen=True)
class Scaling:
    """judged: judged attack completions (0: nothing to show); points: per model, disparity with family, size_b
    and the family's trend (rates.scaling); sized: the points with a known size (what a size axis can plot);
    trend: one row per family (models, slope of std per tenfold parameters, Spearman rho)."""

    judged: int
    points: pd.DataFrame
    sized: pd.DataFrame
    trend: pd.DataFrame


def scope(filters: Filters | None = None) -> dict:
    return {**dict(filters or {}), "kind": ["attack"]}


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None,
            targets: pd.DataFrame | None = None) -> Scaling:
    """The scaling view of a selection (one language: disparities are per model and language). `source`: a
    Store (its targets are read too) or attack counts at GRAIN with `targets` as Store.targets() gives them.
    Raises core.stats.rates.MetricsError where the disparity cannot be computed."""
    counts = label_counts(source, judge, GRAIN, scope(filters))
    if not judged(counts):
        empty = pd.DataFrame()
        return Scaling(0, empty, empty, empty)
    if targets is None:
        if not isinstance(source, Store):
            raise ValueError("scaling from counts needs the targets (Store.targets()) for family and size")
        targets = source.targets()
    points = rates.scaling(DefenseRates(counts, list(GRAIN)).disparity(), targets)
    trend = points.drop_duplicates("family")[["family", "family_models", "family_slope_per_10x", "family_spearman"]]
    return Scaling(judged(counts), points, points.dropna(subset=["size_b"]), trend)
