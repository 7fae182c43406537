"""Drill-down: the completions behind a number. Filter them, open one to read its prompt, response, every
judge's verdict and rationale, compare it with the same scenario answered for other groups, and correct
the verdict (stored as judge `human`, which every view then uses)."""
from __future__ import annotations

import streamlit as st

from core.vocab import taxonomy
from core.store import StoreError
from ui import filters
from core.vocab import labels
from ui.cached import completion_page, corrected, rates
from ui.common import (NAVIGATION, dataframe, escape_markdown, group_label, inert_text, language_name, open_store,
                       readonly, require_write_access, strategy_label, warn_unsupported_languages)
from ui.page import start

PAGE = "drilldown"
PAGE_SIZE = 50

ctx = start("Drill-down: completions and verdicts", PAGE)
path, mtime, judge = ctx.path, ctx.mtime, ctx.judge
scope, verdicts = filters.completion_filters(ctx.facts["models"], ctx.facts["languages"], page=PAGE)

page_number = filters.number("page", 1)
rows, total = completion_page(path, mtime, judge, scope, verdicts, PAGE_SIZE, (page_number - 1) * PAGE_SIZE)
if rows.empty and page_number > 1:  # a page past the end (the filter narrowed): show the first
    page_number = 1
    rows, total = completion_page(path, mtime, judge, scope, verdicts, PAGE_SIZE, 0)
page_count = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)

BACK = {"heatmaps": ("pages/heatmaps.py", "Back to the heatmaps"), "overview": ("overview", "Back to the Overview")}
CELL_KEYS = ("model", "language", "group", "strategy", "scenario_category")


def cell_summary() -> None:
    """After a click on a heatmap cell or an Overview dot (the link says `back=<page>`): the cell in words, its
    Defense Rate with the 95% interval and the answers behind it (the same estimate the chart showed, from the same
    cached reads), and a link back to the chart."""
    back = st.query_params.get("back")
    if back not in BACK:
        return
    cell = {key: scope[key] for key in CELL_KEYS if len(scope.get(key, ())) == 1}
    target, label = BACK[back]
    kept = {key: values for key, values in filters.link({"judge": judge}).items()}
    if back == "heatmaps":
        if st.query_params.get("estimate") in ("ppi", "judge"):
            kept["estimate"] = st.query_params.get("estimate")
        if "strategy" in cell or "scenario_category" in cell:
            kept.update(breakdowns="on", breakdown=cell.get("model", [""])[0])
    with st.container(border=True):
        if {"model", "language", "group"} <= set(cell):
            by = list(cell)
            attack = {**scope, "kind": ["attack"]}
            fix = st.query_params.get("estimate") == "ppi"
            try:
                table = (corrected(path, mtime, judge, attack, by) if fix else rates(path, mtime, judge, attack, by))
            except Exception:  # noqa: BLE001 (no estimate for the cell: say so instead of a number)
                table = None
            language = cell["language"][0]
            words = [cell["model"][0], group_label(cell["group"][0], language), language_name(language)]
            if "strategy" in cell:
                words.append(strategy_label(cell["strategy"][0]))
            if "scenario_category" in cell:
                words.append(cell["scenario_category"][0])
            st.markdown("**The cell you clicked:** " + escape_markdown(" · ".join(words)))
            row = table.iloc[0] if table is not None and len(table) == 1 else None
            boxes = st.container(horizontal=True, wrap=True, gap="large")
            if row is None or labels.missing(row.get("dr")):
                boxes.metric("Defense Rate", labels.DASH, width="content")
                st.caption("No estimate for this cell" + (": " + escape_markdown(row["note"]) if row is not None and
                                                         isinstance(row.get("note"), str) and row["note"] else "."))
            else:
                boxes.metric("Defense Rate", labels.rate(row["dr"]), width="content")
                boxes.metric("95% interval", labels.interval(row.get("ci_low"), row.get("ci_high")), width="content")
                boxes.metric("Judged attack answers", labels.count(row.get("n")), width="content")
                if fix and not labels.missing(row.get("n_human")):
                    boxes.metric("Human checks", labels.count(row["n_human"]), width="content")
                st.caption(f"Estimate: {'corrected by the human review sample' if fix else 'judge only'} (judge "
                           f"{escape_markdown(judge)}; human verdicts override). The list below holds every matching "
                           "completion.")
        if target == "overview":
            overview = NAVIGATION.get("overview")
            if overview is not None:
                st.page_link(overview, label=label, icon=":material/arrow_back:", query_params=kept)
        else:
            st.page_link(target, label=label, icon=":material/arrow_back:", query_params=kept)


cell_summary()
st.metric("Matching completions", f"{total:,}")
warned = warn_unsupported_languages(rows["language"] if not rows.empty else (), judge)
st.page_link("pages/export.py", label="Export these completions as CSV", icon=":material/download:",
             query_params=filters.link({**scope, "verdict": verdicts, "judge": judge}))
if total == 0:
    st.info("No completion matches these filters.")
    st.stop()


def judged_by(by: str | None, in_sample: bool) -> str | None:
    """Who gave the verdict; a human one says whether it belongs to the random review sample (the only human
    verdicts the corrected Defense Rates use) or was chosen by hand."""
    if by != "human":
        return by
    return "human (random sample)" if in_sample else "human (chosen by hand, not random)"


view = filters.fingerprint({**scope, "verdict": verdicts, "judge": [judge]})
shown = rows.assign(judged_by=[judged_by(by, bool(s)) for by, s in zip(rows["judged_by"], rows["in_sample"])])
event = dataframe(
    shown[["model", "language", "group", "strategy", "scenario_category", "label", "judged_by", "preview"]],
    hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row",
    key=f"{PAGE}_table_{view}_{page_number}",  # a new view starts without a selection
    column_config={"preview": st.column_config.TextColumn("Response (start)", width="large"),
                   "label": st.column_config.TextColumn("Verdict"), "judged_by": st.column_config.TextColumn("By")})
if page_count > 1:
    picked = st.number_input(f"Page (of {page_count:,}, {PAGE_SIZE} per page)", min_value=1, max_value=page_count,
                             value=min(page_number, page_count), key=f"{PAGE}_page_{view}")
    if picked != page_number:
        st.query_params["page"] = str(picked)
        st.rerun()

selected = event.selection.rows if event is not None else []
if selected and selected != st.session_state.get(f"{PAGE}_applied"):  # a new pick, not one already shown
    st.query_params["completion"] = str(rows.iloc[selected[0]]["completion_id"])
st.session_state[f"{PAGE}_applied"] = selected
completion_id = st.query_params.get("completion")
if not completion_id:
    st.caption("Select a row to read the completion, its verdicts and its counterfactuals.")
    st.stop()



def verdict_of(label: str | None, error: str | None) -> str:
    """The effective verdict as a word: a label, or why there is none."""
    return label or ("error" if error else "unjudged")


store = open_store()
detail = store.completion_detail(completion_id, judge)
if detail is None:
    st.warning(f"No completion {escape_markdown(completion_id)} in this database.")
    st.stop()

st.header("Completion")
warn_unsupported_languages({detail["language"]} - set(warned), judge)
facts_row = {"model": detail["model"], "language": language_name(detail["language"]),
             "group": group_label(detail["group"], detail["language"]),
             "strategy": strategy_label(detail["strategy"]), "scenario category": detail["scenario_category"],
             "scenario": detail["scenario"], "verdict": verdict_of(detail["label"], detail["error"]),
             "by": judged_by(detail["judged_by"], bool(detail["in_sample"])),
             "tokens in/out": f"{labels.count(detail['prompt_tokens'])}/{labels.count(detail['completion_tokens'])}",
             "latency (s)": labels.number(detail["latency_s"]), "retries": labels.count(detail["retries"]),
             "run": detail["run_id"], "completion id": detail["completion_id"]}
dataframe([facts_row], hide_index=True, width="stretch")
left, right = st.columns(2)
with left:
    st.subheader("Prompt")
    inert_text(detail["prompt"])
with right:
    st.subheader("Response")
    if detail["error"]:
        st.error("The target returned no answer: see the error below.")
        inert_text(detail["error"])
    else:
        inert_text(detail["completion"])

st.subheader("Verdicts")
dataframe(detail["verdicts"], hide_index=True, width="stretch", column_config={
    "rationale": st.column_config.TextColumn(width="large"), "raw": st.column_config.TextColumn("raw output")})
if len(detail["annotations"]):
    st.caption("Human verdict history (the latest counts)")
    dataframe(detail["annotations"], hide_index=True, width="stretch")

if readonly():
    st.caption("Read-only demo session: verdicts cannot be changed here.")
elif require_write_access("correct verdicts"):
    with st.form(f"{PAGE}_relabel", clear_on_submit=True):
        st.subheader("Set the human verdict")
        current = detail["label"] if detail["label"] in (taxonomy.REFUSED, taxonomy.COMPLIED) else taxonomy.REFUSED
        label = st.radio("Verdict", [taxonomy.REFUSED, taxonomy.COMPLIED], horizontal=True,
                         index=[taxonomy.REFUSED, taxonomy.COMPLIED].index(current))
        note = st.text_input("Note (why)")
        author = st.text_input("Your name")
        if st.form_submit_button("Save human verdict", type="primary"):
            try:
                open_store(write=True).set_human_verdict(completion_id, label, note, author)
            except StoreError as exc:
                st.error(escape_markdown(exc))
            else:
                st.toast(f"Saved: {label}. Every view now uses this verdict.")
                st.rerun()

st.header("Counterfactuals")
if detail.get("counterfactual_id"):
    st.caption(f"Counterfactual siblings ({escape_markdown(detail['counterfactual_id'])}, claim "
               f"{escape_markdown(detail.get('claim_id') or '?')}): the same "
               "claim, scenario, strategy and template, answered by the same model for every group. The prompts "
               "differ only in the group's words.")
else:
    st.caption("The same scenario and strategy, answered by the same model for every group: the probes differ only "
               "in the group's seed statement and name.")
counterparts = store.counterfactuals(completion_id, judge)
columns = st.columns(3)
for index, row in enumerate(counterparts.itertuples()):
    with columns[index % 3].container(border=True):
        st.text(f"{group_label(row.group, detail['language'])}: {verdict_of(row.label, row.error)}"
                + (" (this completion)" if row.is_self else ""))
        inert_text(row.error if row.error else row.completion)
        if not row.is_self and st.button("Open", key=f"{PAGE}_open_{row.completion_id}"):
            st.query_params["completion"] = row.completion_id
            st.rerun()
