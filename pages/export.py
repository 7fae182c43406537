"""Export: the current filter as a CSV file, one row per completion with every judge's verdict and the verdict that
counts (a person's over the judge's) with who decided it.

UTF-8 with a header row and, unless unticked, the byte order mark a spreadsheet needs to read accents right; cells a
spreadsheet would read as a formula are escaped (core.files.export), since completions are untrusted text; the file name
records the filter. Works in read-only demo sessions.

The file is built when the button is clicked (a callable `data`), from plain values captured by this run, with
on_click="ignore": the click does not rerun the page, so the file Streamlit registered for this button stays valid
until it is fetched. With a rerun on click (the default), the rerun registered a new file id for the button and
dropped the old one while the browser was still fetching it, and a large export could fail with
MediaFileStorageError ("Deferred file ... not found" or "Missing file").
"""
from __future__ import annotations

import streamlit as st

from core.files.export import completion_table, csv_bytes
from core.store import Store
from ui import filters
from ui.cached import completion_page
from ui.common import dataframe, escape_markdown
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

st.metric("Rows in the file", f"{total:,}")
st.text(f"File: {file_name}")
left, right = st.columns(2)
bom = left.checkbox("For spreadsheets (byte order mark)", value=True, key=f"{PAGE}_bom",
                    help="Starts the file with the UTF-8 byte order mark, so Excel and other spreadsheets read "
                         "accents (deficiência, indígenas) right. Untick for tools that do not expect it.")
readable = right.checkbox("Readable column titles", value=False, key=f"{PAGE}_readable",
                          help="'Verdict that counts', 'Jailbreak strategy' instead of effective_verdict, strategy.")
st.caption(f"Columns: the probe's fields, the response, tokens, latency, one verdict column per judge (a person's "
           f"where one set it), the verdict that counts with judge {escape_markdown(judge)} (a person's verdict over the "
           "judge's) and "
           "who decided it. Cells starting with = + - @ are prefixed with ' so a spreadsheet shows them as text.")
if total == 0:
    st.info("No completion matches these filters: nothing to export.")
    st.stop()
if total > 100_000:
    st.caption(f"{total:,} rows: the file is built when you click, which can take a while.")


def csv_file(path: str = path, scope: dict = dict(scope), verdicts: tuple = tuple(verdicts), judge: str = judge,
             bom: bool = bom, readable: bool = readable) -> bytes:
    """The whole selection as spreadsheet-safe CSV, built only when the button is clicked (from this run's values,
    bound as defaults, so a later rerun cannot change what this button's click builds)."""
    rows = completion_table(Store(path, readonly=True), scope, verdicts, judge, readable=readable)
    return csv_bytes(rows, bom=bom)


st.download_button("Download CSV", data=csv_file, file_name=file_name, mime="text/csv", type="primary",
                   icon=":material/download:", key=f"{PAGE}_download", on_click="ignore")
st.subheader(f"First {min(PREVIEW_ROWS, total)} rows")
dataframe(preview, hide_index=True, width="stretch")
