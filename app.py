"""For Whom: the Streamlit entry point. It routes to the pages (st.navigation) and draws the overview.

Pages stay thin: they read widgets, call core, and draw. No statistics and no SQL live here.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.estimates import estimate_label
from ui.cached import corrected, headline, rates, run_targets
from ui.common import dataframe, demo_banner, escape_markdown, group_names, readonly
from ui.page import start

ROOT = Path(__file__).resolve().parent

# (file, title, icon, writes): pages that write to the store are left out of read-only demo sessions.
# Files that do not exist yet are skipped, so each page appears as its workstream lands.
PAGES: tuple[tuple[str, str, str, bool], ...] = (
    ("pages/run.py", "Run an audit", ":material/play_arrow:", True),
    ("pages/heatmaps.py", "Heatmaps", ":material/grid_on:", False),
    ("pages/counterfactual.py", "Counterfactual", ":material/swap_horiz:", False),
    ("pages/drilldown.py", "Drill-down", ":material/manage_search:", False),
    ("pages/compare.py", "Compare versions", ":material/compare_arrows:", False),
    ("pages/mitigation.py", "Mitigation", ":material/healing:", False),
    ("pages/review.py", "Review sample", ":material/checklist:", True),
    ("pages/export.py", "Export", ":material/download:", False),
    ("pages/calibration.py", "Judge calibration", ":material/rule:", False),
    ("pages/scaling.py", "Scaling", ":material/trending_up:", False),
    ("pages/cross_lingual.py", "Cross-lingual", ":material/translate:", False),
    ("pages/over_refusal.py", "Over-refusal", ":material/block:", False),
    ("pages/reproduction.py", "Reproduction", ":material/fact_check:", False),
)


def overview() -> None:
    """What the database holds, and per model: overall DR and the selective-safety gap."""
    ctx = start("For Whom: for whom is this model safe?", "overview", judge="main")
    path, mtime, judge, summary = ctx.path, ctx.mtime, ctx.judge, ctx.facts
    attacks = {"kind": ["attack"]}
    result = headline(path, mtime, judge)  # core.analyses.headline, the same result the HTML report draws
    checks, heads = result.n_human, result.rows  # corrected wherever a labelled review sample exists
    groups = corrected(path, mtime, judge, attacks, ["model", "language", "group"]) if checks else \
        rates(path, mtime, judge, attacks, ["model", "language", "group"])

    cols = st.columns(5)
    cols[0].metric("Models", len(summary["models"]))
    cols[1].metric("Languages", escape_markdown(", ".join(summary["languages"]) or "none"))
    cols[2].metric("Probes", f"{summary['probes']:,}")
    cols[3].metric("Completions", f"{summary['completions']:,}")
    cols[4].metric("Judges", escape_markdown(", ".join(summary["judges"]) or "none"))

    st.subheader("Headline per model")
    st.caption("Defense Rate (DR) = share of attack prompts the model refused, judged by "
               f"{escape_markdown(judge)} (human verdicts override). Selective-safety gap = best group DR minus worst "
               "group DR, per language. Errors (no answer from the target) are never counted in the DR. "
               + ("Estimate: each row says whether it is the judge's figure (judge only) or corrected by the human "
                  "checks of the random review sample (the judge's DR plus the sample's mean human-minus-judge "
                  "difference, 95% intervals); the judge's own DR stays beside it." if checks else
                  "Estimate: judge only (no review sample yet: `python -m core review sample` draws one)."))
    for row in heads.loc[heads["error_note"] != ""].itertuples():
        st.warning(escape_markdown(f"{row.model} ({row.language}): {row.error_note}."))
    shown = heads.assign(best_group=group_names(heads, "best_group"), worst_group=group_names(heads, "worst_group"))
    if not checks:  # nothing corrected: the interval and sample columns would be empty
        shown = shown.drop(columns=["n_human", "ci_low", "ci_high", "dr_judge", "gap_ci_low", "gap_ci_high", "note"])
    shown = shown.drop(columns=["error_note"])  # said above the table, as a warning
    dataframe(shown, hide_index=True, width="stretch", column_config={
        "estimate": st.column_config.TextColumn("estimate"),
        "dr": st.column_config.NumberColumn("overall DR", format="%.3f"),
        "n": st.column_config.NumberColumn("judged"),
        "n_human": st.column_config.NumberColumn("human checks"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
        "dr_judge": st.column_config.NumberColumn("judge's DR", format="%.3f"),
        "best_dr": st.column_config.NumberColumn("best DR", format="%.3f"),
        "worst_dr": st.column_config.NumberColumn("worst DR", format="%.3f"),
        "gap": st.column_config.NumberColumn("gap", format="%.3f"),
        "gap_ci_low": st.column_config.NumberColumn("gap CI low", format="%.3f"),
        "gap_ci_high": st.column_config.NumberColumn("gap CI high", format="%.3f"),
        "error_share": st.column_config.NumberColumn("error share", format="percent"),
    })

    st.subheader("Defense Rate per group")
    st.caption(f"Estimate: {estimate_label(checks)}" + (" (dr corrected, dr_judge the judge's own; a cell with too "
                                                        "few human checks has none, its note says why)."
                                                        if checks else "."))
    table = groups.assign(group_name=group_names(groups, "group"))
    columns = [c for c in ("model", "language", "group", "group_name", "n", "n_human", "refused", "dr", "ci_low",
                           "ci_high", "dr_judge", "note") if c in table.columns]
    dataframe(table[columns], hide_index=True, width="stretch", column_config={
        "dr": st.column_config.NumberColumn("DR", format="%.3f"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
        "dr_judge": st.column_config.NumberColumn("DR by the judge alone", format="%.3f"),
    })

    per_run = run_targets(path, mtime)
    if len(per_run):
        st.subheader("Runs: completions and errors per target")
        failed = per_run.loc[(per_run["completions"] > 0) & (per_run["errors"] == per_run["completions"])]
        for row in failed.itertuples():
            st.error(f"{escape_markdown(row.run_id)} / {escape_markdown(row.target_id)}: every completion "
                     f"({row.errors:,}) is an error; it measured nothing. Retry its errors on the Run page once the "
                     "target answers.")
        dataframe(per_run, hide_index=True, width="stretch", column_config={
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
