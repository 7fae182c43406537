"""Cross-lingual: does a model protect the same groups in English and Portuguese? Drawn by the Cross-lingual page.

From per-cell counts of attack probes at model x language x group: the DRs of the groups both languages
share side by side, how alike the languages rank them (Spearman, Kendall), and each cell's deviation from its
model's mean per language.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.stats.rates import DefenseRates
from core.store import Store
from core.views.source import Filters, label_counts
from core.vocab import taxonomy

GRAIN: tuple[str, ...] = ("model", "language", "group")
LANGUAGES: tuple[str, str] = ("en", "pt")


@dataclass(frozen=True)
class CrossLingual:
    """languages: those the selection has attack counts in (the view needs both of LANGUAGES); shared: the
    groups both languages have; wide: per model x group judged in both, dr_en / dr_pt with CIs; agreement: per
    model, rank correlations of the group DRs across languages; deviations: per model x language x group."""

    languages: list[str]
    shared: list[str]
    wide: pd.DataFrame
    agreement: pd.DataFrame
    deviations: pd.DataFrame

    @property
    def comparable(self) -> bool:
        """Whether both languages are there to compare."""
        return set(LANGUAGES) <= set(self.languages)


def scope(filters: Filters | None = None) -> dict:
    return {**dict(filters or {}), "kind": ["attack"]}


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None) -> CrossLingual:
    """The cross-lingual view of a selection; `source` a Store or attack counts at GRAIN."""
    counts = label_counts(source, judge, GRAIN, scope(filters))
    languages = sorted(set(counts["language"]))
    by_language = (source.taxonomy() if isinstance(source, Store) else taxonomy.DEFAULT).groups_by_language
    shared = sorted(set(by_language.get("en", ())) & set(by_language.get("pt", ())))
    if not set(LANGUAGES) <= set(languages):
        empty = pd.DataFrame()
        return CrossLingual(languages, shared, empty, empty, empty)
    rates = DefenseRates(counts, list(GRAIN))
    wide = rates.pivot("language").dropna(subset=["dr_en", "dr_pt"])
    return CrossLingual(languages, shared, wide, rates.rank_agreement(across="language", over="group"),
                        rates.deviations(["model", "language"]))
