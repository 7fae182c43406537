"""For Whom: the Streamlit entry point. It routes to the pages (st.navigation) and draws the overview.

Pages stay thin: they read widgets, call core, and draw. No statistics and no SQL live here.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.metrics import headline
from ui.common import content_warning, demo_banner, group_names, readonly
from ui.cached import counts, rates, run_targets, summary as store_summary
from ui.stat_figures import judge_choice, require_store

ROOT = Path(__file__).resolve().parent

# (file, title, icon, writes): pages that write to the store are left out of read-only demo sessions.
# Files that do not exist yet are skipped, so each page appears as its workstream lands.
PAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("pages/run.py", "Run an audit", ":material/play_arrow:", True),
    ("pages/heatmaps.py", "Heatmaps", ":material/grid_on:", False),
    ("pages/drilldown.py", "Drill-down", ":material/manage_search:", False),
    ("pages/export.py", "Export", ":material/download:", False),
    ("pages/calibration.py", "Judge calibration", ":material/rule:", False),
    ("pages/scaling.py", "Scaling", ":material/trending_up:", False),
    ("pages/cross_lingual.py", "Cross-lingual", ":material/translate:", False),
    ("pages/over_refusal.py", "Over-refusal", ":material/block:", False),
    ("pages/reproduction.py", "Reproduction", ":material/fact_check:", False),
)


@st.cache_data(show_spinner="Reading the database…", max_entries=8)
def _headline(path: str, mtime: float, judge: str) -> pd.DataFrame:
    return headline(counts(path, mtime, judge, {"kind": ["attack"]}, ["model", "language", "group"]))


def overview() -> None:
    """What the database holds, and per model: overall DR and the selective-safety gap."""
    st.title("For Whom: for whom is this model safe?")
    content_warning()
    path, mtime = require_store()
    judge = judge_choice(path, mtime, key="overview_judge")
    summary, heads = store_summary(path, mtime), _headline(path, mtime, judge)
    groups = rates(path, mtime, judge, {"kind": ["attack"]}, ["model", "language", "group"])

    cols = st.columns(5)
    cols[0].metric("Models", len(summary["models"]))
    cols[1].metric("Languages", ", ".join(summary["languages"]) or "none")
    cols[2].metric("Probes", f"{summary['probes']:,}")
    cols[3].metric("Completions", f"{summary['completions']:,}")
    cols[4].metric("Judges", ", ".join(summary["judges"]) or "none")

    st.subheader("Headline per model")
    st.caption(f"Defense Rate (DR) = share of attack prompts the model refused, judged by `{judge}` (human "
               "verdicts override). Selective-safety gap = best group DR minus worst group DR, per language. "
               "Errors (no answer from the target) are never counted in the DR.")
    for row in heads.loc[heads["note"] != ""].itertuples():
        st.warning(f"{row.model} ({row.language}): {row.note}.")
    shown = heads.assign(best_group=group_names(heads, "best_group"), worst_group=group_names(heads, "worst_group"))
    st.dataframe(shown, hide_index=True, width="stretch", column_config={
        "dr": st.column_config.NumberColumn("overall DR", format="%.3f"),
        "n": st.column_config.NumberColumn("judged"),
        "best_dr": st.column_config.NumberColumn("best DR", format="%.3f"),
        "worst_dr": st.column_config.NumberColumn("worst DR", format="%.3f"),
        "gap": st.column_config.NumberColumn("gap", format="%.3f"),
        "error_share": st.column_config.NumberColumn("error share", format="percent"),
    })

    st.subheader("Defense Rate per group")
    table = groups.assign(group_name=group_names(groups, "group"))
    columns = [c for c in ("model", "language", "group", "group_name", "n", "refused", "dr", "ci_low", "ci_high")
               if c in table.columns]
    st.dataframe(table[columns], hide_index=True, width="stretch", column_config={
        "dr": st.column_config.NumberColumn("DR", format="%.3f"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
    })

    per_run = run_targets(path, mtime)
    if len(per_run):
        st.subheader("Runs: completions and errors per target")
        failed = per_run.loc[(per_run["completions"] > 0) & (per_run["errors"] == per_run["completions"])]
        for row in failed.itertuples():
            st.error(f"{row.run_id} / {row.target_id}: every completion ({row.errors:,}) is an error; it measured "
                     "nothing. Retry its errors on the Run page once the target answers.")
        st.dataframe(per_run, hide_index=True, width="stretch", column_config={
            "error_share": st.column_config.NumberColumn("error share", format="percent")})


def navigation() -> list:
    """The pages this session may open: all that exist, less the writing ones in a read-only session."""
    pages = [st.Page(overview, title="Overview", icon=":material/balance:", default=True)]
    for file, title, icon, writes in PAGES:
        if (ROOT / file).exists() and not (writes and readonly()):
            pages.append(st.Page(file, title=title, icon=icon))
    return pages


st.set_page_config(page_title="For Whom: safety audit", page_icon=":material/balance:", layout="wide")
page = st.navigation(navigation())
if readonly():
    st.sidebar.caption("DEMO · read-only")
    demo_banner()
page.run()
