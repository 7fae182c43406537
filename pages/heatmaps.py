"""Heatmaps: Defense Rate (or deviation from the model mean) by model x group, strategy x group and scenario
category x group, per language. A click on a cell opens the drill-down filtered to that cell.

Where the selection has a labelled review sample, the values are corrected by it by default (core.ppi via
ui.cached.corrected): the hover gives the corrected DR with its interval, the judge's own DR, n and n_human, and
a cell with too few human checks is drawn grey, with how many it has in the cell and why in its hover (plain words:
core.stats.estimates.missing_reason). "Judge only" shows the judge's figures; a cell of fewer than MIN_JUDGED answers is
grey too (its rate and n in the hover). Deviations share one colour scale on the page (ui.stat_figures.DEVIATION_SPAN).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.stats.estimates import JUDGE_ONLY, MIN_JUDGED, estimate_label, explain_missing
from ui import filters
from ui.cached import corrected, disparity, judge_errors, rates, sample_labels
from ui.common import escape_markdown, language_name, warn_unsupported_languages
from ui.page import start
from ui.stat_figures import (CELL_SELECTION, DEVIATION_SPAN, ci_heatmap_chart, clicked_chart_cell, heatmap_box,
                             judge_error_warning, significance_note)

PAGE = "heatmaps"
METRICS = {"dr": "Defense Rate", "deviation": "Deviation from the model mean"}
SORTS = {"dr": "by Defense Rate (most protected first)", "name": "by name"}
# What a corrected cell's hover adds to the corrected DR and its interval.
CORRECTED_DETAILS = (("n_human", "Human checks"), ("dr_judge", "Judge's DR (judge alone)"),
                     ("rectifier", "Correction (human minus judge)"))

ctx = start("Heatmaps: who is protected, and how much", PAGE)
# A cold browser fetches and compiles Vega's chunk (0.8 MB) only when the first chart arrives; a 1-pixel chart
# sent now has it do that while the tables below are computed, and is removed once the heatmaps are drawn.
early = st.empty()
early.vega_lite_chart({"data": {"values": []}, "mark": "point", "width": 1, "height": 1,
                       "config": {"view": {"stroke": None}}}, width=1, height=1)
path, mtime, judge = ctx.path, ctx.mtime, ctx.judge
metric = filters.select_option("Show", "metric", list(METRICS), page=PAGE, format_func=METRICS.get)
order = filters.select_option("Sort groups", "sort", list(SORTS), page=PAGE, format_func=SORTS.get)
chosen = filters.sidebar({"model": ctx.facts["models"], "language": ctx.facts["languages"]}, page=PAGE)
scope = {**filters.store_filters(chosen), "kind": ["attack"]}
# Sample labels are human verdicts: a store without any has none, and skips the sample query (0.4 s at 528,000).
checks = sample_labels(path, mtime, judge, scope) if "human" in ctx.facts.get("judges", ()) else 0
ESTIMATES = {"ppi": estimate_label(checks), "judge": JUDGE_ONLY}
estimate = filters.select_option("Estimate", "estimate", ["ppi", "judge"] if checks else ["judge"],
                                 default="ppi" if checks else "judge", page=PAGE, format_func=ESTIMATES.get,
                                 help="Corrected: the judge's DR plus the mean human-minus-judge difference on the "
                                      "random review sample, with an interval from both (valid whatever the "
                                      "judge). Judge only: the judge's verdicts, human verdicts overriding.")
fix = estimate == "ppi"
min_human = filters.number_option("Fewest human checks per corrected cell", "min_human", 10, page=PAGE) if fix else 10
if not checks:
    st.sidebar.caption("No review sample in this selection: figures are the judge's only. Draw one with "
                       "`python -m core review sample --run-id RUN --fraction 0.05 --seed 0` and label it on the "
                       "Review page.")


def table_for(selection: dict, by: list[str], deviations: bool = False) -> pd.DataFrame:
    """The chosen estimate's table: corrected by the review sample (with why, in plain words, where a cell has no
    corrected value), or the judge's."""
    if fix:
        return explain_missing(corrected(path, mtime, judge, selection, by, deviations=deviations,
                                         min_human=min_human), min_human, "deviation" if deviations else "dr")
    return rates(path, mtime, judge, selection, by, deviations=deviations)


deviation = metric == "deviation"
value, low, high = ("deviation", "dev_ci_low", "dev_ci_high") if deviation else ("dr", "ci_low", "ci_high")
by_group = table_for(scope, ["model", "language", "group"], deviations=deviation)
if by_group.empty or by_group["n"].sum() == 0:
    early.empty()
    st.info(f"No judged attack completions for judge {escape_markdown(judge)} in this selection.")
    st.stop()
pooled = table_for(scope, ["language", "group"])
models = sorted(by_group["model"].unique())
gaps = disparity(path, mtime, judge, filters.store_filters(chosen), estimator=estimate, min_human=min_human)
for row in gaps.rows.itertuples():
    st.markdown(f"**{escape_markdown(row.model)}**, {escape_markdown(language_name(row.language))} "
                f"({escape_markdown(row.estimate)}): {escape_markdown(row.headline)}.")
if fix:
    judge_error_warning(judge_errors(path, mtime, judge, scope), judge)
    st.caption(f"Values {ESTIMATES['ppi']} (prediction-powered: the judge's DR on every completion plus the "
               "mean human-minus-judge difference on the random review sample; 95% intervals from both). Grey "
               f"cells have fewer than {min_human} human checks, too few for a corrected estimate: the cell says how "
               "many, its hover why.")
else:
    st.caption("Values: judge only (the judge's verdicts, human verdicts overriding)."
               + (f" A review sample exists: choose \"{ESTIMATES['ppi']}\" for valid figures." if checks else "")
               + f" Grey cells hold fewer than {MIN_JUDGED} judged answers, too few to colour: their rate and n are "
               "in the hover.")
st.caption("Click a cell to open its completions in the drill-down. " + (
    "Blue: the group is refused more often than its model's average; red: less often. One colour scale for "
    f"every heatmap on this page, -{DEVIATION_SPAN} to +{DEVIATION_SPAN} (a larger deviation takes the end colour; "
    "its number is in the cell)." if deviation else "Darker: refused more often (better protected)."))
if deviation:
    significance_note(corrected=fix)


def group_order(language: str) -> list[str]:
    """Groups of a language in the chosen order: pooled DR over the selected models, or display name."""
    cells = pooled[pooled["language"] == language]
    if order == "dr":  # corrected: a group without a corrected pooled DR (too few checks) sorts by the judge's
        key = cells["dr"].fillna(cells["dr_judge"]) if "dr_judge" in cells else cells["dr"]
        return list(cells.assign(order_key=key).sort_values(["order_key", "group"], ascending=[False, True],
                                                            na_position="last")["group"])
    return sorted(cells["group"], key=lambda g: ctx.vocabulary.group_name(g, language))


def draw(table: pd.DataFrame, rows: str, language: str, title: str, key: str, fixed: dict[str, str]) -> None:
    """One clickable heatmap of `rows` x group; a click switches to the drill-down of that cell."""
    if table.empty:
        st.info(f"No judged completions for {escape_markdown(title.lower())}.")
        return
    chart = ci_heatmap_chart(table, "group", rows, value, low if low in table else None,
                             high if high in table else None, "significant" if deviation else None,
                             diverging=deviation, language=language, x_order=group_order(language), title=title,
                             details=CORRECTED_DETAILS if fix else (), estimate=ESTIMATES[estimate],
                             missing="why" if fix else None, missing_text="why_short" if fix else None,
                             zmax=DEVIATION_SPAN if deviation else None, min_n=None if fix else MIN_JUDGED)
    with heatmap_box(chart):
        event = st.altair_chart(chart, on_select="rerun", selection_mode=CELL_SELECTION, key=key, width="content")
    cell = clicked_chart_cell(event)
    if cell is not None:
        row, group = cell
        st.switch_page("pages/drilldown.py", query_params=filters.link(
            {**fixed, rows: row, "group": group, "language": language, "kind": "attack", "judge": judge,
             "estimate": estimate, "back": PAGE}))


languages = [lang for lang in ctx.vocabulary.language_codes if lang in set(by_group["language"])]
warn_unsupported_languages(languages, judge)
for language in languages:
    st.header(escape_markdown(language_name(language)))
    draw(by_group[by_group["language"] == language], "model", language, f"Model x group ({language_name(language)})",
         f"{PAGE}_model_{language}", {})
early.empty()

# The breakdowns come on demand: six heatmaps at once took the browser longer than the first one needs.
if not filters.toggle_option("Break one model down by strategy and scenario category", "breakdowns", page=PAGE,
                             where=st, help="Strategy x group and scenario category x group heatmaps per language"):
    st.stop()
breakdown_model = filters.select_option("Model for the strategy and scenario breakdowns", "breakdown", models,
                                        page=PAGE, where=st)
one_model = {**scope, "model": [breakdown_model]}  # 1/12 of a 12-model store: fast to load and to resample
for language in languages:
    for rows, name in (("strategy", "Strategy"), ("scenario_category", "Scenario category")):
        table = table_for(one_model, ["model", "language", rows, "group"], deviations=deviation)
        table = table[table["language"] == language]
        draw(table, rows, language, f"{name} x group, {breakdown_model} ({language_name(language)})",
             f"{PAGE}_{rows}_{language}", {"model": breakdown_model})
