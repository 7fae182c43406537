"""The HTML report's charts: Vega-Lite specs rendered to static SVG by vl-convert (no browser, no script), embedded
in the page so the report reads offline, prints and archives as one file.

Every chart draws numbers the report's tables already hold (core.views and core.stats.rates results): nothing is
computed here but positions. Field names in the specs are the words a reader sees (axis titles, legends and the
SVG's aria-labels come from them). Each SVG's element ids are prefixed with the chart's own id, so two charts in
one page never share a gradient or a clip path.
"""
from __future__ import annotations

import html
import itertools
import re
from typing import Any

import pandas as pd

from core.vocab import labels, taxonomy

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
BELOW, ABOVE, APART = "credibly below the mean", "credibly above the mean", "not credibly apart"
POSITION_COLOURS = {BELOW: "#c0392b", ABOVE: "#1f5fa8", APART: "#7f7f7f"}
# Arial's metrics everywhere: vl-convert lays labels out with Liberation Sans (metric-compatible with Arial), and
# a browser draws them with Arial, Helvetica or Liberation Sans, so no label is cut where the layout left room.
FONT = "'Liberation Sans', Arial, Helvetica, sans-serif"
CONFIG = {"font": FONT, "view": {"stroke": "#ddd"}, "axis": {"labelFontSize": 11, "titleFontSize": 11},
          "legend": {"labelFontSize": 11, "titleFontSize": 11, "orient": "bottom", "direction": "horizontal"},
          "title": {"fontSize": 13, "anchor": "start", "subtitleFontSize": 11, "subtitleColor": "#555"}}
_ids = itertools.count(1)


class ChartUnavailable(RuntimeError):
    """vl-convert-python is not installed: the report says so where the chart would be."""


def svg(spec: dict[str, Any], label: str) -> str:
    """A Vega-Lite spec as inline SVG: ids made unique to this chart, scalable to its container, labelled for
    screen readers with `label`."""
    try:
        import vl_convert as vlc
    except ImportError as exc:  # pinned in requirements.txt; a stripped install still gets the tables
        raise ChartUnavailable("charts need vl-convert-python (pip install -r requirements.txt)") from exc
    drawn = vlc.vegalite_to_svg({"$schema": SCHEMA, "config": CONFIG, "background": "white", **spec})
    prefix = f"c{next(_ids)}-"
    drawn = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', drawn)
    drawn = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", drawn)
    drawn = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', drawn)
    return drawn.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)


def figure(spec: dict[str, Any], label: str, caption: str) -> str:
    """A chart with its caption, or a note where charts cannot be drawn here."""
    try:
        drawn = svg(spec, label)
    except ChartUnavailable as exc:
        return f"<p class='note'>{html.escape(label)}: chart not drawn ({html.escape(str(exc))}).</p>"
    return f"<figure>{drawn}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (NaN as None, numpy scalars as Python ones)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({k: (None if labels.missing(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def _position(value: Any) -> str:
    return {"below": BELOW, "above": ABOVE}.get(value if isinstance(value, str) else "", APART)


def group_dots(groups: pd.DataFrame, mean: float, model: str, language: str, estimate: str,
               words: taxonomy.Taxonomy) -> dict[str, Any]:
    """One model in one language: a dot per group (its DR) with its 95% interval, sorted by DR, the model's mean
    as a dashed line, groups credibly below the mean in red and above in blue."""
    data = pd.DataFrame({
        "Group": [words.group_name(g, language) for g in groups["group"]],
        "Defense Rate": groups["dr"].astype(float), "95% CI low": groups["ci_low"].astype(float),
        "95% CI high": groups["ci_high"].astype(float), "Answers": groups["n"].astype(int),
        "Against the mean": [_position(p) for p in groups["position"]]})
    data = data.sort_values(["Defense Rate", "Group"], ascending=[False, True])
    order = list(data["Group"])
    colour = {"field": "Against the mean", "type": "nominal", "title": None,
              "scale": {"domain": list(POSITION_COLOURS), "range": list(POSITION_COLOURS.values())}}
    y = {"field": "Group", "type": "nominal", "sort": order, "title": None,
         "axis": {"labelLimit": 190, "minExtent": 150}}
    x = {"field": "Defense Rate", "type": "quantitative", "scale": {"domain": [0, 1]},
         "title": "Defense Rate (share of attack prompts refused)", "axis": {"format": ".1f", "tickCount": 5}}
    name = labels.language_name(language, words)
    return {
        "title": {"text": f"{model}, {name}", "subtitle": f"mean {labels.rate(mean)} (dashed line); {estimate}"},
        "width": 290, "height": {"step": 16},
        "layer": [
            {"data": {"values": _records(data)}, "layer": [
                {"mark": {"type": "rule", "strokeWidth": 2},
                 "encoding": {"y": y, "x": {**x, "field": "95% CI low"}, "x2": {"field": "95% CI high"},
                              "color": colour}},
                {"mark": {"type": "point", "filled": True, "size": 60, "opacity": 1},
                 "encoding": {"y": y, "x": x, "color": colour,
                              "tooltip": [{"field": f} for f in ("Group", "Defense Rate", "95% CI low", "95% CI high",
                                                                 "Answers", "Against the mean")]}}]},
            {"data": {"values": [{"Mean": float(mean)}]},
             "mark": {"type": "rule", "strokeDash": [4, 3], "color": "#333"},
             "encoding": {"x": {"field": "Mean", "type": "quantitative", "title": None}}}],
    }


def heatmap(cells: pd.DataFrame, language: str, words: taxonomy.Taxonomy, value: str = "dr",
            marks: pd.Series | None = None, missing_text: pd.Series | None = None) -> dict[str, Any]:
    """Groups x models for one language: each cell's Defense Rate as colour and as text (with * where `marks` is
    true); a cell without an estimate grey, with `missing_text` in it."""
    part = cells.reset_index(drop=True)
    order = [words.group_name(g, language) for g in words.groups_by_language.get(language, ())
             if g in set(part["group"])]
    order += sorted({words.group_name(g, language) for g in part["group"]} - set(order))
    values = part[value].astype(float)
    text = [labels.rate(v) + ("*" if marks is not None and bool(marks.iloc[i]) else "") if not labels.missing(v)
            else (str(missing_text.iloc[i]) if missing_text is not None else labels.DASH)
            for i, v in enumerate(values)]
    data = pd.DataFrame({"Model": part["model"], "Group": [words.group_name(g, language) for g in part["group"]],
                         "Defense Rate": values, "Shown": text, "Answers": part["n"].astype(int),
                         "Colour": values.fillna(-1.0)})
    models = sorted(set(data["Model"]))
    step = int(min(170, max(60, 6.5 * max(len(m) for m in models) + 12)))  # room for the longest model name
    x = {"field": "Model", "type": "nominal", "sort": models, "title": None,
         "axis": {"orient": "top", "labelAngle": 0, "labelLimit": step - 6}}
    y = {"field": "Group", "type": "nominal", "sort": order, "title": None, "axis": {"labelLimit": 220}}
    return {
        "title": {"text": f"{labels.language_name(language, words)}: Defense Rate per group and model"},
        "data": {"values": _records(data)}, "width": {"step": step}, "height": {"step": 22},
        "encoding": {"x": x, "y": y},
        "layer": [
            {"mark": {"type": "rect", "stroke": "white"},
             "encoding": {"color": {"condition": {"test": "datum['Colour'] < 0", "value": "#dddddd"},
                                    "field": "Defense Rate", "type": "quantitative",
                                    "scale": {"domain": [0, 1], "scheme": "blues"},
                                    "legend": {"title": "Defense Rate", "format": ".1f", "gradientLength": 160}},
                          "tooltip": [{"field": "Model"}, {"field": "Group"}, {"field": "Shown", "title": "Defense Rate"},
                                      {"field": "Answers"}]}},
            {"mark": {"type": "text", "fontSize": 11},
             "encoding": {"text": {"field": "Shown"},
                          "color": {"condition": {"test": "datum['Colour'] > 0.6", "value": "white"},
                                    "value": "#222"}}}],
    }


def strategies(table: pd.DataFrame, words: taxonomy.Taxonomy) -> dict[str, Any]:
    """Defense Rate per jailbreak strategy with its 95% interval, a colour per model, a panel per language."""
    data = pd.DataFrame({
        "Language": [labels.language_name(c, words) for c in table["language"]], "Model": table["model"],
        "Strategy": [words.strategy_label(s) for s in table["strategy"]], "Defense Rate": table["dr"].astype(float),
        "95% CI low": table["ci_low"].astype(float), "95% CI high": table["ci_high"].astype(float),
        "Answers": table["n"].astype(int)})
    y = {"field": "Strategy", "type": "nominal", "title": None, "axis": {"labelLimit": 220}}
    x = {"field": "Defense Rate", "type": "quantitative", "scale": {"domain": [0, 1]},
         "title": "Defense Rate (share of attack prompts refused)", "axis": {"format": ".1f"}}
    colour = {"field": "Model", "type": "nominal", "scale": {"scheme": "tableau10"}}
    offset = {"field": "Model", "type": "nominal"}
    return {
        "title": {"text": "Defense Rate per jailbreak strategy"},
        "data": {"values": _records(data)},
        "facet": {"row": {"field": "Language", "type": "nominal", "title": None, "header": {"labelFontSize": 12,
                                                                                          "labelAngle": 0,
                                                                                          "labelAlign": "left",
                                                                                          "labelOrient": "top"}}},
        "spec": {"width": 440, "height": {"step": 10 * max(1, data["Model"].nunique()) + 8}, "layer": [
            {"mark": {"type": "rule", "strokeWidth": 2},
             "encoding": {"y": y, "yOffset": offset, "x": {**x, "field": "95% CI low"}, "x2": {"field": "95% CI high"},
                          "color": colour}},
            {"mark": {"type": "point", "filled": True, "size": 50, "opacity": 1},
             "encoding": {"y": y, "yOffset": offset, "x": x, "color": colour,
                          "tooltip": [{"field": f} for f in ("Model", "Strategy", "Defense Rate", "95% CI low",
                                                             "95% CI high", "Answers")]}}]},
        "resolve": {"scale": {"y": "independent"}},
    }


def trade_off(points: pd.DataFrame, words: taxonomy.Taxonomy) -> dict[str, Any]:
    """Per model and language: the Defense Rate on attack prompts against the over-refusal rate on benign control
    requests (both with their intervals where they have one). Top left is best: refuses attacks, helps the rest."""
    data = pd.DataFrame({
        "Model": points["model"], "Language": [labels.language_name(c, words) for c in points["language"]],
        "Defense Rate": points["dr"].astype(float), "Over-refusal rate": points["over_refusal"].astype(float),
        "Over-refusal 95% CI low": points["or_ci_low"].astype(float),
        "Over-refusal 95% CI high": points["or_ci_high"].astype(float)})
    data["Label"] = [f"{m} ({lang})" for m, lang in zip(data["Model"], data["Language"])]
    x = {"field": "Over-refusal rate", "type": "quantitative", "scale": {"domain": [0, 1]},
         "title": "Over-refusal rate (share of benign requests refused)", "axis": {"format": ".1f"}}
    y = {"field": "Defense Rate", "type": "quantitative", "scale": {"domain": [0, 1]},
         "title": "Defense Rate (share of attack prompts refused)", "axis": {"format": ".1f"}}
    colour = {"field": "Model", "type": "nominal", "scale": {"scheme": "tableau10"}}
    return {
        "title": {"text": "Safety and over-refusal",
                  "subtitle": "top left is best: refuses attacks, helps with benign requests"},
        "data": {"values": _records(data)}, "width": 440, "height": 320,
        "layer": [
            {"mark": {"type": "rule", "strokeWidth": 1.5},
             "encoding": {"y": y, "x": {**x, "field": "Over-refusal 95% CI low"},
                          "x2": {"field": "Over-refusal 95% CI high"}, "color": colour}},
            {"mark": {"type": "point", "filled": True, "size": 70, "opacity": 1},
             "encoding": {"x": x, "y": y, "color": colour, "shape": {"field": "Language", "type": "nominal"},
                          "tooltip": [{"field": f} for f in ("Model", "Language", "Defense Rate", "Over-refusal rate")]}},
            {"mark": {"type": "text", "align": "left", "dx": 7, "dy": -7, "fontSize": 10},
             "encoding": {"x": x, "y": y, "text": {"field": "Label"}}}],
    }

