"""Export: the current filter as a CSV file, one row per completion with every judge's verdict.

UTF-8 with a header row; cells a spreadsheet would read as a formula are escaped (core.export), since
completions are untrusted text; the file name records the filter. Works in read-only demo sessions.
"""
from __future__ import annotations

import io

import streamlit as st

from core.export import write_csv
from core.store import Store
from ui import filters
from ui.cached import completion_page
from ui.common import dataframe
from ui.page import start

PAGE = "export"
PREVIEW_ROWS = 20

ctx = start("Export: completions with their verdicts", PAGE)
path, mtime, judge = ctx.path, ctx.mtime, ctx.judge
scope, verdicts = filters.completion_filters(ctx.facts["models"], ctx.facts["languages"], page=PAGE)
preview, total = completion_page(path, mtime, judge, scope, verdicts, PREVIEW_ROWS, 0)
recorded = {**scope, "verdict": verdicts}
if verdicts:
    recorded["judge"] = [judge]  # a verdict filter means this judge's verdicts (human ones override)
file_name = filters.file_stem(recorded) + ".csv"


def csv_file() -> bytes:
    """The whole selection as spreadsheet-safe CSV, built only when the button is clicked."""
    buffer = io.BytesIO()
    write_csv(Store(path, readonly=True).completion_rows(scope, verdicts, judge), buffer)
    return buffer.getvalue()


st.metric("Rows in the file", f"{total:,}")
st.text(f"File: {file_name}")
st.caption("Columns: the probe's fields, the response, tokens, latency and one verdict_<judge> column per judge "
           "(verdict_human where a person set one). Cells starting with = + - @ are prefixed with ' so a "
           "spreadsheet shows them as text.")
if total == 0:
    st.info("No completion matches these filters: nothing to export.")
    st.stop()
if total > 100_000:
    st.caption(f"{total:,} rows: the file is built when you click, which can take a while.")
st.download_button("Download CSV", data=csv_file, file_name=file_name, mime="text/csv", type="primary",
                   icon=":material/download:", key=f"{PAGE}_download")
st.subheader(f"First {min(PREVIEW_ROWS, total)} rows")
dataframe(preview, hide_index=True, width="stretch")
