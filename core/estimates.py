"""Which estimate a view shows: the judge's own Defense Rate, or the one corrected by the review sample.

Every reader of the numbers (the CLI's `stats`, the HTML report, the dashboard's Overview, Heatmaps and
Calibration pages) asks the same two questions, answered once here so they say the same thing:

* Is there a review sample to correct with?  `sample_labels(sample)` counts the human checks in a selection;
  a view is corrected by default exactly when that count is above zero.
* What does the headline per model say?  `corrected_headline` is core.metrics.headline from corrected
  group DRs (core.ppi.CorrectedRates): the overall DR with its interval, the selective-safety gap with its
  interval, best and worst group, next to the judge's own DR, with n and n_human.

`estimate_label` is the one plain wording of both ("judge only" / "corrected by N human checks"), so a
reader never has to guess which number a figure holds. `missing_reason` says, in the same plain words, why a
cell has no corrected estimate (core.ppi's `note` says it for a programmer: "stratum run_id=..."), and
MIN_JUDGED is the fewest judged answers with which a judge-only heatmap cell is coloured. No statistics are
computed here beyond calling core.ppi; nothing here imports streamlit.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from core.ppi import CorrectedRates, JudgeError

ESTIMATORS: tuple[str, ...] = ("judge", "ppi")
JUDGE_ONLY = "judge only"
# The Overview's and the report's headline: one row per model and language.
HEADLINE_COLUMNS: tuple[str, ...] = ("model", "language", "n", "n_human", "dr", "ci_low", "ci_high", "dr_judge",
                                     "best_group", "best_dr", "worst_group", "worst_dr", "gap", "gap_ci_low",
                                     "gap_ci_high", "note")


# A judge-only Defense Rate of fewer answers than this is drawn grey on a heatmap (its value and n in the hover):
# with 9 answers a 95% interval is still about +-0.3 wide, so its colour would claim more than it knows. The same
# floor as the corrected estimate's default --min-human, so a grey cell means the same on either estimate.
MIN_JUDGED = 10


def _checks(k: int) -> str:
    return f"{k} human check{'s' if k != 1 else ''}"


def _count(value: object) -> int:
    """A count from a table cell, 0 where it is missing (None or NaN)."""
    return 0 if value is None or pd.isna(value) else int(value)


_STRATUM = re.compile(r"stratum (?P<where>.*) has (?P<k>\d+) human labels \(needs (?P<need>\d+)\)")


def missing_reason(n: float, n_human: float, min_human: int, note: object = "") -> str:
    """Why a cell has no corrected Defense Rate, in a reader's words: `n` non-error completions, `n_human` human
    checks of the review sample in it, `min_human` the fewest a corrected estimate needs; `note` is core.ppi's
    own reason (read for the one case the counts do not tell: a sampled stratum with too few checks)."""
    n, n_human = _count(n), _count(n_human)
    if n <= 0:
        return "no answer without an error in this cell: nothing to estimate"
    if n_human < min_human:
        return f"n = {_checks(n_human)}, fewer than the {min_human} a corrected estimate needs"
    found = _STRATUM.search(str(note or ""))
    if found:
        where = dict(part.split("=", 1) for part in found["where"].split(", ") if "=" in part)
        run = where.pop("run_id", None)
        model = where.pop("model", None)
        about = " ".join(where.values())
        whose = f"{model}'s {about} answers" if model else f"{about} answers"
        return (f"only {_checks(int(found['k']))} of {whose}{' in run ' + run if run else ''}: each part of the "
                f"review sample a corrected estimate rests on needs at least {found['need']}")
    return "the corrected estimate could not be computed for this cell"


def missing_short(n: float, n_human: float, min_human: int, note: object = "") -> str:
    """missing_reason in the few words a heatmap cell has room for ("7 checks")."""
    n, n_human = _count(n), _count(n_human)
    if n <= 0:
        return "no answers"
    if n_human < min_human:
        return f"{n_human} check{'s' if n_human != 1 else ''}"
    return "too few checks"


def explain_missing(table: pd.DataFrame, min_human: int, value: str = "dr") -> pd.DataFrame:
    """A corrected table (core.ppi.CorrectedRates.table or its deviations) with `why` and `why_short`: the plain
    reason, long and short, for each row whose `value` is missing ("" elsewhere)."""
    missing = table[value].isna().to_numpy() if value in table else np.zeros(len(table), bool)
    notes = table["note"] if "note" in table else pd.Series([""] * len(table), index=table.index)
    why, short = [""] * len(table), [""] * len(table)
    for i, (n, k, note, gone) in enumerate(zip(table["n"], table["n_human"], notes, missing)):
        if not gone:
            continue
        if value != "dr" and "dr" in table and not pd.isna(table["dr"].iloc[i]):
            why[i], short[i] = "the model's mean has no corrected estimate to compare with", "no mean"
        else:
            why[i], short[i] = missing_reason(n, k, min_human, note), missing_short(n, k, min_human, note)
    return table.assign(why=why, why_short=short)


def estimate_label(n_human: int | None) -> str:
    """The plain name of an estimate: "judge only", or "corrected by N human checks" (N = sample labels)."""
    if not n_human:
        return JUDGE_ONLY
    return f"corrected by {int(n_human):,} human check{'s' if int(n_human) != 1 else ''}"


def sample_labels(sample: pd.DataFrame | None) -> int:
    """How many sample labels (human verdicts on review-sample completions) a selection holds."""
    return 0 if sample is None else int(len(sample))


def corrected_headline(population: pd.DataFrame, sample: pd.DataFrame, *, min_human: int = 10,
                       power_tuning: bool = False, alpha: float = 0.05) -> pd.DataFrame:
    """Per model and language: the corrected overall DR (dr, ci_low, ci_high), the judge's own DR (dr_judge),
    n, n_human, and the selective-safety gap (best - worst corrected group DR) with its interval.

    Gaps come from the corrected group DRs, so a judge that misses refusals more often for one group does not
    manufacture a gap here. A group with too few labels has no corrected DR and does not enter the gap; the
    `note` of the overall row says why where the overall DR itself cannot be corrected.
    """
    overall = CorrectedRates(population, sample, ["model", "language"], power_tuning=power_tuning,
                             min_human=min_human).table
    groups = CorrectedRates(population, sample, ["model", "language", "group"], power_tuning=power_tuning,
                            min_human=min_human)
    gaps = groups.disparity(["model", "language"], alpha=alpha).rename(columns={"best": "best_group",
                                                                                "worst": "worst_group"})
    keep = [c for c in ("model", "language", "best_group", "best_dr", "worst_group", "worst_dr", "gap",
                        "gap_ci_low", "gap_ci_high") if c in gaps.columns]
    head = overall.merge(gaps[keep], on=["model", "language"], how="left")
    for column in HEADLINE_COLUMNS:
        if column not in head.columns:
            head[column] = None
    return head[list(HEADLINE_COLUMNS)]


def combined_headline(judge_head: pd.DataFrame, corrected: pd.DataFrame | None) -> pd.DataFrame:
    """One headline row per model and language, each labelled with the estimate it shows.

    `judge_head` is core.metrics.headline (judge only, human verdicts overriding); `corrected` is
    corrected_headline, or None where the selection has no sample labels. A row shows the corrected DR and gap
    where its model has enough human checks for a corrected overall DR (estimate "corrected by N human checks"),
    else the judge's figures (estimate "judge only", with the reason in `note` when some checks exist), so a
    model without a sample is never shown as if it had been checked. `dr_judge` is the judge's DR: from its own
    verdicts where the row is corrected (as core.ppi reports it), the judge-only DR elsewhere.
    """
    errors = judge_head["note"] if "note" in judge_head else ""  # core.metrics.headline's note on errors
    rows = judge_head.assign(n_human=0, ci_low=float("nan"), ci_high=float("nan"), dr_judge=judge_head["dr"],
                             gap_ci_low=float("nan"), gap_ci_high=float("nan"), note="", error_note=errors)
    shown = [JUDGE_ONLY] * len(rows)
    if corrected is not None and len(corrected):
        keyed = corrected.set_index(["model", "language"])
        for index, (position, row) in enumerate(rows.iterrows()):
            key = (row["model"], row["language"])
            if key not in keyed.index:
                continue
            fixed = keyed.loc[key]
            rows.at[position, "n_human"] = int(fixed["n_human"] or 0)
            if pd.isna(fixed["dr"]):
                rows.at[position, "note"] = str(fixed["note"] or "")
                continue
            for column in ("dr", "ci_low", "ci_high", "dr_judge", "best_group", "best_dr", "worst_group", "worst_dr", "gap",
                           "gap_ci_low", "gap_ci_high", "note"):
                rows.at[position, column] = fixed[column]
            shown[index] = estimate_label(rows.at[position, "n_human"])
    rows["estimate"] = shown
    columns = ["model", "language", "estimate", "n", "n_human", "dr", "ci_low", "ci_high", "dr_judge", "best_group",
               "best_dr", "worst_group", "worst_dr", "gap", "gap_ci_low", "gap_ci_high", "note",
               *[c for c in ("errors", "error_share") if c in rows.columns], "error_note"]
    return rows[columns]


RATE_NAMES: dict[str, str] = {"false_refusal": "false-refusal rate (judge refused, a person said complied)",
                              "false_compliance": "false-compliance rate (judge complied, a person said refused)"}


def judge_error_findings(errors: JudgeError | None, judge: str) -> list[str]:
    """One plain sentence per test of core.ppi.judge_error whose rate differs significantly across groups.

    The heatmaps warn with these, the report and `review bias` print them: a judge whose errors differ by
    group biases the judge-only disparity itself, which is what the corrected figures are for.
    """
    if errors is None or not len(errors.tests):
        return []
    found = []
    others = [c for c in errors.tests.columns if c not in ("rate", "groups", "errors", "n", "chi2", "df", "p_value",
                                                           "p_adjusted", "differs")]
    for row in errors.tests.loc[errors.tests["differs"].astype(bool)].itertuples(index=False):
        row = row._asdict()
        where = ", ".join(f"{name} {row[name]}" for name in others)
        found.append(f"Judge {judge}: its {RATE_NAMES.get(row['rate'], row['rate'])} differs significantly "
                     f"across the {int(row['groups'])} groups{' in ' + where if where else ''} (chi-square "
                     f"{row['chi2']:.1f}, df {int(row['df'])}, adjusted p {p_text(row['p_adjusted'])}, "
                     f"{int(row['n'])} human checks): its judge-only Defense Rates are biased differently per "
                     "group; read the corrected ones.")
    return found


def p_text(value: float) -> str:
    """A p-value as a reader wants it: a small one as an upper bound, never 0.0000."""
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"
