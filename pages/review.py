"""Review sample: people label the random review sample, one completion at a time, so that every Defense
Rate can be corrected for the judge's errors (core/ppi/review_sample.py says why the sample must be random, core/ppi/
how it corrects). Prompt and response are untrusted text and shown as plain text only; the judge's verdict
is hidden unless asked for, so it does not anchor the person. Labels are stored as judge `human` with the
annotator's name (Store.set_human_verdict), the same as a correction on the Drill-down page.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.vocab import taxonomy
from core.ppi.review_sample import ReviewError
from core.store import StoreError
from ui.cached import runs
from ui.common import (dataframe, escape_markdown, group_label, inert_text, language_name, open_store, readonly,
                       require_write_access, strategy_label)
from ui.page import start

PAGE = "review"
NAME_KEY = f"{PAGE}_annotator"
SAVED_NAME = f"_{PAGE}_annotator_saved"  # kept when the widget is not drawn (another page, a rerun)
SHORTCUTS = {taxonomy.REFUSED: "1", taxonomy.COMPLIED: "2", "unsure": "3", "skip": "4", "undo": "u"}  # C, R: Streamlit's
HISTORY = f"{PAGE}_history"  # this session's actions, newest last: what Undo takes back
SKIPPED = f"{PAGE}_skipped"  # completion ids skipped in this session: they come back after the rest

ctx = start("Review sample: human checks", PAGE, runs=False)  # a sample is a run's
store = open_store()
progress = store.review_progress()


def progress_table(rows: pd.DataFrame) -> pd.DataFrame:
    """stratum, completions, sampled, labelled and unsure per stratum, for display."""
    return pd.DataFrame({
        "stratum": [f"{r.model} · {language_name(r.language)} · {group_label(r.group, r.language)} · {r.kind}"
                    for r in rows.itertuples()],
        "completions": rows["completions"], "sampled": rows["sampled"], "labelled": rows["labelled"],
        "unsure": rows["unsure"] if "unsure" in rows else 0})


def draw_form() -> None:
    """Draw or enlarge a run's sample (the same call as `python -m core review sample`)."""
    history = runs(ctx.path, ctx.mtime)
    if history.empty:
        st.caption("No run in this database yet.")
        return
    with st.form(f"{PAGE}_draw"):
        run_id = st.selectbox("Run", list(history["run_id"]), key=f"{PAGE}_draw_run")
        mode = st.radio("Size", ["per stratum", "fraction of each stratum"], horizontal=True, key=f"{PAGE}_draw_mode")
        per_cell = st.number_input("Completions per stratum", min_value=1, value=20, step=1, key=f"{PAGE}_draw_n")
        fraction = st.number_input("Fraction (rounded up, so every stratum gets one)", min_value=0.001,
                                   max_value=1.0, value=0.05, step=0.01, format="%.3f", key=f"{PAGE}_draw_f")
        seed = st.number_input("Seed", min_value=0, value=0, step=1, key=f"{PAGE}_draw_seed")
        judges = [name for name in store.judge_counts() if name not in ("human", "refusal")]
        how = st.selectbox("Where to draw", ["at random", *[f"where {name} is unsure" for name in judges]],
                           key=f"{PAGE}_draw_how", help="Where a judge that gives a probability (encoder:, average:, "
                           "learned:) is unsure, each completion is drawn with its own chance and every label is "
                           "weighted by it: the same expected number of labels, narrower corrected intervals. "
                           "Only as a run's first sample, or drawn anew.")
        replace = st.checkbox("Draw anew (replace the run's sample; human verdicts are kept)", key=f"{PAGE}_draw_replace")
        if st.form_submit_button("Draw"):
            try:
                result = open_store(write=True).draw_review_sample(
                    run_id, per_cell=int(per_cell) if mode == "per stratum" else None,
                    fraction=float(fraction) if mode != "per stratum" else None, seed=int(seed), replace=replace,
                    by_uncertainty=judges[[f"where {name} is unsure" for name in judges].index(how)]
                    if how != "at random" else None)
            except (ReviewError, StoreError) as exc:
                st.error(escape_markdown(exc))
            else:
                st.toast(f"{result['added']} completions added: {result['sampled']} of {result['completions']} sampled")
                st.rerun()


if readonly():
    st.info("Read-only demo session: nothing can be labelled here.")
    if len(progress):
        dataframe(progress_table(progress), hide_index=True, width="stretch")
    st.stop()
if not require_write_access("label the review sample"):
    st.stop()

with st.expander("Draw or enlarge a review sample", expanded=progress.empty):
    st.caption("A stratified random sample of a run's completions (strata: model x language x group x probe kind). "
               "Enlarging draws more from the rest of each stratum, which keeps it random. Drawn where a judge is "
               "unsure, labels go where the judge is likely wrong; the corrected estimates weight each one.")
    draw_form()
if progress.empty:
    st.info("No review sample yet: draw one above, or with `python -m core review sample --run-id RUN "
            "--fraction 0.05 --seed 0`.")
    st.stop()

sampled_runs = sorted(progress.loc[progress["sampled"] > 0, "run_id"].unique())
left, middle, right = st.columns(3)
run_id = left.selectbox("Run", sampled_runs, key=f"{PAGE}_run")
mine = progress.loc[progress["run_id"] == run_id]
if NAME_KEY not in st.session_state:
    st.session_state[NAME_KEY] = st.session_state.get(SAVED_NAME, "")
annotator = middle.text_input("Your name (stored with every label)", key=NAME_KEY).strip()
st.session_state[SAVED_NAME] = annotator
scope = {}
with right.popover("Only some strata"):
    for name, label in (("model", "Models"), ("language", "Languages"), ("group", "Groups")):
        values = sorted(mine[name].unique())
        picked = st.multiselect(label, values, key=f"{PAGE}_{name}_{run_id}",
                                format_func=group_label if name == "group" else str, placeholder="all")
        if picked:
            scope[name] = picked

shown = mine
for name, values in scope.items():
    shown = shown.loc[shown[name].isin(values)]
done, total = int(shown["labelled"].sum()), int(shown["sampled"].sum())
st.progress(done / total if total else 1.0, text=f"{done:,} of {total:,} sampled completions labelled")


def label(completion_id: str, verdict: str) -> None:
    """Button callback: the completion it was drawn with (not whatever heads the queue when the click lands).
    `verdict` refused or complied stores a human verdict; "unsure" takes the item out of the queue unlabelled
    (counted, never used as a label). Either can be undone (undo)."""
    note = st.session_state.get(f"{PAGE}_note_{completion_id}", "")
    author = str(st.session_state.get(NAME_KEY, "")).strip()
    try:
        writer = open_store(write=True)
        previous = writer.human_verdict(completion_id)
        if verdict == "unsure":
            writer.mark_unsure(completion_id, note, author=author)
        else:
            writer.set_human_verdict(completion_id, verdict, note, author=author)
    except StoreError as exc:
        st.session_state[f"{PAGE}_error"] = str(exc)
    else:
        st.session_state.setdefault(HISTORY, []).append({"completion_id": completion_id, "previous": previous,
                                                        "action": verdict})
        st.session_state[SKIPPED] = [c for c in st.session_state.get(SKIPPED, []) if c != completion_id]
        st.session_state[f"{PAGE}_saved"] = "Marked unsure: left out of the labels." if verdict == "unsure" else \
            f"Saved: {verdict}."


def undo() -> None:
    """Take back this session's last label or "unsure": the item's verdict is what it was before (none: the item
    is back at the head of the queue)."""
    history = st.session_state.get(HISTORY, [])
    if not history:
        return
    last = history.pop()
    try:
        open_store(write=True).undo_review(last["completion_id"], last["previous"],
                                           author=str(st.session_state.get(NAME_KEY, "")).strip())
    except StoreError as exc:
        history.append(last)
        st.session_state[f"{PAGE}_error"] = str(exc)
    else:
        st.session_state[f"{PAGE}_saved"] = f"Undone: {last['action']}."


def skip(completion_id: str) -> None:
    """Put the item at the end of this session's queue: it comes back once the rest is done."""
    skipped = st.session_state.setdefault(SKIPPED, [])
    if completion_id not in skipped:
        skipped.append(completion_id)


if f"{PAGE}_error" in st.session_state:
    st.error(escape_markdown(st.session_state.pop(f"{PAGE}_error")))
if f"{PAGE}_saved" in st.session_state:
    st.toast(escape_markdown(st.session_state.pop(f"{PAGE}_saved")))

unsure = int(shown["unsure"].sum()) if "unsure" in shown else 0
if unsure:
    st.caption(f"{unsure:,} marked unsure: left out of the labels (the corrected estimates never use them) and "
               "counted here; Undo, or a verdict set in the Drill-down, takes one back.")
history = st.session_state.get(HISTORY, [])
if history:
    st.button(f"Undo the last label ({history[-1]['action']}) (U)", key=f"{PAGE}_undo", on_click=undo,
              shortcut=SHORTCUTS["undo"], icon=":material/undo:")
skipped = [c for c in st.session_state.get(SKIPPED, [])]
queue = store.review_queue(run_id, limit=len(skipped) + 1, filters=scope, judge=ctx.judge)
ahead = queue.loc[~queue["completion_id"].isin(skipped)]
if queue.empty:
    st.success("Every sampled completion of this selection is labelled" + (
        f", but for {unsure:,} marked unsure." if unsure else "."))
else:
    if ahead.empty:  # only skipped items are left: they come back, in the order they were skipped
        st.session_state[SKIPPED] = []
        ahead = queue
    item = ahead.iloc[0]
    st.subheader(f"Queue item {done + unsure + 1:,} of {total:,}")
    st.text(f"{item['model']} · {language_name(item['language'])} · {group_label(item['group'], item['language'])} · "
            f"{strategy_label(item['strategy'])} · {item['kind']}")
    st.caption("Label in queue order where you can: the queue is in random order, so whatever part is done stays "
               "a random sample. Skip puts an item at the end (it comes back once the rest is done); Unsure takes "
               "it out unlabelled (counted, never used as a label). Did the model refuse the request, or comply "
               "with it?")
    prompt, response = st.columns(2)
    with prompt:
        st.markdown("**Prompt**")
        inert_text(item["prompt"])
    with response:
        st.markdown("**Response**")
        inert_text(item["completion"])
    if st.toggle("Show the judge's verdict", key=f"{PAGE}_show_judge",
                 help="Hidden by default so that it does not sway your label."):
        st.text(f"{ctx.judge}: {item['judge_label'] or 'no verdict'}")
    st.text_input("Note (optional)", key=f"{PAGE}_note_{item['completion_id']}")
    if not annotator:
        st.caption("Enter your name above to label.")
    buttons = st.columns(4)
    for column, verdict in zip(buttons, (taxonomy.REFUSED, taxonomy.COMPLIED, "unsure")):
        column.button(f"{verdict.capitalize()} ({SHORTCUTS[verdict]})", key=f"{PAGE}_{verdict}",
                      type="primary" if verdict == taxonomy.REFUSED else "secondary", shortcut=SHORTCUTS[verdict],
                      disabled=not annotator, on_click=label, args=(item["completion_id"], verdict),
                      width="stretch")
    buttons[3].button(f"Skip ({SHORTCUTS['skip']})", key=f"{PAGE}_skip", shortcut=SHORTCUTS["skip"],
                      on_click=skip, args=(item["completion_id"],), width="stretch",
                      help="Comes back at the end of the queue.")

st.subheader("Progress per stratum")
dataframe(progress_table(shown), hide_index=True, width="stretch")
