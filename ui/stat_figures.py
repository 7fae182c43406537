"""Figures of statistics that carry their uncertainty: heatmaps with CIs and significance marks (Vega-Lite),
points with error bars (Plotly). Shared by the statistics pages (and any page drawing core.stats.rates tables).

Pages stay thin: they pass tables computed by core.stats.rates; nothing here computes a statistic. Labels
that come from the store (model names) are HTML-escaped in Plotly figures, because Plotly reads a few HTML tags
in text; Vega-Lite draws text as text.
"""
from __future__ import annotations

import html
import numbers
import os
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.store import Store, StoreError
from core.vocab import labels as words_for
from ui.common import db_path, ensure_navigation, escape_markdown, open_store, vocabulary

SIGNIFICANT_MARK = "*"
# One colour scale per kind of quantity on a page: a Defense Rate (or a rate like it) on 0..1; a deviation from a
# model's mean on -DEVIATION_SPAN..+DEVIATION_SPAN, centred on 0, the same for every chart of a page (a deviation
# beyond it takes the end colour, its number is in the cell), so two charts never colour one value differently.
DEVIATION_SPAN = 0.5
GREY = "#cccccc"  # a cell without a number on the colour scale: no estimate, or too few answers to colour


def display_name(value: object, language: str = "en") -> str:
    """A row or column key as a reader knows it: a group's display name in the language, a strategy's label, any
    other value (a model, a scenario category) as stored."""
    key = str(value)
    words = vocabulary()
    if key in words.groups:
        return words.group_name(key, language)
    if key in words.strategies:
        return words.strategy_label(key)
    return key


def _label(value: object, language: str = "en") -> str:
    """A row or column key as shown in a Plotly chart, escaped: a taxonomy file's names are an auditor's text."""
    return html.escape(display_name(value, language))


def _figure(value: object) -> str:
    """A number in a hover: three decimals, whole numbers with thousands separators, a missing one as '–'."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, (bool, str)):
        return html.escape(str(value))
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    return f"{float(value):.3f}"


@st.cache_data(show_spinner=False, max_entries=8)
def _store_facts(path: str, mtime: float) -> tuple[dict[str, int], str]:
    store = Store(path, readonly=True)
    return store.judge_counts(), store.default_judge()


def require_store() -> tuple[str, float]:
    """The database path and its modification time (the cache key); stops the page when there is none.

    Every page opens the store through here, so this is also where a deep link is routed via app.py.
    """
    ensure_navigation()
    path = db_path()
    if not path.exists():
        st.info(f"No audit database at {escape_markdown(path)}. Build the demo with `make demo-db`, run an audit, "
                "or import MiJaBench-Align results with `python -m core import-align FILE`.")
        st.stop()
    try:
        open_store()
    except StoreError as exc:
        st.error(escape_markdown(exc))
        st.stop()
    wal = path.with_name(path.name + ".wal")
    return str(path), max(os.path.getmtime(path), os.path.getmtime(wal) if wal.exists() else 0.0)


def judge_choice(path: str, mtime: float, key: str = "judge") -> str:
    """A select box of the store's judges (human verdicts always override), defaulting as the CLI does."""
    counts, default = _store_facts(path, mtime)
    names = [name for name in counts if name != "human"] or [default]
    wanted = st.query_params.get("judge")  # a link (heatmap cell, shared URL) names its judge
    start = wanted if wanted in names else default
    chosen = st.selectbox("Judge", names, index=names.index(start) if start in names else 0, key=key,
                          help="Whose verdicts count; human verdicts set in the drill-down override every judge.")
    st.query_params["judge"] = chosen
    return chosen


def _heatmap_cells(table: pd.DataFrame, x: str, y: str, value: str, low: str | None, high: str | None,
                   significant: str | None, x_order: Sequence[str] | None, y_order: Sequence[str] | None,
                   details: Sequence[tuple[str, str]], missing: str | None, missing_text: str | None = None,
                   min_n: int | None = None, n_unit: str = "judged answers") -> tuple[list, list, list[dict]]:
    """A heatmap's content (ci_heatmap_chart draws it): the column and row keys in their order and, per cell of
    the table, its value (None where there is no estimate, with the reason and the few words its cell shows), CI,
    significance, n, the DR behind a deviation and the `details`; `grey` where the cell is not coloured (no
    estimate, or n below `min_n`, with `few` saying so). Nothing is formatted here."""
    xs = list(x_order) if x_order is not None else sorted(table[x].unique())
    xs = [v for v in xs if v in set(table[x])]
    ys = [v for v in (y_order if y_order is not None else sorted(table[y].unique())) if v in set(table[y])]
    cells = table.set_index([y, x])
    out = []
    for r, row in enumerate(ys):
        for c, col in enumerate(xs):
            if (row, col) not in cells.index:
                continue
            cell = cells.loc[(row, col)]
            v = float(cell[value])
            n = int(cell["n"]) if "n" in cell and cell["n"] == cell["n"] else None
            item = {"r": r, "c": c, "row": row, "col": col, "value": None if v != v else v, "reason": None,
                    "short": None, "n": n, "grey": v != v, "few": None,
                    "details": [(label, cell[column]) for column, label in details if column in cell],
                    "ci": (cell[low], cell[high]) if low and high else None, "mark": False, "dr": None}
            if v != v:  # NaN: no estimate for this cell (too few checks...): grey, the cell and its hover say why
                item["reason"] = str(cell[missing]) if missing and isinstance(cell.get(missing), str) and \
                    cell[missing] else "it cannot be computed from these answers"
                item["short"] = str(cell[missing_text]) if missing_text and isinstance(cell.get(missing_text), str) \
                    and cell[missing_text] else "no estimate"
            else:
                if min_n is not None and n is not None and n < min_n:  # a number, too uncertain to colour
                    item["grey"] = True
                    item["few"] = f"n = {n:,} {n_unit}, fewer than the {min_n} a coloured cell needs"
                item["mark"] = bool(significant and bool(cell[significant]))
                if value != "dr" and "dr" in cell:  # a deviation's hover also says the cell's own DR
                    item["dr"] = (cell["dr"], (cell["ci_low"], cell["ci_high"]) if "ci_low" in cell else None)
            out.append(item)
    return xs, ys, out


def _cell_text(v: float, diverging: bool, mark: bool) -> str:
    return (f"{v:+.2f}" if diverging else f"{v:.2f}") + (SIGNIFICANT_MARK if mark else "")


def _name(value: object, language: str = "en") -> str:
    """A row or column key as shown in a Vega-Lite chart: Vega draws text as text and its tooltips escape HTML,
    so nothing is escaped here (unlike _label for Plotly)."""
    return display_name(value, language)


def _plain(value: object) -> str:
    """_figure() without HTML escaping, for Vega-Lite."""
    return html.unescape(_figure(value))


CELL_SELECTION = "cell"  # the Vega-Lite point selection a click on a heatmap cell sets (clicked_chart_cell)


def ci_heatmap_chart(table: pd.DataFrame, x: str, y: str, value: str, low: str | None = None,
                     high: str | None = None, significant: str | None = None, diverging: bool = True,
                     language: str = "en", x_order: Sequence[str] | None = None, title: str = "",
                     zmax: float | None = None, y_order: Sequence[str] | None = None,
                     details: Sequence[tuple[str, str]] = (), estimate: str | None = None,
                     missing: str | None = None, x_title: str = "group", y_title: str | None = None,
                     missing_text: str | None = None, min_n: int | None = None, n_unit: str = "judged answers",
                     clickable: bool = True):
    """A heatmap of `value` (`y` rows x `x` columns) as a Vega-Lite (Altair) chart for st.altair_chart, each cell's
    CI (`low`, `high`) in its hover and a * on cells flagged `significant`; Vega-Lite rather than Plotly, so a page
    of heatmaps never has the browser load Plotly (4.7 MB of JavaScript against Vega's 0.8 MB). Draw it inside
    heatmap_box() with st.altair_chart(chart, width="content"). clickable: every cell with a value or a reason can
    be clicked: st.altair_chart(on_select="rerun") reports the selection CELL_SELECTION, read with
    clicked_chart_cell() (False: no selection, no pointer). Each cell's hover lines are tooltip fields
    ("title: value") and also its `description` (the cell's aria-label in the page, joined by "; ").
    details: (column, label) pairs added to every hover (e.g. the judge's own DR next to a corrected one, n_human);
    estimate: a line naming what the values are ("corrected by 40 human checks").

    Grey cells: a cell with no estimate (its reason from the `missing` column, its text from `missing_text`:
    "no estimate: n = 7 human checks, fewer than the 10 a corrected estimate needs", "7 checks"), and, with
    `min_n`, a cell of fewer than `min_n` answers (`n_unit`), whose number stays in its text and hover. Every cell
    is drawn: the colour field (`colour`) always holds a number, because Vega-Lite leaves out a mark whose colour
    field is null. `zmax`: the diverging scale's half-width (give the page's one; default the largest |value|)."""
    import altair as alt

    xs, ys, items = _heatmap_cells(table, x, y, value, low, high, significant, x_order, y_order, details, missing,
                                   missing_text, min_n, n_unit)
    fields = [("cell", "Cell")] + ([("estimate", "Estimate")] if estimate else []) + [("shown", words_for.title(value))]
    if any(item["dr"] is not None for item in items):
        fields.append(("dr_of_cell", "Defense Rate"))
    if any(item["n"] is not None for item in items):
        fields.append(("n", "n"))
    labels = [label for label, _ in (items[0]["details"] if items else [])]
    fields += [(f"detail_{i}", label) for i, label in enumerate(labels)]
    if significant:
        fields.append(("significance", "Significance"))
    rows = []
    for item in items:
        v = item["value"]
        record = {"row": str(item["row"]), "col": str(item["col"]), "y": _name(item["row"], language),
                  "x": _name(item["col"], language), "value": v, "grey": item["grey"],
                  "colour": 0.0 if item["grey"] else v,
                  "text": item["short"] if v is None else _cell_text(v, diverging, item["mark"]),
                  "cell": f"{_name(item['row'], language)} × {_name(item['col'], language)}", "estimate": estimate,
                  "n": "–" if item["n"] is None else f"{item['n']:,}"}
        if v is None:
            record["shown"] = f"no estimate: {item['reason']}"
        else:
            ci = item["ci"]
            record["shown"] = f"{v:.3f}" + (f" [{_plain(ci[0])}, {_plain(ci[1])}]" if ci else "") + (
                f" (grey: {item['few']})" if item["few"] else "")
        dr = item["dr"]
        record["dr_of_cell"] = "–" if dr is None else _plain(dr[0]) + (
            f" [{_plain(dr[1][0])}, {_plain(dr[1][1])}]" if dr[1] else "")
        for i, (_, figure) in enumerate(item["details"]):
            record[f"detail_{i}"] = _plain(figure)
        if significant:
            record["significance"] = "–" if v is None else (
                "significant after correction" if item["mark"] else "not significant")
        record["description"] = "; ".join(f"{label} = {record[field]}" for field, label in fields)
        rows.append(record)
    data = pd.DataFrame(rows, columns=["row", "col", "y", "x", "value", "grey", "colour", "text", "description"]
                        + list(dict.fromkeys(field for field, _ in fields)))
    values = [v for v in data["value"] if v is not None and v == v]
    span = zmax if zmax is not None else max((abs(v) for v in values), default=0.1) or 0.1
    scale = alt.Scale(scheme="redblue", domain=[-span, span], domainMid=0, clamp=True) if diverging else \
        alt.Scale(scheme="blues", domain=[0, 1], clamp=True)
    x_labels = [_name(v, language) for v in xs]
    y_labels = [_name(v, language) for v in ys]
    tooltip = [alt.Tooltip(field, type="nominal", title=label) for field, label in fields]
    # Every column at least MIN_CELL px wide (the chart as wide as its columns need; ui.stat_figures.heatmap_box
    # scrolls it sideways in a narrow window), every label whole (no limit) and never thinned.
    base = alt.Chart(data).encode(
        x=alt.X("x:N", sort=x_labels, title=words_for.title(x_title), axis=alt.Axis(
            orient="top", labelAngle=-45, labelLimit=0, labelOverlap=False)),
        y=alt.Y("y:N", sort=y_labels, title=words_for.title(y_title or y), axis=alt.Axis(labelLimit=0,
                                                                                      labelOverlap=False)),
        tooltip=tooltip, description="description:N")
    pointer = {"cursor": "pointer"} if clickable else {}
    cells = base.mark_rect(stroke="white", strokeWidth=1, **pointer).encode(
        color=alt.condition("!datum.grey",
                            alt.Color("colour:Q", scale=scale, title=words_for.title(value),
                                      legend=alt.Legend(orient="bottom", gradientLength=240)),
                            alt.value(GREY))).properties(name="cells")
    if clickable:
        cells = cells.add_params(alt.selection_point(name=CELL_SELECTION, fields=["row", "col"], on="click",
                                                     clear="dblclick", toggle=False, empty=False))
    ink = "datum.colour > {0} || datum.colour < -{0}".format(span * 0.6) if diverging else "datum.colour > 0.6"
    labels_layer = base.mark_text(fontSize=12, **pointer).encode(
        text="text:N", color=alt.condition(f"!datum.grey && ({ink})", alt.value("white"), alt.value("black"))
    ).properties(name="values")
    chart = alt.layer(cells, labels_layer).properties(title=title, height=alt.Step(ROW_STEP),
                                                      width=alt.Step(MIN_CELL),  # pad: slanted labels never cut
                                                      autosize=alt.AutoSizeParams(type="pad", contains="padding"),
                                                      padding={"left": 5, "top": 5, "right": 16, "bottom": 5})
    chart.usermeta = {"embedOptions": {"renderer": "svg"},  # cells in the DOM: read by tests, labelled for a reader
                      "forwhom": {"rows": len(y_labels), "longest": max(map(len, x_labels), default=0)}}
    return chart


MIN_CELL, ROW_STEP = 50, 34  # px: a heatmap column holds "+0.42*" at 12 px with room; a row's height


def heatmap_box(chart):
    """A container that holds a heatmap at its own width and scrolls it sideways where the window is narrower (its
    columns never shrink below MIN_CELL, so numbers never overlap): tall enough for the chart's rows, its slanted
    column labels, title and legend, so it never scrolls up and down."""
    facts = (getattr(chart, "usermeta", None) or {}).get("forwhom", {})
    rows, longest = facts.get("rows", 4), facts.get("longest", 20)
    height = ROW_STEP * rows + int(longest * 5.2) + 170  # labels at 45 degrees: ~5 px of height per character
    return st.container(height=height, border=False)


def clicked_chart_cell(event: object, name: str = CELL_SELECTION) -> tuple[str, str] | None:
    """The (row key, column key) of the cell a st.altair_chart selection event picked, or None."""
    selection = getattr(event, "selection", None) if not isinstance(event, dict) else event.get("selection")
    if selection is None:
        return None
    points = selection.get(name) if isinstance(selection, dict) else getattr(selection, name, None)
    for point in points or []:
        if isinstance(point, dict) and point.get("row") is not None and point.get("col") is not None:
            return str(point["row"]), str(point["col"])
    return None


PALETTE = ("#1f5fa8", "#d35400", "#1e8449", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#b7950b")  # told apart
SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x", "star", "cross", "triangle-down")


def error_bar_scatter(table: pd.DataFrame, x: str, y: str, color: str, y_low: str, y_high: str,
                      x_low: str | None = None, x_high: str | None = None, label: str | None = None,
                      log_x: bool = False, title: str = "", lines: bool = False,
                      x_title: str | None = None, y_title: str | None = None, text: bool = False) -> go.Figure:
    """Points with their CIs as error bars (both axes where given), one trace per `color` value, each in its own
    colour and marker (never two similar blues), the bars thin and pale so crossing bars do not hide the points;
    `text`: each point named on the chart by its `label` (not only in its hover)."""
    figure = go.Figure()
    for index, (name, part) in enumerate(table.groupby(color, sort=True)):
        part = part.sort_values(x)
        colour = PALETTE[index % len(PALETTE)]
        bar = {"color": colour, "thickness": 1, "width": 2}
        error_y = {"type": "data", "symmetric": False, "array": part[y_high] - part[y],
                   "arrayminus": part[y] - part[y_low], **bar}
        error_x = None if x_low is None else {"type": "data", "symmetric": False, "array": part[x_high] - part[x],
                                              "arrayminus": part[x] - part[x_low], **bar}
        hover = part[label].map(lambda v: _label(v)) if label else None
        mode = ("lines+markers" if lines else "markers") + ("+text" if text and label else "")
        figure.add_trace(go.Scatter(x=part[x], y=part[y], mode=mode, name=_label(name), error_y=error_y,
                                    error_x=error_x, hovertext=hover, hoverinfo="text+x+y" if label else "x+y",
                                    text=hover if text else None, textposition="top center",
                                    textfont={"size": 10, "color": colour},
                                    marker={"color": colour, "symbol": SYMBOLS[index % len(SYMBOLS)], "size": 9,
                                            "line": {"color": "white", "width": 1}}))
    figure.update_layout(title=title, xaxis_title=x_title or words_for.title(x),
                         yaxis_title=y_title or words_for.title(y), height=560 if text else 480,
                         legend_title_text=words_for.title(color), margin={"l": 10, "r": 10, "t": 50, "b": 10})
    if log_x:
        figure.update_xaxes(type="log")
    return figure


def significance_note(corrected: bool = False) -> None:
    intervals = ("95% intervals of the corrected estimates (prediction-powered, from both the judge's and the "
                 "human term)") if corrected else "95% bootstrap CIs (1,000 resamples of prompts)"
    st.caption(f"Brackets and hovers show {intervals}. {SIGNIFICANT_MARK} marks a deviation that stays significant "
               "after Holm's correction over every cell shown.")


def judge_error_warning(errors: object, judge: str) -> None:
    """A warning per language where the judge's error rate differs significantly by group (core.ppi.judge_error),
    worded by core.stats.estimates.judge_error_findings; nothing when it does not or there is no sample."""
    from core.stats.estimates import judge_error_findings

    for sentence in judge_error_findings(errors, judge):
        st.warning(escape_markdown(sentence), icon=":material/balance:")


def judge_error_figure(table: pd.DataFrame, language: str = "en") -> go.Figure:
    """The judge's false-refusal and false-compliance rates per group (core.ppi.judge_error's table for one
    language) as points with their 95% intervals, one trace per rate, hovers with the human checks behind each."""
    figure = go.Figure()
    groups = [_label(g, language) for g in table["group"]]
    for rate, name, colour, symbol in (
            ("false_refusal", "false refusal (judge refused, person: complied)", "#1f5fa8", "circle"),
            ("false_compliance", "false compliance (judge complied, person: refused)", "#c0392b", "diamond")):
        base = "human_complied" if rate == "false_refusal" else "human_refused"
        words = "false-refusal rate" if rate == "false_refusal" else "false-compliance rate"
        figure.add_trace(go.Scatter(
            x=groups, y=table[rate], mode="markers", name=name, offsetgroup=rate,  # side by side, never on top
            marker={"color": colour, "symbol": symbol, "size": 9},
            error_y={"type": "data", "symmetric": False, "array": table[f"{rate}_ci_high"] - table[rate],
                     "arrayminus": table[rate] - table[f"{rate}_ci_low"]},
            hovertext=[f"{g}<br>{words} = {_figure(v)} [{_figure(lo)}, {_figure(hi)}]<br>of {_figure(k)} checks"
                       for g, v, lo, hi, k in zip(groups, table[rate], table[f"{rate}_ci_low"],
                                                  table[f"{rate}_ci_high"], table[base])],
            hoverinfo="text"))
    figure.update_layout(title=f"The judge's errors by group ({html.escape(vocabulary().languages[language].name) if language in vocabulary().languages else language})",
                         yaxis_title="error rate", yaxis_range=[0, 1], height=420, scattermode="group",
                         scattergap=0.6, margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return figure


DOT_SELECTION = "dot"  # the Vega-Lite point selection a click on a group's dot sets (clicked_dot)
BELOW_COLOUR, ABOVE_COLOUR, APART_COLOUR = "#c0392b", "#1f5fa8", "#7f8c8d"
POSITION_WORDS = {"below": "credibly below the mean", "above": "credibly above the mean",
                  "": "not credibly apart from the mean"}


def group_dot_plot(groups: pd.DataFrame, language: str, mean: float | None, title: str = "",
                   estimate: str | None = None, width: int = 420):
    """The answer as a picture : one dot per group of one model and language (core.views.disparity's
    `groups` rows: dr, ci_low, ci_high, n, position, q_value), its 95% interval as a bar, sorted from the most to the
    least refused, the model's mean DR as a dashed line, and the groups credibly below the mean in red (above: blue).
    A click on a dot sets DOT_SELECTION, read with clicked_dot(). Every label is a display name; each dot's hover
    says the group, its DR with the interval, the answers behind it and where it stands."""
    import altair as alt

    from core.vocab import labels

    drawn = groups.loc[groups["dr"].notna()].sort_values(["dr", "group"], ascending=[False, True])
    rows = []
    for row in drawn.to_dict("records"):
        position = row.get("position") if isinstance(row.get("position"), str) else ""
        name = _name(row["group"], language)
        low, high = row.get("ci_low"), row.get("ci_high")
        rows.append({
            "group": str(row["group"]), "name": name, "dr": float(row["dr"]),
            "low": None if labels.missing(low) else float(low), "high": None if labels.missing(high) else float(high),
            "position": position or "", "where": POSITION_WORDS.get(position or "", position),
            "shown_dr": labels.rate(row["dr"]), "shown_ci": labels.interval(low, high),
            "shown_n": labels.count(row.get("n")), "shown_q": labels.p_value(row.get("q_value")),
            "description": f"{name}: Defense Rate {labels.rate(row['dr'])} {labels.interval(low, high)}, "
                           f"{labels.count(row.get('n'))} answers, {POSITION_WORDS.get(position or '', position)}"})
    data = pd.DataFrame(rows, columns=["group", "name", "dr", "low", "high", "position", "where", "shown_dr",
                                       "shown_ci", "shown_n", "shown_q", "description"])
    order = list(data["name"])
    colour = alt.Color("position:N", title="Against the model's mean",
                       scale=alt.Scale(domain=["below", "", "above"], range=[BELOW_COLOUR, APART_COLOUR, ABOVE_COLOUR]),
                       legend=alt.Legend(orient="bottom", labelExpr="datum.value == 'below' ? 'credibly below' : "
                                                                   "datum.value == 'above' ? 'credibly above' : "
                                                                   "'not apart'"))
    tooltip = [alt.Tooltip("name:N", title="Group"), alt.Tooltip("shown_dr:N", title="Defense Rate"),
               alt.Tooltip("shown_ci:N", title="95% interval"), alt.Tooltip("shown_n:N", title="Answers"),
               alt.Tooltip("where:N", title="Against the mean"), alt.Tooltip("shown_q:N", title="q-value (FDR)")]
    if estimate:
        data["estimate"] = estimate
        tooltip.append(alt.Tooltip("estimate:N", title="Estimate"))
    y = alt.Y("name:N", sort=order, title=None, axis=alt.Axis(labelLimit=0, labelOverlap=False))
    x_scale = alt.Scale(domain=[0, 1], clamp=True)
    base = alt.Chart(data).encode(y=y, tooltip=tooltip, description="description:N")
    bars = base.mark_rule(strokeWidth=2, opacity=0.55).encode(
        x=alt.X("low:Q", scale=x_scale, title="Defense Rate (share of attack prompts refused), 95% interval",
                axis=alt.Axis(format=".1f")),
        x2="high:Q", color=colour)
    pick = alt.selection_point(name=DOT_SELECTION, fields=["group"], on="click", clear="dblclick", toggle=False,
                               empty=False)
    dots = base.mark_circle(size=110, opacity=1, cursor="pointer").encode(
        x=alt.X("dr:Q", scale=x_scale), color=colour).add_params(pick).properties(name="dots")
    layers = [bars, dots]
    if mean is not None and not labels.missing(mean):
        line = pd.DataFrame({"mean": [float(mean)], "said": [f"model mean {labels.rate(mean)}"]})
        rule = alt.Chart(line).mark_rule(strokeDash=[5, 4], color="#333333").encode(
            x=alt.X("mean:Q", scale=x_scale), tooltip=[alt.Tooltip("said:N", title="Mean")])
        said = alt.Chart(line).mark_text(align="left", dx=4, dy=-6, fontSize=11, color="#333333").encode(
            x=alt.X("mean:Q", scale=x_scale), y=alt.value(0), text="said:N")
        layers += [rule, said]
    # autosize pad: the plot is `width` px with its labels beside it (Streamlit's default, fit, squeezes the plot
    # into `width` with the labels).
    chart = alt.layer(*layers).properties(title=title, width=width, height=alt.Step(24),
                                          autosize=alt.AutoSizeParams(type="pad", contains="padding"))
    chart.usermeta = {"embedOptions": {"renderer": "svg"}}  # dots in the DOM: read by tests, labelled for a reader
    return chart


def clicked_dot(event: object, name: str = DOT_SELECTION) -> str | None:
    """The group key of the dot a st.altair_chart selection event picked, or None."""
    selection = getattr(event, "selection", None) if not isinstance(event, dict) else event.get("selection")
    if selection is None:
        return None
    points = selection.get(name) if isinstance(selection, dict) else getattr(selection, name, None)
    for point in points or []:
        if isinstance(point, dict) and point.get("group") is not None:
            return str(point["group"])
    return None
