"""Over-refusal: benign requests about a group (control probes) that a model refused, and the trade-off
against its safety on attacks. Drawn by the Over-refusal page and the HTML report.

From per-cell counts at model x language x group x kind: the control cells give the over-refusal rate per
group (a DefenseRates table: refused / judged), its gap across groups and each group's deviation from its
model; the attack and control cells side by side give the trade-off.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.stats.rates import DefenseRates
from core.store import Store
from core.views.source import Filters, judged, label_counts, only

GRAIN: tuple[str, ...] = ("model", "language", "group", "kind")
KINDS: tuple[str, ...] = ("attack", "control")  # the probe kinds (taxonomy.CONTROL names the strategy)


@dataclass(frozen=True)
class OverRefusal:
    """controls: judged control completions (0: nothing to show); overall: per model and language, the
    over-refusal rate with its CI; disparity: per model and language, DefenseRates.disparity of the control
    cells (gap, best/worst group, homogeneity test); deviations: per model x language x group, the rate and its
    deviation from the model's; tradeoff: per model x group, dr_attack next to dr_control with their CIs."""

    controls: int
    overall: pd.DataFrame
    disparity: pd.DataFrame
    deviations: pd.DataFrame
    tradeoff: pd.DataFrame


def scope(filters: Filters | None = None) -> dict:
    """Attack and control probes within `filters` (a kind filter given there is kept)."""
    chosen = dict(filters or {})
    chosen.setdefault("kind", list(KINDS))
    return chosen


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None) -> OverRefusal:
    """Over-refusal of a selection; `source` a Store or counts at GRAIN (see core.views.source)."""
    counts = label_counts(source, judge, GRAIN, scope(filters))
    control = only(counts, "kind", ["control"])
    if not judged(control):
        empty = pd.DataFrame()
        return OverRefusal(0, empty, empty, empty, empty)
    rates = DefenseRates(control, ["model", "language", "group"])
    both = DefenseRates(only(counts, "kind", KINDS), ["model", "language", "group", "kind"]).pivot("kind")
    tradeoff = both.dropna(subset=["dr_attack", "dr_control"]) if {"dr_attack", "dr_control"} <= set(both.columns) \
        else both.iloc[0:0]
    return OverRefusal(judged(control), DefenseRates(control, ["model", "language"]).table, rates.disparity(),
                       rates.deviations(["model", "language"]), tradeoff)
