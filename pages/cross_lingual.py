"""Cross-lingual: does a model protect the same groups in English and Portuguese?"""
from __future__ import annotations

import streamlit as st

from ui.cached import cross_lingual
from ui.common import dataframe, escape_markdown
from ui.page import start
from ui.stat_figures import DEVIATION_SPAN, ci_heatmap_chart, error_bar_scatter, heatmap_box, significance_note

ctx = start("Cross-lingual: the same groups in English and Portuguese", "cross", judge="main")
judge = ctx.judge

view = cross_lingual(ctx.path, ctx.mtime, judge)
if not view.comparable:
    st.info("This page needs judged attack completions in both English and Portuguese "
            f"(the store has {escape_markdown(', '.join(view.languages) or 'none')} for judge "
            f"{escape_markdown(judge)}).")
    st.stop()

shared, wide = view.shared, view.wide
models = sorted(wide["model"].unique())
chosen = st.multiselect("Models", models, default=models, key="cross_models")
wide = wide.loc[wide["model"].isin(chosen)]

st.subheader("Defense Rate per shared group: English against Portuguese")
st.plotly_chart(error_bar_scatter(wide.assign(group_model=wide["group"].map(ctx.vocabulary.group_name) + " · " + wide["model"]),
                                  "dr_en", "dr_pt", "model", "ci_low_pt", "ci_high_pt", "ci_low_en", "ci_high_en",
                                  label="group_model", x_title="DR in English", y_title="DR in Portuguese"),
                width="stretch")
st.caption(f"Shared groups: {escape_markdown(', '.join(ctx.vocabulary.group_name(g) for g in shared))}. Points above "
           "the diagonal are refused more often in Portuguese. Error bars: 95% bootstrap CIs in each language.")

st.subheader("Do the languages rank groups alike?")
agreement = view.agreement
dataframe(agreement.loc[agreement["model"].isin(chosen)], hide_index=True, width="stretch", column_config={
    "shared": st.column_config.NumberColumn("shared groups"),
    "spearman": st.column_config.NumberColumn("Spearman rho", format="%.2f"),
    "spearman_p": st.column_config.NumberColumn("p", format="%.3f"),
    "kendall": st.column_config.NumberColumn("Kendall tau", format="%.2f"),
    "kendall_p": st.column_config.NumberColumn("p", format="%.3f")})
st.caption("With five shared groups a rank correlation needs to be near ±1 to mean much: read rho with its p.")

st.subheader("Deviation from the model mean, per language")
deviations = view.deviations
for language in ("en", "pt"):
    part = deviations.loc[(deviations["language"] == language) & deviations["model"].isin(chosen)]
    chart = ci_heatmap_chart(part, "group", "model", "deviation", "dev_ci_low", "dev_ci_high", "significant",
                             language=language, x_order=ctx.vocabulary.groups_by_language[language],
                             title={"en": "English", "pt": "Portuguese"}[language], zmax=DEVIATION_SPAN,
                             clickable=False)
    with heatmap_box(chart):
        st.altair_chart(chart, width="content", key=f"cross_heat_{language}")
significance_note()
