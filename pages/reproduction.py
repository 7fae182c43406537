"""Reproduction: the user's deviations next to the MiJaBench paper's heatmaps, same models and groups."""
from __future__ import annotations

import streamlit as st

from core import taxonomy
from core.metrics import DefenseRates
from core.reference import compare_with_paper, match_paper_model, paper_models, reproduction_summary
from ui.stat_figures import ci_heatmap, judged, significance_note, stats_page

path, mtime, judge, language = stats_page("Reproduction: your results next to the paper's", "repro",
                                          language_names={"en": "English (Figure 3)", "pt": "Portuguese (Figure 6)"})
st.caption("The paper's figures are bundled in data/reference/ (see its PROVENANCE.md). They print two decimals, "
           "so a faithful reproduction differs from a cell by up to 0.005 plus sampling noise.")

frame = judged(path, mtime, judge, kind=["attack"], language=[language])
if frame.empty:
    st.info(f"No attack completions in {language}.")
    st.stop()
deviations = DefenseRates(frame, ["model", "language", "group"]).deviations(["model", "language"])

paper_names = ["(not in the paper)", *paper_models()["model"]]
with st.expander("Which of your models is which of the paper's", expanded=False):
    mapping = {}
    for model in sorted(deviations["model"].unique()):
        guess = match_paper_model(model)
        choice = st.selectbox(model, paper_names, index=paper_names.index(guess) if guess else 0,
                              key=f"repro_map_{model}")
        if choice != paper_names[0]:
            mapping[model] = choice

comparison = compare_with_paper(deviations, language, mapping)
if comparison.empty:
    st.info("None of your models matches one of the paper's 12 models (Llama 3.x, Gemma 3, Qwen 3). Map them "
            "above, or import the paper's own answers with `python -m core import-align FILE`.")
    st.stop()

summary = reproduction_summary(comparison)
cols = st.columns(5)
cols[0].metric("Cells compared", f"{summary['cells']}")
cols[1].metric("Models", f"{summary['models']}")
cols[2].metric("Mean |difference|", f"{summary['mean_abs_difference']:.3f}")
cols[3].metric("Max |difference|", f"{summary['max_abs_difference']:.3f}")
cols[4].metric("Paper value in your 95% CI", f"{summary['paper_in_ci']:.0%}")

order = list(taxonomy.GROUPS_BY_LANGUAGE[language])
shown = comparison.assign(label=comparison["paper_model"] + " ← " + comparison["model"])
models_by_size = list(dict.fromkeys(shown.sort_values(["family", "params_b"])["label"]))
for key, value, low, high, title, zmax in (
        ("paper", "paper_deviation", None, None, "Paper: deviation from the model mean", 0.2),
        ("yours", "deviation", "dev_ci_low", "dev_ci_high", "Yours: deviation from the model mean (CI in hover)", 0.2),
        ("diff", "difference", None, None, "Yours minus the paper's", 0.1)):
    st.plotly_chart(ci_heatmap(shown, "group", "label", value, low, high, "significant" if key == "yours" else None,
                               language=language, x_order=order, y_order=models_by_size, title=title, zmax=zmax),
                    width="stretch", key=f"repro_{key}")
significance_note()

st.subheader("Cell by cell")
st.dataframe(comparison[["model", "paper_model", "group", "n", "paper_dr", "dr", "paper_deviation", "deviation",
                         "dev_ci_low", "dev_ci_high", "difference", "paper_in_ci", "significant"]],
             hide_index=True, width="stretch")
