"""Scaling: does a bigger model protect groups more evenly? Disparity against model size, per family."""
from __future__ import annotations

import streamlit as st

from core.metrics import DefenseRates, MetricsError, scaling
from ui.stat_figures import error_bar_scatter, judged, stats_page, targets

METRICS = {"std": "Standard deviation of group DRs (the paper's disparity metric)",
           "gap": "Selective-safety gap (best minus worst group DR)",
           "min_max_ratio": "Worst / best group DR (1 = equal)"}
path, mtime, judge, language = stats_page("Scaling: disparity against model size", "scaling")
metric = st.selectbox("Disparity", list(METRICS), format_func=METRICS.get, key="scaling_metric")

frame = judged(path, mtime, judge, kind=["attack"], language=[language])
if frame.empty or frame["label"].isna().all():
    st.info(f"No judged attack completions in {language} for judge {judge}.")
    st.stop()
try:
    disparity = DefenseRates(frame, ["model", "language", "group"]).disparity()
except MetricsError as exc:
    st.error(str(exc))
    st.stop()
points = scaling(disparity, targets(path, mtime))
sized = points.dropna(subset=["size_b"])
low, high = {"std": ("std_ci_low", "std_ci_high"), "gap": ("gap_ci_low", "gap_ci_high"),
             "min_max_ratio": ("min_max_ratio", "min_max_ratio")}[metric]

if sized.empty:
    st.info("No model in this selection has a known size. Sizes come from the target settings of a run, or "
            "from the paper for imported MiJaBench-Align models.")
else:
    st.plotly_chart(error_bar_scatter(sized, "size_b", metric, "family", low, high, label="model", log_x=True,
                                      lines=True, x_title="parameters (billions, log scale)", y_title=METRICS[metric],
                                      title=f"{METRICS[metric]} by model size ({language})"), width="stretch")
    st.caption("Error bars: 95% bootstrap CIs of the disparity (groups resampled within each model). The gap and "
               "the standard deviation of resampled DRs are biased upwards when groups are truly equal; read "
               "them with the homogeneity test below.")

st.subheader("Per family")
trend = points.drop_duplicates("family")[["family", "family_models", "family_slope_per_10x", "family_spearman"]]
st.dataframe(trend, hide_index=True, width="stretch", column_config={
    "family_models": st.column_config.NumberColumn("models"),
    "family_slope_per_10x": st.column_config.NumberColumn("std change per 10x parameters", format="%+.3f"),
    "family_spearman": st.column_config.NumberColumn("Spearman rho (size, std)", format="%.2f")})

st.subheader("Per model")
st.dataframe(points[["model", "family", "size_b", "n", "dr", "std", "std_ci_low", "std_ci_high", "gap", "gap_ci_low",
                     "gap_ci_high", "min_max_ratio", "worst", "best", "p_adjusted", "heterogeneous"]],
             hide_index=True, width="stretch", column_config={
                 "p_adjusted": st.column_config.NumberColumn("homogeneity p (Holm)", format="%.2e"),
                 "heterogeneous": st.column_config.CheckboxColumn("groups differ")})
