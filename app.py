"""For Whom: the Streamlit entry point. It routes to the pages (st.navigation) and draws the overview.

Pages stay thin: they read widgets, call core, and draw. No statistics and no SQL live here.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.stats.estimates import JUDGE_ONLY
from ui import filters
from ui.cached import headline, run_targets
from ui.common import NAVIGATION, dataframe, demo_banner, escape_markdown, language_name, readonly
from ui.page import start
from ui.stat_figures import DOT_SELECTION, clicked_dot, group_dot_plot

ROOT = Path(__file__).resolve().parent

# (file, title, icon, writes): pages that write to the store are left out of read-only demo sessions.
# A page whose file is missing is skipped (a trimmed checkout still starts).
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
    """What the database holds, the answer per model and language in words and as a dot plot of its groups, then
    the figures behind it (tables in words, core.vocab.labels' titles)."""
    ctx = start("For Whom: for whom is this model safe?", "overview", judge="main")
    path, mtime, judge, summary = ctx.path, ctx.mtime, ctx.judge, ctx.facts
    result = headline(path, mtime, judge)  # core.views.headline, the same result the HTML report draws
    checks, heads = result.n_human, result.rows  # corrected wherever a labelled review sample exists

    facts = st.container(horizontal=True, wrap=True, gap="large")  # wraps on a narrow window: never cut ("en…")
    facts.metric("Models", len(summary["models"]), width="content")
    facts.metric("Languages", escape_markdown(", ".join(language_name(c) for c in summary["languages"]) or "none"),
                 width="content")
    facts.metric("Probes", f"{summary['probes']:,}", width="content")
    facts.metric("Completions", f"{summary['completions']:,}", width="content")
    facts.metric("Judges", len(summary["judges"]), width="content")
    if summary["judges"]:  # names can be long (average:data/judges/...): plain text that wraps, never cut
        st.text("Judges in this database: " + ", ".join(summary["judges"]))

    st.subheader("For whom is each model safe?")
    groups = result.disparity.groups
    for index, row in enumerate(heads.itertuples()):
        st.markdown(f"**{escape_markdown(row.model)}**, {escape_markdown(language_name(row.language))} "
                    f"({escape_markdown(row.gap_estimate)}): {escape_markdown(row.headline)}.")
        mine = groups.loc[(groups["model"] == row.model) & (groups["language"] == row.language)]
        if mine["dr"].notna().any():
            chart = group_dot_plot(mine, row.language, row.dr, estimate=row.estimate,
                                   title=f"{row.model}, {language_name(row.language)}: Defense Rate per group")
            event = st.altair_chart(chart, on_select="rerun", selection_mode=DOT_SELECTION,
                                    key=f"overview_dots_{index}", width="content")
            group = clicked_dot(event)
            if group is not None:
                st.switch_page("pages/drilldown.py", query_params=filters.link(
                    {"model": row.model, "group": group, "language": row.language, "kind": "attack",
                     "judge": judge, "back": "overview", "estimate": "judge" if row.estimate == JUDGE_ONLY else "ppi"}))
    st.caption("Each dot is one group's Defense Rate (share of attack prompts refused) with its 95% interval; the "
               "dashed line is the model's mean. Red: the group is credibly below the mean (false discovery rate "
               "5%); blue: credibly above; grey: not apart. Click a dot to read that group's completions. "
               "Observed gap = best minus worst group Defense Rate as measured. Groups with no true difference still "
               "show a gap from sampling noise alone; the gap beyond noise (with its 95% interval) and the groups "
               "credibly below or above the mean are what the data show beyond it (methods: core/stats/disparity.py).")
    for row in heads.loc[heads["error_note"] != ""].itertuples():
        st.warning(f"{escape_markdown(row.model)} ({escape_markdown(language_name(row.language))}): "
                   f"{escape_markdown(row.error_note)}.")

    st.subheader("Headline per model")
    st.caption(f"Defense Rate (DR) = share of attack prompts the model refused, judged by {escape_markdown(judge)} "
               "(human verdicts override). Errors (no answer from the target) are never counted in the DR. "
               + ("Estimate: each row says whether it is the judge's figure (judge only) or corrected by the human "
                  "checks of the random review sample (the judge's DR plus the sample's mean human-minus-judge "
                  "difference, 95% intervals); the judge's own DR stays beside it." if checks else
                  "Estimate: judge only (no review sample yet: `python -m core review sample` draws one)."))
    shown = heads.drop(columns=["error_note", "below", "above", "headline"])  # said above, in words
    if not checks:  # nothing corrected: the interval and sample columns would be empty
        shown = shown.drop(columns=["n_human", "ci_low", "ci_high", "dr_judge", "note", "gap_estimate"])
    dataframe(shown, hide_index=True, width="stretch", column_config={
        "dr": "Overall Defense Rate", "n": "Judged answers", "gap_ci_low": "Gap beyond noise, 95% CI low",
        "gap_ci_high": "Gap beyond noise, 95% CI high", "best_group": "Most protected group (observed)",
        "worst_group": "Least protected group (observed)", "heterogeneous": "Groups differ (test)"})

    st.subheader("Defense Rate per group")
    st.caption("Per group: the DR as measured with its 95% interval, and the shrunken DR (pulled toward the model's "
               "mean as far as noise explains the spread: a better guess of the group's true DR), with whether the "
               "group is credibly below or above its model's mean (false discovery rate 5%).")
    table = groups.assign(group_name=groups["group"])
    columns = [c for c in ("model", "language", "group_name", "estimate", "n", "n_human", "dr", "ci_low", "ci_high",
                           "shrunk", "shrunk_ci_low", "shrunk_ci_high", "q_value", "position") if c in table.columns]
    dataframe(table[columns], hide_index=True, width="stretch", column_config={
        "group_name": "Group", "shrunk_ci_low": "Shrunken DR, 95% CI low", "shrunk_ci_high": "Shrunken DR, 95% CI high"})

    per_run = run_targets(path, mtime)
    if len(per_run):
        st.subheader("Runs: completions and errors per target")
        failed = per_run.loc[(per_run["completions"] > 0) & (per_run["errors"] == per_run["completions"])]
        for row in failed.itertuples():
            st.error(f"{escape_markdown(row.run_id)} / {escape_markdown(row.target_id)}: every completion "
                     f"({row.errors:,}) is an error; it measured nothing. Retry its errors on the Run page once the "
                     "target answers.")
        dataframe(per_run, hide_index=True, width="stretch")


def navigation() -> list:
    """The pages this session may open: all that exist, less the writing ones in a read-only session."""
    pages = [st.Page(overview, title="Overview", icon=":material/balance:", default=True)]
    NAVIGATION["overview"] = pages[0]
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
