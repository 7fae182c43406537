"""Scaling: does a bigger model protect groups more evenly? Disparity against model size, per family."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.views.scaling import INTERVALS
from core.stats.rates import MetricsError
from ui.cached import scaling
from ui.common import dataframe, escape_markdown, language_name
from ui.page import start
from ui.stat_figures import error_bar_scatter

METRICS = {"tau": "Spread of the true group DRs beyond noise (tau)",
           "gap": "Selective-safety gap beyond noise (true best minus worst group DR)",
           "std": "Standard deviation of observed group DRs (the paper's disparity metric, noise included)",
           "min_max_ratio": "Worst / best observed group DR (1 = equal)"}
ctx = start("Scaling: disparity against model size", "scaling", language=True)
judge, language = ctx.judge, ctx.language
metric = st.selectbox("Disparity", list(METRICS), format_func=METRICS.get, key="scaling_metric")

try:
    view = scaling(ctx.path, ctx.mtime, judge, {"language": [language]})
except MetricsError as exc:
    st.error(escape_markdown(exc))
    st.stop()
if not view.judged:
    st.info(f"No judged attack completions in {escape_markdown(language_name(language))} for judge {escape_markdown(judge)}.")
    st.stop()
points, sized = view.points, view.sized
low, high = INTERVALS[metric]

trends = sized.groupby("family")["size_b"].nunique() if len(sized) else pd.Series(dtype=int)
if sized.empty:
    st.info("No model in this selection has a known size. Sizes come from the target settings of a run, or "
            "from the paper for imported MiJaBench-Align models.")
elif not (trends >= 2).any():
    st.info("A trend against model size needs at least two sizes of one family (for example a 1B and an 8B model "
            "of the same family); this selection holds "
            + escape_markdown(", ".join(f"{family}: one size" for family in trends.index)) + ". The figures of each "
            "model are below; audit another size of a family to see how its disparity changes with size.")
else:
    st.plotly_chart(error_bar_scatter(sized, "size_b", metric, "family", low, high, label="model", log_x=True,
                                      lines=True, x_title="parameters (billions, log scale)", y_title=METRICS[metric],
                                      title=f"{METRICS[metric]} by model size ({language_name(language)})"),
                    width="stretch")
    st.caption("Error bars: 95% intervals of tau (Q-profile) and of the gap beyond noise (simultaneous over the "
               "pairs of groups). The observed standard deviation and ratio carry sampling noise (equal groups show "
               "a spread too: compare it with the standard deviation noise alone gives, below), so they have no "
               "interval here.")

if (trends >= 2).any():
    st.subheader("Per family")
    dataframe(view.trend, hide_index=True, width="stretch", column_config={
        "family_models": "Models",
        "family_slope_per_10x": st.column_config.NumberColumn("Change of the standard deviation per 10x parameters",
                                                              format="%+.3f"),
        "family_spearman": st.column_config.NumberColumn("Spearman rho (size, standard deviation)", format="%.2f")})

st.subheader("Per model")
dataframe(points[["model", "family", "size_b", "n", "dr", "tau", "tau_ci_low", "tau_ci_high", "std", "noise_std",
                  "observed_gap", "noise_gap", "gap", "gap_ci_low", "gap_ci_high", "min_max_ratio", "worst", "best",
                  "q_p_adjusted", "heterogeneous"]],
          hide_index=True, width="stretch", column_config={
              "worst": "Least protected group", "best": "Most protected group",
              "gap_ci_low": "Gap beyond noise, 95% CI low", "gap_ci_high": "Gap beyond noise, 95% CI high",
              "tau_ci_low": "Tau, 95% CI low", "tau_ci_high": "Tau, 95% CI high"})
