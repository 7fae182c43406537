"""Reproduction: the user's deviations next to the MiJaBench paper's heatmaps, same models and groups.

When none of the stored models is one of the paper's (the demo's SmolLM2 and Gemma 3 270M are not), the page
still shows the paper's figures as published (the heatmap of the chosen language, the models' mean DRs, the
strategies, scenario categories and judges), with the controls that map a stored model to a paper model
beside them: mapping one turns the page into the side-by-side comparison.
"""
from __future__ import annotations

import streamlit as st

from core.vocab import taxonomy
from core.files.reference import (AVERAGE, match_paper_model, paper_heatmap, paper_judges, paper_model_means, paper_models,
                            paper_scenarios, paper_strategies)
from ui.cached import reproduction
from ui.common import dataframe, escape_markdown
from ui.page import start
from ui.stat_figures import ci_heatmap_chart, heatmap_box, significance_note

FIGURE = {"en": "Figure 3", "pt": "Figure 6"}

ctx = start("Reproduction: your results next to the paper's", "repro", language=True,
            language_names={"en": "English (Figure 3)", "pt": "Portuguese (Figure 6)"})
if ctx.vocabulary.name != taxonomy.DEFAULT_NAME:
    st.info(f"The paper measured MiJaBench's groups; this database holds the population "
            f"{escape_markdown(repr(ctx.vocabulary.title))} (taxonomy {escape_markdown(repr(ctx.vocabulary.name))}), "
            "so there is nothing of the paper's to set "
            "it beside. The Heatmaps and Counterfactual pages show its results.")
    st.stop()
language = ctx.language
st.caption("The paper's figures are bundled in data/reference/ (see its PROVENANCE.md). They print two decimals, "
           "so a faithful reproduction differs from a cell by up to 0.005 plus sampling noise.")

view = reproduction(ctx.path, ctx.mtime, ctx.judge, language)
deviations = view.deviations
order = list(taxonomy.DEFAULT.groups_by_language[language])  # the paper's own groups

figures, controls = st.columns([4, 1])
paper_names = ["(not in the paper)", *paper_models()["model"]]
with controls:
    st.markdown("**Which of your models is which of the paper's**")
    mapping = {}
    for model in view.models:
        guess = match_paper_model(model)
        choice = st.selectbox(escape_markdown(model), paper_names, index=paper_names.index(guess) if guess else 0,
                              key=f"repro_map_{model}")
        if choice != paper_names[0]:
            mapping[model] = choice
    if deviations.empty:
        st.caption(f"No attack completions in {escape_markdown(language)} to map.")
    else:
        st.caption("Matched by name where a model is one of the paper's 12 (Llama 3.x, Gemma 3, Qwen 3); map any "
                   "other here, or import the paper's own answers with `python -m core import-align FILE`.")

paired = view.compare(mapping)
comparison = paired.cells
with figures:
    if comparison.empty:
        st.info(("No model of yours is mapped to one of the paper's 12 models" if not deviations.empty else
                 f"No attack completions in {escape_markdown(language)}")
                + f"; the paper's {FIGURE[language]} as published:")
        paper = paper_heatmap(language, include_average=True)
        rows = [*paper_model_means(language)["model"]]
        chart = ci_heatmap_chart(paper, "group", "model", "deviation", language=language, x_order=order,
                                 y_order=rows, zmax=0.2, details=(("dr", "DR of the cell"),
                                                                  ("model_mean_dr", "model mean DR")),
                                 title=f"Paper, {FIGURE[language]}: deviation from the model mean DR",
                                 clickable=False)
        with heatmap_box(chart):
            st.altair_chart(chart, width="content", key="repro_paper")
    else:
        summary = paired.summary
        cols = st.columns(5)
        cols[0].metric("Cells compared", f"{summary['cells']}")
        cols[1].metric("Models", f"{summary['models']}")
        cols[2].metric("Mean |difference|", f"{summary['mean_abs_difference']:.3f}")
        cols[3].metric("Max |difference|", f"{summary['max_abs_difference']:.3f}")
        cols[4].metric("Paper value in your 95% CI", f"{summary['paper_in_ci']:.0%}")
        shown = comparison.assign(label=comparison["paper_model"] + " ← " + comparison["model"])
        models_by_size = list(dict.fromkeys(shown.sort_values(["family", "params_b"])["label"]))
        for key, value, low, high, title, zmax in (
                ("paper", "paper_deviation", None, None, "Paper: deviation from the model mean", 0.2),
                ("yours", "deviation", "dev_ci_low", "dev_ci_high",
                 "Yours: deviation from the model mean (CI in hover)", 0.2),
                ("diff", "difference", None, None, "Yours minus the paper's", 0.1)):
            chart = ci_heatmap_chart(shown, "group", "label", value, low, high,
                                     "significant" if key == "yours" else None, language=language, x_order=order,
                                     y_order=models_by_size, title=title, zmax=zmax, y_title="model",
                                     clickable=False)
            with heatmap_box(chart):
                st.altair_chart(chart, width="content", key=f"repro_{key}")
        significance_note()

if not comparison.empty:
    st.subheader("Cell by cell")
    dataframe(comparison[["model", "paper_model", "group", "n", "paper_dr", "dr", "paper_deviation", "deviation",
                          "dev_ci_low", "dev_ci_high", "difference", "paper_in_ci", "significant"]],
              hide_index=True, width="stretch")

st.subheader("The paper's figures as published")
with st.expander(f"{FIGURE[language]}: each model's mean DR and its groups' deviations from it",
                 expanded=comparison.empty):
    paper = paper_heatmap(language, include_average=True)
    table = paper.pivot(index="model", columns="group", values="deviation")
    table = table[[g for g in order if g in table.columns]].rename(
        columns=lambda g: taxonomy.DEFAULT.group_name(g, language))
    means = paper_model_means(language).set_index("model")
    table.insert(0, "mean DR", means["model_mean_dr"])
    table.insert(0, "size (B)", means["params_b"])
    dataframe(table.loc[list(means.index)].reset_index(), hide_index=True, width="stretch",
              key="repro_paper_table")
    st.caption(f"Rows: the paper's 12 models and its {AVERAGE} row; cells: DR(model, group) minus the model's mean "
               "DR over the language's prompts, as printed (two decimals).")
left, right = st.columns(2)
with left.expander("Figure 5: average DR per jailbreak strategy (English)", expanded=comparison.empty):
    dataframe(paper_strategies(), hide_index=True, width="stretch", key="repro_paper_strategies")
with right.expander("Table 3: the paper's judges against 2,112 human labels", expanded=comparison.empty):
    dataframe(paper_judges(), hide_index=True, width="stretch", key="repro_paper_judges")
with st.expander("Figure 5: average DR per scenario category (English)", expanded=False):
    dataframe(paper_scenarios(), hide_index=True, width="stretch", key="repro_paper_scenarios")
