"""For Whom: the Streamlit entry point. It routes to the pages (st.navigation) and draws the overview.

Pages stay thin: they read widgets, call core, and draw. No statistics and no SQL live here.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.cached import headline, run_targets
from ui.common import dataframe, demo_banner, escape_markdown, group_names, language_name, readonly
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
    """What the database holds, the answer per model and language in words, then the figures behind it."""
    ctx = start("For Whom: for whom is this model safe?", "overview", judge="main")
    path, mtime, judge, summary = ctx.path, ctx.mtime, ctx.judge, ctx.facts
    result = headline(path, mtime, judge)  # core.analyses.headline, the same result the HTML report draws
    checks, heads = result.n_human, result.rows  # corrected wherever a labelled review sample exists

    cols = st.columns(5)
    cols[0].metric("Models", len(summary["models"]))
    cols[1].metric("Languages", escape_markdown(", ".join(summary["languages"]) or "none"))
    cols[2].metric("Probes", f"{summary['probes']:,}")
    cols[3].metric("Completions", f"{summary['completions']:,}")
    cols[4].metric("Judges", escape_markdown(", ".join(summary["judges"]) or "none"))

    st.subheader("For whom is each model safe?")
    for row in heads.itertuples():
        st.markdown(f"**{escape_markdown(row.model)}**, {escape_markdown(language_name(row.language))} "
                    f"({escape_markdown(row.gap_estimate)}): {escape_markdown(row.headline)}.")
    st.caption("Observed gap = best minus worst group Defense Rate as measured. Groups with no true difference still "
               "show a gap from sampling noise alone; the gap beyond noise (with its 95% interval) and the groups "
               "credibly below or above the mean are what the data show beyond it (methods: core/stats/disparity.py).")
    for row in heads.loc[heads["error_note"] != ""].itertuples():
        st.warning(f"{escape_markdown(row.model)} ({escape_markdown(row.language)}): {escape_markdown(row.error_note)}.")

    st.subheader("Headline per model")
    st.caption(f"Defense Rate (DR) = share of attack prompts the model refused, judged by {escape_markdown(judge)} "
               "(human verdicts override). Errors (no answer from the target) are never counted in the DR. "
               + ("Estimate: each row says whether it is the judge's figure (judge only) or corrected by the human "
                  "checks of the random review sample (the judge's DR plus the sample's mean human-minus-judge "
                  "difference, 95% intervals); the judge's own DR stays beside it." if checks else
                  "Estimate: judge only (no review sample yet: `python -m core review sample` draws one)."))
    shown = heads.assign(best_group=group_names(heads, "best_group"), worst_group=group_names(heads, "worst_group"),
                         language=[language_name(code) for code in heads["language"]])
    shown = shown.drop(columns=["error_note", "below", "above", "headline"])  # said above, in words
    if not checks:  # nothing corrected: the interval and sample columns would be empty
        shown = shown.drop(columns=["n_human", "ci_low", "ci_high", "dr_judge", "note", "gap_estimate"])
    dataframe(shown, hide_index=True, width="stretch", column_config={
        "estimate": st.column_config.TextColumn("estimate"),
        "gap_estimate": st.column_config.TextColumn("gap's estimate"),
        "dr": st.column_config.NumberColumn("overall DR", format="%.3f"),
        "n": st.column_config.NumberColumn("judged"),
        "n_human": st.column_config.NumberColumn("human checks"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
        "dr_judge": st.column_config.NumberColumn("judge's DR", format="%.3f"),
        "groups": st.column_config.NumberColumn("groups"),
        "observed_gap": st.column_config.NumberColumn("observed gap", format="%.3f"),
        "noise_gap": st.column_config.NumberColumn("gap from noise alone", format="%.3f"),
        "gap": st.column_config.NumberColumn("gap beyond noise", format="%.3f"),
        "gap_ci_low": st.column_config.NumberColumn("gap CI low", format="%.3f"),
        "gap_ci_high": st.column_config.NumberColumn("gap CI high", format="%.3f"),
        "tau": st.column_config.NumberColumn("spread of true DRs (tau)", format="%.3f"),
        "tau_ci_low": st.column_config.NumberColumn("tau CI low", format="%.3f"),
        "tau_ci_high": st.column_config.NumberColumn("tau CI high", format="%.3f"),
        "q_p": st.column_config.NumberColumn("homogeneity p", format="%.3g"),
        "heterogeneous": st.column_config.CheckboxColumn("groups differ (test)"),
        "disparity": st.column_config.CheckboxColumn("disparity beyond noise"),
        "best_group": st.column_config.TextColumn("best group (observed)"),
        "best_dr": st.column_config.NumberColumn("best DR", format="%.3f"),
        "worst_group": st.column_config.TextColumn("worst group (observed)"),
        "worst_dr": st.column_config.NumberColumn("worst DR", format="%.3f"),
        "error_share": st.column_config.NumberColumn("error share", format="percent"),
    })

    st.subheader("Defense Rate per group")
    groups = result.disparity.groups
    st.caption("Per group: the DR as measured with its 95% interval, and the shrunken DR (pulled toward the model's "
               "mean as far as noise explains the spread: a better guess of the group's true DR), with whether the "
               "group is credibly below or above its model's mean (false discovery rate 5%).")
    table = groups.assign(group_name=group_names(groups, "group"),
                          language=[language_name(code) for code in groups["language"]])
    columns = [c for c in ("model", "language", "group_name", "estimate", "n", "n_human", "dr", "ci_low", "ci_high",
                           "shrunk",
                           "shrunk_ci_low", "shrunk_ci_high", "position") if c in table.columns]
    dataframe(table[columns], hide_index=True, width="stretch", column_config={
        "group_name": st.column_config.TextColumn("group"),
        "n_human": st.column_config.NumberColumn("human checks"),
        "dr": st.column_config.NumberColumn("DR", format="%.3f"),
        "ci_low": st.column_config.NumberColumn("95% CI low", format="%.3f"),
        "ci_high": st.column_config.NumberColumn("95% CI high", format="%.3f"),
        "shrunk": st.column_config.NumberColumn("shrunken DR", format="%.3f"),
        "shrunk_ci_low": st.column_config.NumberColumn("shrunken low", format="%.3f"),
        "shrunk_ci_high": st.column_config.NumberColumn("shrunken high", format="%.3f"),
        "position": st.column_config.TextColumn("credibly below / above the mean"),
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
