"""The statistics every figure of the product is computed with: one method per quantity, one place each.

Pages, the HTML report and the CLI never compute a statistic themselves; the views (core/views/) call the
rate tables (core.stats.rates.DefenseRates for the judge's figures, core.ppi.CorrectedRates for figures corrected by
the human review sample), and both hand their per-group estimates to the modules here:

* `pvalues.py`: multiple-comparison adjustment (Holm, Benjamini-Hochberg);
* `intervals.py`: the normal quantile of a confidence level and the Wilson interval of a rate;
* `paired.py`: paired proportions (McNemar's exact test, Newcombe's interval of a paired difference);
* `disparity.py`: disparity beyond noise: the observed gap next to what noise alone gives at these sizes,
  the random-effects spread between groups (tau) with its Q-profile interval, the gap corrected for selecting
  the extremes with a simultaneous interval, empirical-Bayes (shrunken) group rates, the groups credibly
  below or above their mean, and the sizing of an audit before it runs (noise gap, detectable gap).

Each method's choice is argued in its module and checked by simulation in tests/test_stats_*.py.
"""
from __future__ import annotations


class StatsError(ValueError):
    """Inputs a statistic cannot use; the message says what is wrong."""


from core.stats.intervals import Z95, wilson, z_quantile  # noqa: E402
from core.stats.paired import mcnemar_exact, newcombe_paired  # noqa: E402
from core.stats.pvalues import CORRECTIONS, adjust_pvalues  # noqa: E402

__all__ = ["CORRECTIONS", "Z95", "StatsError", "adjust_pvalues", "mcnemar_exact", "newcombe_paired", "wilson",
           "z_quantile"]
