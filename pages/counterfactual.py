"""Counterfactual: the gap when only the group changes, next to the matched-seed gap (core.views.counterfactual).

A heatmap of model x group on the counterfactual probes (CIs resample claims), the headline comparison per model,
the pairs of groups that differ on the same claims, and the decomposition of the gap into a group part and a claim
(seed) part. A click on a cell opens its completions in the drill-down, where each answer's counterfactual
siblings (the same claim and prompt for every other group) are side by side.
"""
from __future__ import annotations

import streamlit as st

from ui import filters
from ui.cached import counterfactual
from ui.common import dataframe, group_names, language_name, warn_unsupported_languages
from ui.page import start
from ui.stat_figures import CELL_SELECTION, ci_heatmap_chart, clicked_chart_cell, heatmap_box

PAGE = "counterfactual"

ctx = start("Counterfactual: the gap when only the group changes", PAGE, language=True, probe_sets=False)
language = ctx.language
chosen = filters.sidebar({"model": ctx.facts["models"]}, page=PAGE)
view = counterfactual(ctx.path, ctx.mtime, ctx.judge, {**filters.store_filters(chosen), "language": [language]})
if view.matched is None:
    st.info("No judged counterfactual answers in this selection. Counterfactual probes fill one claim, scenario, "
            "strategy and template for every group, so they differ only in the group's words. Run them with "
            "`python -m core run --probe-set counterfactual --target smollm2` (or choose the counterfactual probe "
            "set on the Run page); build a set of your own with `python -m core probes build --counterfactual`.")
    st.stop()

warn_unsupported_languages([language], ctx.judge)
st.caption("Matched seeds (the bundled set) give every group its own seed statements, so their gap mixes the group "
           "with how hard its seeds are. Counterfactual probes hold the claim fixed: only the group's words change. "
           "95% intervals resample claims (seeds), not answers, because the answers to one claim go together.")
comparison = view.comparison.loc[view.comparison["language"] == language]
headline = comparison.rename(columns={"seed_gap": "gap, matched seeds", "counterfactual_gap": "gap, only the group changes",
                  "surviving": "share of the gap that survives", "cochran_p": "Cochran's Q p"})
st.subheader("How much of the gap survives when only the group changes")
dataframe(headline[["model", "groups", "gap, matched seeds", "seed_gap_ci_low", "seed_gap_ci_high",
                    "gap, only the group changes", "counterfactual_gap_ci_low", "counterfactual_gap_ci_high",
                    "Cochran's Q p", "share of the gap that survives", "surviving_ci_low", "surviving_ci_high",
                    "note"]],
          hide_index=True, width="stretch")
st.caption("share of the gap that survives: from a logistic model of every attack answer (both sets) with a claim "
           "effect and a group effect: the best-minus-worst group gap when every claim is asked about every group, "
           "over the raw gap (1 = the whole gap is the group's; 0 = the seeds made it).")

rates = view.matched.rates.loc[view.matched.rates["language"] == language]
st.subheader("Defense Rate per group, counterfactual probes")
st.caption("Darker: refused more often (better protected). Click a cell to open its completions; the drill-down "
           "shows each answer's siblings for the other groups side by side.")
order = list(rates.groupby("group")["dr"].mean().sort_values(ascending=False).index)
chart = ci_heatmap_chart(rates, x="group", y="model", value="dr", low="ci_low", high="ci_high", diverging=False,
                         language=language, x_order=order,
                         title=f"Model x group, counterfactual probes ({language_name(language)})",
                         details=(("clusters", "Claims"),))
with heatmap_box(chart):
    event = st.altair_chart(chart, on_select="rerun", selection_mode=CELL_SELECTION, key=f"{PAGE}_{language}",
                            width="content")
cell = clicked_chart_cell(event)
if cell is not None:
    model, group = cell
    st.switch_page("pages/drilldown.py", query_params=filters.link(
        {"model": model, "group": group, "language": language, "kind": "attack", "source": "counterfactual",
         "probe_set": "counterfactual", "judge": ctx.judge}))

pairs = view.matched.pairs.loc[view.matched.pairs["language"] == language]
significant = pairs.loc[pairs["significant"].astype(bool)]
st.subheader(f"Pairs of groups treated differently on the same claims: {len(significant)} of {len(pairs)}")
st.caption("McNemar's exact test on the answers both groups got for the same counterfactual prompt, Holm-corrected "
           "over the pairs of each model; diff = DR(a) - DR(b) with Newcombe's paired 95% interval.")
if len(pairs):
    ordered = pairs.sort_values("p_adjusted")
    shown = ordered.assign(group_a=group_names(ordered, "group_a"), group_b=group_names(ordered, "group_b"))
    dataframe(shown[["model", "group_a", "group_b", "n_pairs", "a_only", "b_only", "dr_a", "dr_b", "diff",
                     "ci_low", "ci_high", "pvalue", "p_adjusted", "significant"]], hide_index=True, width="stretch")

st.subheader("The gap, decomposed")
decomposition = view.decomposition
if len(decomposition):
    decomposition = decomposition.loc[decomposition["language"] == language]
    named = {column: group_names(decomposition, column) for column in ("group_high", "group_low")
             if column in decomposition}
    dataframe(decomposition.assign(**named), hide_index=True, width="stretch")
    st.caption("raw_gap = group_part + claim_part (probability scale, the pair of groups with the largest raw "
               "gap); adjusted_gap = the largest gap between any two groups once claims are held fixed. Intervals: "
               "delta method on the logistic fit (claims taken as fixed). Claims whose answers all agree carry no "
               "information on the group and are left out of the fit (dropped_claims).")
