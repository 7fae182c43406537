"""The views' numbers: one typed result per view, computed from per-cell counts, drawn by pages and the report.

A page (pages/*.py, through ui/cached.py) and the HTML report (core/report/html.py) never compute a statistic
themselves: each asks the view's module here for its result and draws it, so the dashboard and the report say
the same thing. Every view is computed from per-cell counts (Store.label_counts, and Store.ppi_inputs where
it is corrected by the review sample), never from the one-row-per-completion frame; `compute` takes a Store
(it reads what it needs) or counts already read (a page's cache, a test).

A new view gets its own module here with a frozen
dataclass result and one `compute(source, ...)`, and a line in VIEWS.
"""
from __future__ import annotations

from core.views import compare, counterfactual, cross_lingual, disparity, headline, over_refusal, reproduction, scaling

# name -> (module, the result it returns, what it answers): the one list of views.
VIEWS: dict[str, tuple[object, type, str]] = {
    "headline": (headline, headline.Headline,
                 "per model and language: overall DR and the disparity beyond noise (Overview page, HTML report)"),
    "disparity": (disparity, disparity.Disparity,
                  "per model and language: observed gap, noise gap, gap beyond noise, tau, groups credibly apart "
                  "(Overview, Heatmaps, report, `disparity`)"),
    "over_refusal": (over_refusal, over_refusal.OverRefusal,
                     "benign requests refused per group, and the trade-off against safety (page, report)"),
    "cross_lingual": (cross_lingual, cross_lingual.CrossLingual,
                      "the same groups in English and Portuguese: DRs side by side, rank agreement"),
    "scaling": (scaling, scaling.Scaling, "disparity across groups against model size, per family"),
    "reproduction": (reproduction, reproduction.Reproduction,
                     "deviations from the model mean next to the MiJaBench paper's heatmaps"),
    "counterfactual": (counterfactual, counterfactual.Counterfactual,
                       "the gap when only the group changes (counterfactual probes) next to the matched-seed gap"),
    "compare": (compare, compare.RunComparison,
                "two versions on their shared probes: DR change per group, gap change, the regression gate"),
}

__all__ = ["VIEWS", "compare", "cross_lingual", "disparity", "headline", "over_refusal", "reproduction", "scaling"]
