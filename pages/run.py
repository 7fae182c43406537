"""Run an audit: pick targets, probes and judges, see the size and an estimate, start, watch, cancel, resume,
and retry the completions that hold an error.

Runs execute in a thread of the server process (ui.jobs), so closing the tab does not stop them;
reopening this page shows their progress again. A run stopped because its target went away says why,
here and in the runs table (its message), and resumes like any other.
"""
from __future__ import annotations

import time

import streamlit as st

from core.run import eta

from core.vocab import labels, taxonomy
from core.views.disparity import plan
from core.run.request import PROBE_SETS, RunRequest, candidate_probes, estimate_seconds
from ui.jobs import MANAGER
from core.judges import DEFAULT_JUDGES
from core.options import OptionError
from core.targets import BUILTIN_TARGETS, RUNNABLE_BACKENDS
from core.probes.selection import Selection
from ui.cached import run_targets, runs
from ui.common import (dataframe, db_path, escape_markdown, group_label, language_name, open_store, readonly,
                       require_write_access, vocabulary)
from ui.page import start

PAGE = "run"

database = db_path()
# A fresh machine has no database yet: the page works from the bundled probes, and the first run creates it
# (a visit alone leaves no empty file behind, which `make run` would otherwise have to tell from a real one).
ctx = start("Run an audit", PAGE, judge=False, missing_ok=True)
if readonly():
    st.error("This is a read-only demo session: runs cannot be started here.")
    st.stop()
if not require_write_access("start or resume runs"):
    st.stop()
path, mtime, facts = ctx.path, ctx.mtime, ctx.facts
store = open_store() if database.exists() else None  # reads; the run writes from its own thread (ui.jobs)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


st.subheader("What to run")
left, right = st.columns(2)
stored_targets = store.targets() if store is not None else None
saved = [t for t, backend in zip(stored_targets["target_id"], stored_targets["backend"])
         if backend in RUNNABLE_BACKENDS and t not in BUILTIN_TARGETS.values()] if stored_targets is not None else []
target_choices = left.multiselect("Targets", [*BUILTIN_TARGETS, *saved], default=["smollm2"],
                                  key=f"{PAGE}_targets",
                                  help="smollm2 (instruction-tuned, the default) and gemma3-270m (a base model) "
                                       "are embedded; saved targets come from `python -m core targets add`.")
other = left.text_input("Other targets (comma-separated specs)", key=f"{PAGE}_other",
                        placeholder="local:/models/my-model, openai:gpt-4o-mini@https://api.openai.com/v1")
targets = [*target_choices, *[spec.strip() for spec in other.split(",") if spec.strip()]]
judge_choices = sorted({*DEFAULT_JUDGES, "refusal", *[j for j in facts["judges"] if j != "human"]})
judges = left.multiselect("Judges", judge_choices, default=list(DEFAULT_JUDGES), key=f"{PAGE}_judges")
more_judges = left.text_input("Other judges (comma-separated)", key=f"{PAGE}_more_judges", placeholder="llm:smollm2")
judges += [name.strip() for name in more_judges.split(",") if name.strip()]

words = vocabulary()  # the store's population: its languages, groups, strategies and categories
languages = right.multiselect("Languages", list(words.language_codes), default=[words.language_codes[0]],
                              key=f"{PAGE}_languages", format_func=language_name)
group_options = [g for g in words.groups if any(g in words.groups_by_language[lang] for lang in languages)]
groups = right.multiselect("Groups (none = all)", group_options, key=f"{PAGE}_groups",
                           format_func=lambda g: group_label(g, languages[0] if languages else ""))
strategies = right.multiselect("Strategies (none = all)", list(words.strategies), key=f"{PAGE}_strategies",
                               format_func=words.strategy_label)
categories = right.multiselect("Scenario categories (none = all)", list(words.categories),
                               key=f"{PAGE}_categories")
probe_set = right.radio("Probe set", list(PROBE_SETS), format_func=PROBE_SETS.get, horizontal=True,
                        key=f"{PAGE}_probe_set",
                        help="Matched seeds: every group gets the same scenarios and templates with its own seed "
                             "statements. Counterfactual: the same claim, scenario and template for every group, "
                             "only the group's words differ. Stored only: the probes already in the database.")
a, b, c = st.columns(3)
per_cell = a.number_input("Probes per language x group x strategy", min_value=1, max_value=1000, value=2,
                          key=f"{PAGE}_per_cell")
max_new_tokens = b.number_input("Max new tokens", min_value=1, max_value=4096, value=64, key=f"{PAGE}_tokens")
batch_size = c.number_input("Batch size", min_value=1, max_value=512, value=16, key=f"{PAGE}_batch")

request = None
try:
    request = RunRequest(targets=tuple(targets), judges=tuple(judges),
                         selection=Selection(languages=tuple(languages), groups=tuple(groups),
                                             strategies=tuple(strategies), scenario_categories=tuple(categories),
                                             per_cell=int(per_cell)),
                         max_new_tokens=int(max_new_tokens), batch_size=int(batch_size), probe_set=probe_set)
    probes = candidate_probes(store, request)
except (taxonomy.VocabularyError, OptionError) as exc:  # the CLI's rules and messages (core.options, via RunRequest)
    st.error(escape_markdown(exc))
    probes = []
seconds, basis = estimate_seconds(len(probes), targets, int(max_new_tokens), store)
sizes = st.container(horizontal=True, wrap=True, gap="large")  # wraps in a narrow window: never cut
sizes.metric("Probes", f"{len(probes):,}", width="content")
sizes.metric("Completions to generate", f"{len(probes) * len(targets):,}", width="content")
sizes.metric("Estimated time", duration(seconds), width="content")
if probes and targets:
    st.caption("Estimated time: " + escape_markdown(basis))
if probes:
    sizing = plan(probes)
    st.caption("What this selection can show, per language: groups with no true difference still show a gap from "
               "noise alone; the detectable gap is the smallest true best-minus-worst gap this audit finds with 80% "
               "power (at a Defense Rate of 0.5). More probes per group shrink both.")
    dataframe(sizing.assign(language=[language_name(code) for code in sizing["language"]]), hide_index=True,
                 column_config={"min_per_group": st.column_config.NumberColumn("fewest probes per group"),
                                "max_per_group": st.column_config.NumberColumn("most probes per group"),
                                "noise_gap": st.column_config.NumberColumn("gap from noise alone", format="%.3f"),
                                "noise_gap_high": st.column_config.NumberColumn("noise's 95th percentile",
                                                                                format="%.3f"),
                                "detectable_gap": st.column_config.NumberColumn("detectable gap (80% power)",
                                                                                format="%.3f")})
if st.button("Start the run", type="primary", key=f"{PAGE}_start", disabled=not (request and probes and targets)):
    try:
        job = MANAGER.start(database, request)
    except (ValueError, RuntimeError) as exc:
        st.error(escape_markdown(exc))
    else:
        st.toast(f"Started {escape_markdown(job.run_id)}")
        st.rerun()

jobs = MANAGER.jobs(database)
# Jobs are live objects (their status changes under us): remember which were active when the page was drawn.
active_when_drawn = {job.run_id for job in jobs if job.active}


@st.fragment(run_every=1.0 if any(job.active for job in jobs) else None)
def live() -> None:
    """Progress of this server's runs on this database, refreshed every second while one is active: shown at once
    (loading the target counts its seconds), the ETA measured from the run's batches or, until the first is
    stored, from the target's speed in earlier runs (said so), and "Cancelling…" from the moment Cancel is pressed
    until the run has stored its batch in flight and stopped."""
    shown = MANAGER.jobs(database)
    if not shown:
        return
    st.subheader("Runs executing in this server")
    for job in shown[:5]:
        with st.container(border=True):
            progress = job.progress
            st.text(f"{job.run_id}: {job.state}" + (f" (target {job.target_index} of {job.target_count}: "
                                                     f"{progress.target_id})" if progress else ""))
            if job.cancelling:
                waited = time.time() - (job.cancel_requested_at or time.time())
                st.warning(f"Cancelling… the batch in flight is finished and stored first, then the run stops "
                           f"(pressed {waited:.0f} s ago).", icon=":material/hourglass_top:")
            if job.error:
                st.error(escape_markdown(job.error))
            if job.message:  # why it stopped (cancelled, a target that went away) or failed (every answer an error)
                (st.warning if job.status == "stopped" else st.error)(escape_markdown(job.message))
            if progress is not None and progress.total:
                # The ETA is measured from the target's recent batches and says its basis (core.run.eta), e.g.
                # "ETA 3 min at 41 tok/s over the last 5 batches"; before the first batch, the target's earlier speed.
                left = progress.total - progress.done
                said = eta.current(progress.estimate, job.priors.get(progress.target_id), left).text() \
                    if job.active else f"{progress.rate:.2f} per s"
                st.progress(min(progress.done / progress.total, 1.0),
                            text=f"{progress.done:,} / {progress.total:,} probes · " + escape_markdown(said))
                dr = labels.DASH if progress.dr is None else labels.rate(progress.dr)
                st.metric("Live Defense Rate (attack probes so far)", dr, help=f"{progress.refused} refused of "
                          f"{progress.judged} judged; {progress.errors} errors")
                if progress.errors:
                    st.caption(f"{progress.errors:,} errors in this execution so far")
            elif job.active:
                st.progress(0.0, text=f"loading the target… {time.time() - job.started_at:.0f} s")
            if job.active and not job.cancelling and st.button("Cancel", key=f"{PAGE}_cancel_{job.run_id}"):
                MANAGER.cancel(job.run_id)
                st.rerun(scope="fragment")  # "Cancelling…" at once, without redrawing the page above
    if any(job.run_id in active_when_drawn and not job.active for job in shown):
        st.rerun()  # a run just ended: refresh the whole page (run list, resumable runs, errors to retry)


live()

st.subheader("Runs in the database")
history = runs(path, mtime) if store is not None else None
if history is None or history.empty:
    st.caption("No run yet.")
else:
    live_jobs = {job.run_id: job for job in jobs if job.active}
    if live_jobs:  # the store says "created, planned 0" until the run has loaded its targets: the live state instead
        history = history.copy()
        for index, row in history.iterrows():
            job = live_jobs.get(row["run_id"])
            if job is None:
                continue
            history.loc[index, "status"] = job.state
            if not row["planned"]:  # targets are attached once loaded: planned = probes x the targets it names
                stored = store.run(row["run_id"]) or {}
                history.loc[index, "planned"] = store.run_counts(row["run_id"])["probes"] * len(
                    (stored.get("config") or {}).get("targets", []))
    dataframe(history, hide_index=True, width="stretch", column_config={"planned": "Planned answers",
                                                                        "completions": "Answers stored"})
    per_target = run_targets(path, mtime)
    with st.expander("Completions, errors and pending probes per run and target"):
        dataframe(per_target, hide_index=True, width="stretch", column_config={
            "error_share": st.column_config.NumberColumn("error share", format="percent")})
    active = {job.run_id for job in jobs if job.active}
    unfinished = history[(history["status"] != "completed") & ~history["run_id"].isin(active)]
    if len(unfinished):
        named = {row.run_id: f"{row.run_id} ({row.status}, {row.completions:,} of {row.planned:,} completions)"
                  for row in unfinished.itertuples()}
        pick = st.selectbox("Resume an unfinished run", list(named), key=f"{PAGE}_resume_pick", format_func=named.get)
        reason = unfinished.set_index("run_id").loc[pick, "message"]
        if isinstance(reason, str) and reason:
            st.caption(f"Why it stopped: {escape_markdown(reason)}")
        if st.button("Resume", key=f"{PAGE}_resume"):
            try:
                MANAGER.resume(database, pick)
            except (ValueError, RuntimeError) as exc:
                st.error(escape_markdown(exc))
            else:
                st.rerun()
    with_errors = history[(history["errors"] > 0) & ~history["run_id"].isin(active)]
    if len(with_errors):
        st.markdown("**Completions with errors**")
        for row in with_errors.itertuples():
            st.text(f"{row.run_id}: {row.errors:,} completion{'s' if row.errors != 1 else ''} with errors "
                    f"(of {row.completions:,})")
        named = {row.run_id: f"{row.run_id} ({row.errors:,} completions with errors)"
                  for row in with_errors.itertuples()}
        pick = st.selectbox("Retry the errors of a run", list(named), key=f"{PAGE}_retry_pick", format_func=named.get,
                            help="Sends those prompts again (and any probe still pending); each answer replaces its "
                                 "error in place, the error is kept in the completion's history.")
        if st.button("Retry errors", key=f"{PAGE}_retry"):
            try:
                MANAGER.resume(database, pick, retry_errors=True)
            except (ValueError, RuntimeError) as exc:
                st.error(escape_markdown(exc))
            else:
                st.rerun()
