"""Heatmaps: Defense Rate (or deviation from the model mean) by model x group, strategy x group and scenario
category x group, per language. A click on a cell opens the drill-down filtered to that cell."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import taxonomy
from ui import filters
from ui.cached import rates
from ui.page import start
from ui.stat_figures import ci_heatmap, clicked_cell, significance_note

PAGE = "heatmaps"
METRICS = {"dr": "Defense Rate", "deviation": "Deviation from the model mean"}
SORTS = {"dr": "by Defense Rate (most protected first)", "name": "by name"}

ctx = start("Heatmaps: who is protected, and how much", PAGE)
path, mtime, judge = ctx.path, ctx.mtime, ctx.judge
metric = filters.select_option("Show", "metric", list(METRICS), page=PAGE, format_func=METRICS.get)
order = filters.select_option("Sort groups", "sort", list(SORTS), page=PAGE, format_func=SORTS.get)
chosen = filters.sidebar({"model": ctx.facts["models"], "language": ctx.facts["languages"]}, page=PAGE)
scope = {**filters.store_filters(chosen), "kind": ["attack"]}

deviation = metric == "deviation"
value, low, high = ("deviation", "dev_ci_low", "dev_ci_high") if deviation else ("dr", "ci_low", "ci_high")
by_group = rates(path, mtime, judge, scope, ["model", "language", "group"], deviations=deviation)
if by_group.empty or by_group["n"].sum() == 0:
    st.info(f"No judged attack completions for judge {judge} in this selection.")
    st.stop()
pooled = rates(path, mtime, judge, scope, ["language", "group"])
models = sorted(by_group["model"].unique())
st.caption("Click a cell to open its completions in the drill-down. " + (
    "Blue: the group is refused more often than its model's average; red: less often." if deviation else
    "Darker: refused more often (better protected)."))
if deviation:
    significance_note()


def group_order(language: str) -> list[str]:
    """Groups of a language in the chosen order: pooled DR over the selected models, or display name."""
    cells = pooled[pooled["language"] == language]
    if order == "dr":
        return list(cells.sort_values(["dr", "group"], ascending=[False, True])["group"])
    return sorted(cells["group"], key=lambda g: taxonomy.group_name(g, language))


def draw(table: pd.DataFrame, rows: str, language: str, title: str, key: str, fixed: dict[str, str]) -> None:
    """One clickable heatmap of `rows` x group; a click switches to the drill-down of that cell."""
    if table.empty:
        st.info(f"No judged completions for {title.lower()}.")
        return
    figure = ci_heatmap(table, x="group", y=rows, value=value, low=low if low in table else None,
                        high=high if high in table else None, significant="significant" if deviation else None,
                        diverging=deviation, language=language, x_order=group_order(language), title=title,
                        clickable=True)
    event = st.plotly_chart(figure, on_select="rerun", selection_mode="points", key=key, width="stretch")
    cell = clicked_cell(event)
    if cell is not None:
        row, group = cell
        st.switch_page("pages/drilldown.py", query_params=filters.link(
            {**fixed, rows: row, "group": group, "language": language, "kind": "attack", "judge": judge}))


languages = [lang for lang in taxonomy.LANGUAGES if lang in set(by_group["language"])]
for language in languages:
    st.header(f"Language: {language}")
    draw(by_group[by_group["language"] == language], "model", language, f"Model x group ({language})",
         f"{PAGE}_model_{language}", {})

# The breakdowns come on demand: six heatmaps at once took the browser longer than the first one needs.
if not filters.toggle_option("Break one model down by strategy and scenario category", "breakdowns", page=PAGE,
                             where=st, help="Strategy x group and scenario category x group heatmaps per language"):
    st.stop()
breakdown_model = filters.select_option("Model for the strategy and scenario breakdowns", "breakdown", models,
                                        page=PAGE, where=st)
one_model = {**scope, "model": [breakdown_model]}  # 1/12 of a 12-model store: fast to load and to resample
for language in languages:
    for rows, name in (("strategy", "Strategy"), ("scenario_category", "Scenario category")):
        table = rates(path, mtime, judge, one_model, ["model", "language", rows, "group"], deviations=deviation)
        table = table[table["language"] == language]
        draw(table, rows, language, f"{name} x group, {breakdown_model} ({language})",
             f"{PAGE}_{rows}_{language}", {"model": breakdown_model})
