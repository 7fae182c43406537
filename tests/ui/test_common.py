"""Text from outside is never Markdown (issue 27), without a browser: ui.common.escape_markdown shows any text
literally, ui.common.safe_cells escapes a table's formula cells as the Export page does, and no page draws outside
text past them (no st.dataframe, unsafe_allow_html or st.html of its own). tests/browser/test_inert.py checks the
pages in Chromium."""
from __future__ import annotations

import ast
import html
import re

import pandas as pd
import pytest

from core.files.export import neutralise_formula
from tests.fixtures.paths import ROOT
from tests.fixtures.hostile_db import FORMULAS, payload
from ui.common import escape_markdown, safe_cells

HOSTILE = [
    payload("http://127.0.0.1:9", "field"),
    "**bold** _it_ ~~gone~~ `code` $x^2$ :red[red] :material/warning: &lt; &amp; &#x41;",
    "# heading\n- item\n1. first\n> quote\n\n---\ntext\n===\n| a | b |\n|---|---|\n| 1 | 2 |",
    "www.example.com user@example.com https://example.com/x?a=1&b=2 [ref]: http://example.com",
    "\\![x](http://e/x) a\\\\b trailing\\",
    "<script>alert(1)</script><!-- c --><a href='http://e'>x</a>",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_itself(text):
    markdown_it = pytest.importorskip("markdown_it")
    md = markdown_it.MarkdownIt("commonmark", {"linkify": False}).enable(["table", "strikethrough"])
    for line in text.split("\n"):  # a line at a time: paragraphs and breaks are layout, not content
        rendered = md.render(escape_markdown(line)).strip()
        assert not re.search(r"<(?!/?p>)", rendered), rendered  # nothing but the paragraph: no tag formed
        shown = html.unescape(rendered.removeprefix("<p>").removesuffix("</p>"))
        assert shown == line.strip()


def test_escape_markdown_leaves_no_unescaped_markup():
    escaped = escape_markdown(HOSTILE[0])
    assert re.search(r"(?<!\\)[\[\]()<>!:]", escaped) is None
    assert escape_markdown(None) == "" and escape_markdown(3) == "3" and escape_markdown("plain words") == "plain words"


def test_safe_cells_escape_formulas_and_carriage_returns_as_the_export_does():
    frame = pd.DataFrame({"text": [*FORMULAS, "plain", None], "n": range(len(FORMULAS) + 2)})
    safe = safe_cells(frame)
    assert list(frame["text"][:len(FORMULAS)]) == list(FORMULAS)  # the caller's frame is untouched
    for original, shown in zip(FORMULAS, safe["text"]):
        assert shown == neutralise_formula(original.replace("\r", "\n"))
        assert "\r" not in shown and not shown.startswith(("=", "+", "-", "@", "\t"))
    assert safe["text"].iloc[-2] == "plain" and pd.isna(safe["text"].iloc[-1])
    assert list(safe["n"]) == list(frame["n"])
    assert safe_cells([{"a": "=1", "b": 2}]).to_dict("records") == [{"a": "'=1", "b": 2}]
    indexed = safe_cells(pd.DataFrame({"v": [1]}, index=["@risk"]))
    assert list(indexed.index) == ["'@risk"]


def _calls(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def test_pages_draw_outside_text_only_through_the_helpers():
    """Every table goes through ui.common.dataframe (its cells made safe for the toolbar's CSV download), and no
    page, ui module or app.py lets HTML through."""
    files = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "ui").glob("*.py"))]
    found = []
    for path in files:
        for call in _calls(path):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            where = f"{path.relative_to(ROOT)}:{call.lineno}"
            receiver = getattr(getattr(call.func, "value", None), "id", "")
            if isinstance(call.func, ast.Attribute) and path.name != "common.py" and (
                    name in ("dataframe", "data_editor") or (name == "table" and receiver == "st")):
                found.append(f"{where}: .{name}( past ui.common.dataframe")
            if name == "html" and isinstance(call.func, ast.Attribute):
                found.append(f"{where}: st.html")
            if any(k.arg == "unsafe_allow_html" for k in call.keywords):
                found.append(f"{where}: unsafe_allow_html")
    assert found == []
