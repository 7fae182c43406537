"""Reproduction: the user's deviations next to the MiJaBench paper's heatmaps, same models and groups.
Drawn by the Reproduction page.

From per-cell counts of attack probes at model x language x group: each cell's deviation from its model's mean
(DefenseRates.deviations), which core.files.reference compares with the paper's figures once the user has said which
of their models is which of the paper's (`Reproduction.compare`).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from core.files.reference import compare_with_paper, reproduction_summary
from core.stats.rates import DefenseRates
from core.store import Store
from core.views.source import Filters, label_counts

GRAIN: tuple[str, ...] = ("model", "language", "group")


@dataclass(frozen=True)
class PaperComparison:
    """cells: one row per (model, group) in both (core.files.reference.compare_with_paper); summary: how close
    (core.files.reference.reproduction_summary: cells, models, mean and max |difference|, share in the CI)."""

    cells: pd.DataFrame
    summary: dict


@dataclass(frozen=True)
class Reproduction:
    """language: the one compared; deviations: per model x group, DR and deviation from the model's mean with
    CIs and significance; models: the stored models there (to map to the paper's)."""

    language: str
    deviations: pd.DataFrame
    models: list[str]

    def compare(self, mapping: Mapping[str, str]) -> PaperComparison:
        """The comparison with the paper for `mapping` (stored model -> paper model); empty without one."""
        cells = compare_with_paper(self.deviations, self.language, dict(mapping)) if mapping else pd.DataFrame()
        return PaperComparison(cells, reproduction_summary(cells))


def scope(language: str, filters: Filters | None = None) -> dict:
    return {**dict(filters or {}), "kind": ["attack"], "language": [language]}


def compute(source: Store | pd.DataFrame, language: str, judge: str = "refusal",
            filters: Filters | None = None) -> Reproduction:
    """The reproduction view for one language; `source` a Store or that language's attack counts at GRAIN."""
    counts = label_counts(source, judge, GRAIN, scope(language, filters))
    deviations = DefenseRates(counts, list(GRAIN)).deviations(["model", "language"]) if len(counts) else \
        pd.DataFrame(columns=list(GRAIN))
    return Reproduction(language, deviations, sorted(deviations["model"].unique()))
