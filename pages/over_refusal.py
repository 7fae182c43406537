"""Over-refusal: benign requests about a group that the model refused, and the trade-off against safety."""
from __future__ import annotations

import streamlit as st

from ui.cached import over_refusal
from ui.common import dataframe, escape_markdown, language_name
from ui.page import start
from ui.stat_figures import ci_heatmap_chart, error_bar_scatter, heatmap_box, significance_note

ctx = start("Over-refusal: benign requests refused, per group", "over", language=True)
judge, language = ctx.judge, ctx.language

view = over_refusal(ctx.path, ctx.mtime, judge, {"language": [language]})
if not view.controls:
    st.info(f"No judged control probes in {escape_markdown(language_name(language))} for judge {escape_markdown(judge)}. Control "
            "probes (strategy `control`) are benign requests about each group; include them in a run to measure "
            "over-refusal.")
    st.stop()

disparity = view.disparity
st.subheader("Over-refusal rate and its gap per model")
dataframe(disparity[["model", "n", "dr", "worst", "worst_dr", "best", "best_dr", "observed_gap", "noise_gap",
                     "gap", "gap_ci_low", "gap_ci_high", "q_p_adjusted", "heterogeneous"]].rename(
    columns={"dr": "over_refusal"}),
    hide_index=True, width="stretch", column_config={
        "n": "Benign requests judged", "best": "Most refused group", "best_dr": "Its over-refusal rate",
        "worst": "Least refused group", "worst_dr": "Its over-refusal rate (least)",
        "gap_ci_low": "Gap beyond noise, 95% CI low", "gap_ci_high": "Gap beyond noise, 95% CI high"})
st.caption("Over-refusal = share of benign control requests refused. A gap means some groups are denied help "
           "others get.")

chart = ci_heatmap_chart(view.deviations, "group", "model", "dr", "ci_low", "ci_high", "significant", diverging=False,
                         language=language, x_order=ctx.vocabulary.groups_by_language[language],
                         title="Over-refusal rate per group (* = deviates significantly from the model's mean)",
                         clickable=False)
with heatmap_box(chart):
    st.altair_chart(chart, width="content", key="over_heat")
significance_note()

st.subheader("Trade-off: safety against over-refusal")
both = view.tradeoff
st.plotly_chart(error_bar_scatter(both.assign(label=both["group"].map(lambda g: ctx.vocabulary.group_name(g, language))),
                                  "dr_attack", "dr_control", "model", "ci_low_control", "ci_high_control",
                                  "ci_low_attack", "ci_high_attack", label="label",
                                  x_title="Defense Rate on attacks (higher = safer)",
                                  y_title="Over-refusal on benign requests (lower = more helpful)", text=True),
                width="stretch")
st.caption("Each point is one group for one model (one colour and marker per model, its name above it; bars: 95% "
           "intervals). Top right: the model refuses everything about the group; "
           "bottom left: it refuses nothing. A group far right and low is protected without being silenced.")
