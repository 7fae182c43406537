"""Reading the dashboard's Vega-Lite heatmaps (ui.stat_figures.ci_heatmap_chart) back as the numbers they draw.

AppTest hands over a chart as its Vega-Lite spec (JSON) with its data as Arrow datasets; these helpers return the
columns and rows in the order the chart's axes sort them, the value matrix (None for an empty cell) and each
cell's hover as the lines its tooltip shows ("title = value"), keyed by the cell's (row key, column key): the
keys a click on that cell sends to the page.
"""
from __future__ import annotations

import json

import pyarrow as pa

from core.vocab.labels import title


def spec_and_data(element) -> tuple[dict, list[dict]]:
    """The spec and the rows of the (single) dataset of an AppTest `vega_lite_chart` element."""
    proto = element.proto
    spec = json.loads(proto.spec)
    assert len(proto.datasets) == 1, "one dataset per heatmap"
    table = pa.ipc.open_stream(proto.datasets[0].data.data).read_all()
    return spec, table.to_pylist()


def heatmap(element) -> dict:
    """x (column labels), y (row labels), z (values, None where empty), hover by (row, col) key, the spec."""
    spec, rows = spec_and_data(element)
    cells = next(layer for layer in spec["layer"] if layer["mark"]["type"] == "rect")
    encoding = cells["encoding"]
    x, y = encoding["x"]["sort"], encoding["y"]["sort"]
    z = [[None] * len(x) for _ in y]
    hover = {}
    for row in rows:
        value = row["value"]
        z[y.index(row["y"])][x.index(row["x"])] = None if value is None or value != value else value
        hover[(row["row"], row["col"])] = "\n".join(
            f"{tip['title']} = {row[tip['field']]}" for tip in encoding["tooltip"])
    return {"x": x, "y": y, "z": z, "hover": hover, "spec": spec, "title": spec.get("title"),
            "text": {(row["row"], row["col"]): row["text"] for row in rows},
            "rows": {(row["row"], row["col"]): row for row in rows}}


def drawn_by_vega(figure: dict) -> set[tuple[str, str]]:
    """The cells whose rectangle Vega-Lite draws: it leaves out (filters) a row whose colour field is null or NaN
    (its default `invalid: "filter"`), so a cell without a number on the colour scale must still carry one."""
    cells = next(layer for layer in figure["spec"]["layer"] if layer["mark"]["type"] == "rect")
    color = cells["encoding"]["color"]
    field = color.get("field") or color["condition"]["field"]
    return {key for key, row in figure["rows"].items()
            if isinstance(row.get(field), (int, float)) and row[field] == row[field]}


def heatmaps(app) -> list[dict]:
    """Every Vega-Lite heatmap of an AppTest page, in page order."""
    return [heatmap(element) for element in app.get("vega_lite_chart")]


_CELLS_JS = """(i) => {
  const chart = document.querySelectorAll('[data-testid="stVegaLiteChart"]')[i];
  return [...chart.querySelectorAll('.cells_marks path')].map(p => {
    const r = p.getBoundingClientRect();
    return {label: p.getAttribute('aria-label'), fill: p.getAttribute('fill'), x: r.x + r.width / 2,
            y: r.y + r.height / 2};
  });
}"""


def rendered_heatmap(page, index: int = 0, value: str = "dr") -> dict:
    """The `index`-th heatmap as the browser drew it (SVG): each cell's hover lines from its aria-label (titled in
    words: "Cell", `value` by core.vocab.labels.title, "Defense Rate"), its
    place on screen, and from those the column and row labels in drawn order (left to right, top to bottom) and
    the `value` matrix (None where the cell has no estimate) and each cell's fill colour. Cells are keyed by (row
    label, column label)."""
    chart = page.locator('[data-testid="stVegaLiteChart"]').nth(index)
    chart.locator(".cells_marks path").first.wait_for()
    cells = {}
    for item in page.evaluate(_CELLS_JS, index):
        fields = dict(part.split(" = ", 1) for part in item["label"].split("; "))
        row, col = fields["Cell"].split(" × ")
        shown = fields[title(value)]
        cells[(row, col)] = {"hover": item["label"].replace("; ", "\n"), "centre": (item["x"], item["y"]),
                             "fill": item["fill"],
                             "value": None if shown.startswith("no estimate") else float(shown.split()[0])}
    xs = sorted({col for _, col in cells}, key=lambda c: min(v["centre"][0] for (_, k), v in cells.items() if k == c))
    ys = sorted({row for row, _ in cells}, key=lambda r: min(v["centre"][1] for (k, _), v in cells.items() if k == r))
    z = [[cells[(r, c)]["value"] if (r, c) in cells else None for c in xs] for r in ys]
    return {"x": xs, "y": ys, "z": z, "cells": cells}


def tooltip_at(page, centre: tuple[float, float]) -> str:
    """Move the mouse onto a point of a chart and return the text of the tooltip Vega shows there."""
    page.mouse.move(*centre)
    tip = page.locator(".vg-tooltip.visible")
    tip.wait_for()
    return tip.inner_text()
