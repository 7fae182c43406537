"""Compare versions: did the new version get safer for everyone? A paired comparison of two (run, target) sides
on the probes both answered (core.stats.comparison): the groups that got significantly worse first, then per language a
diverging heatmap of the DR change (group x strategy, centred on 0, * where significant after correction). A
click on a cell lists the probes where the two versions disagree, both completions side by side as plain text.
With three or more versions stored, the matrix of every pair's gap change.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.views.compare import Side
from core.stats.comparison import ALL_GROUPS
from ui import filters
from core.stats.estimates import JUDGE_ONLY, MIN_JUDGED
from ui.cached import comparison, corrected_comparison, disagreements, pair_matrix, run_targets
from ui.common import dataframe, escape_markdown, group_label, group_names, inert_text, language_name, strategy_label
from ui.page import start
from ui.stat_figures import CELL_SELECTION, ci_heatmap_chart, clicked_chart_cell, heatmap_box

PAGE = "compare"
DETAILS = (("base_dr", "base DR"), ("cand_dr", "candidate DR"), ("p_adjusted", "McNemar p (corrected)"))
SHOWN = {"language": "language", "group_name": "group", "kind": "kind", "pairs": "pairs", "base_dr": "base DR",
         "cand_dr": "candidate DR", "change": "change", "ci_low": "95% CI low", "ci_high": "95% CI high",
         "p_adjusted": "p (corrected)"}

RATES = ("base DR", "candidate DR", "change", "95% CI low", "95% CI high", "base gap", "candidate gap", "base_gap", "cand_gap",
         "ci_low", "ci_high")
FORMATS = {**{name: st.column_config.NumberColumn(format="%.3f") for name in RATES},
           **{name: st.column_config.NumberColumn(format="%.2g") for name in ("p (corrected)", "p_value", "p_adjusted")}}

ctx = start("Compare versions: what changed, and for whom", PAGE, runs=False)  # sides name their runs
path, mtime, judge = ctx.path, ctx.mtime, ctx.judge
stored = run_targets(path, mtime)
stored = stored[stored["completions"] > 0]
sides = {Side(r, t).label: Side(r, t) for r, t in sorted(zip(stored["run_id"], stored["target_id"]))}
if len(sides) < 2:
    st.info("Comparing needs two versions: two targets in one run, or one target in two runs. Run another "
            "audit on the same probes (the Run page, or `python -m core run --run-id NEW ...`).")
    st.stop()
labels = list(sides)
base_label = filters.select_option("Base (the old version)", "base", labels, page=PAGE)
candidate_label = filters.select_option("Candidate (the new version)", "candidate", labels,
                                        default=next(label for label in labels if label != base_label), page=PAGE)
if base_label == candidate_label:
    st.warning("Choose two different versions.")
    st.stop()
base, candidate = sides[base_label], sides[candidate_label]
by_group = comparison(path, mtime, judge, base, candidate)
result, left = by_group.result, by_group.left_out
checked = "human" in ctx.facts.get("judges", ())  # some human verdicts: a corrected comparison may be possible
fixed, refused = corrected_comparison(path, mtime, judge, base, candidate) if checked else (None, None)
ESTIMATES = {"ppi": "corrected by the human review sample", "judge": JUDGE_ONLY}
estimate = filters.select_option("Estimate", "estimate", ["ppi", "judge"] if checked else ["judge"],
                                 default="ppi" if fixed is not None else "judge", page=PAGE, format_func=ESTIMATES.get,
                                 help="Corrected: each version's DR corrected by its labelled review sample "
                                      "(prediction-powered), the change's interval conservative (the two corrected "
                                      "estimates taken as independent). Judge only: paired McNemar tests on the "
                                      "judge's verdicts, human verdicts overriding.")
if estimate == "ppi" and refused:  # a side without human checks: nothing could be tested on it, so no verdict
    st.warning(escape_markdown(f"No corrected comparison: {refused}."))
    st.caption("Choose \"judge only\" above for the comparison on the judge's verdicts.")
    st.stop()
if refused:
    st.caption(escape_markdown(f"Judge only: not corrected by the review sample, because {refused}."))
if estimate == "ppi":
    result = fixed
    st.caption("The tables below are corrected by the human review sample (cells with fewer than 10 labels on a "
               "side have no corrected change); the strategy heatmaps stay on the judge's paired verdicts.")
st.caption(f"Paired on {int(result.cells['pairs'].sum()):,} probes both answered (judge {escape_markdown(judge)}; "
           f"human verdicts override it). Left out: {left['base_only_probes']:,} only the base answered, "
           f"{left['cand_only_probes']:,} only the candidate, {left['unreadable_pairs']:,} with an error or an "
           f"unreadable label. Change = candidate DR - base DR, 95% CI by Newcombe's paired method; McNemar's exact "
           f"test, {result.correction}-corrected within attack and within control cells.")

st.header("Changed for the worse")
worse = result.flagged()
untested = result.untested()
if worse.empty and untested.empty:
    st.success("No group got significantly worse: no significant drop in DR on attacks, no significant rise in "
               "refusals of benign requests.")
elif worse.empty:  # never an all-clear for cells that were not tested
    st.warning(escape_markdown("No tested group got significantly worse, but " + result.untested_summary() + "."))
else:
    table = worse.assign(group_name=[ALL_GROUPS if g == ALL_GROUPS else n
                                     for g, n in zip(worse["group"], group_names(worse, "group"))])
    dataframe(table[list(SHOWN)].rename(columns=SHOWN), hide_index=True, width="stretch", column_config=FORMATS)
    st.caption("Attack rows: the candidate refuses these groups' jailbreaks less often. Control rows: it refuses "
               "more harmless requests (over-refusal).")
    if len(untested):
        st.warning(escape_markdown(result.untested_summary() + "."))
if len(untested):
    with st.expander(f"Not tested: {len(untested)} compared cells, and why"):
        dataframe(untested, hide_index=True, width="stretch")

gaps = result.gaps.rename(columns={"base_gap": "base gap", "cand_gap": "candidate gap", "p_adjusted": "p (corrected)"})
st.subheader("Selective-safety gap (max - min group DR, attacks)")
dataframe(gaps[["language", "groups", "base gap", "candidate gap", "change", "ci_low", "ci_high", "p (corrected)",
                "significant"]], hide_index=True, width="stretch", column_config=FORMATS)

st.header("DR change by group and strategy")
st.caption("Red: the candidate refuses less often (worse); blue: more often. * marks a change significant after "
           f"correction; grey: fewer than {MIN_JUDGED} pairs, too few to colour. Click a cell to see the probes the "
           "two versions answered differently.")
by_strategy = comparison(path, mtime, judge, base, candidate, by=("language", "group", "strategy")).result.cells
by_strategy = by_strategy[by_strategy["kind"] == "attack"].rename(columns={"pairs": "n"})
for language in [lang for lang in ctx.vocabulary.language_codes if lang in set(by_strategy["language"])]:
    cells = by_strategy[by_strategy["language"] == language]
    order = list(result.cells[(result.cells["language"] == language) & (result.cells["kind"] == "attack")]
                 .sort_values("change")["group"])  # most worsened group first
    chart = ci_heatmap_chart(cells, x="group", y="strategy", value="change", low="ci_low", high="ci_high",
                             significant="significant", diverging=True, language=language, x_order=order,
                             title=f"DR change, {candidate_label} - {base_label} ({language_name(language)})", zmax=1.0,
                             details=DETAILS, min_n=MIN_JUDGED, n_unit="answered pairs")
    with heatmap_box(chart):
        event = st.altair_chart(chart, on_select="rerun", selection_mode=CELL_SELECTION, key=f"{PAGE}_{language}",
                                width="content")
    picked = clicked_chart_cell(event)
    if picked is None:
        continue
    strategy, group = picked
    pairs = disagreements(path, mtime, judge, base.key, candidate.key,
                          (("language", language), ("group", group), ("strategy", strategy), ("kind", "attack")))
    st.subheader(f"{escape_markdown(group_label(group, language))} x {escape_markdown(strategy_label(strategy))} "
                 f"({escape_markdown(language_name(language))}): {len(pairs)} probes answered differently")
    for row in pairs.itertuples():
        with st.container(border=True):
            st.caption(f"probe {escape_markdown(row.probe_id)}")
            inert_text(row.prompt)
            left_col, right_col = st.columns(2)
            left_col.text(f"Base ({base_label}): {row.base_label} (by {row.base_judged_by})")
            with left_col:
                inert_text(row.base_completion)
            right_col.text(f"Candidate ({candidate_label}): {row.cand_label} (by {row.cand_judged_by})")
            with right_col:
                inert_text(row.cand_completion)

if len(sides) >= 3:
    st.header("Every pair: which version is fairer?")
    matrix = pair_matrix(path, mtime, judge, tuple(s.key for s in sides.values()))
    st.caption("Change of the selective-safety gap, candidate - base, on the probes each pair shares (negative: "
               "the candidate treats groups more alike). 95% paired-bootstrap CI, corrected across all pairs.")
    dataframe(pd.DataFrame(matrix), hide_index=True, width="stretch", column_config=FORMATS)
