"""Which estimate a view shows: the judge's own Defense Rate, or the one corrected by the review sample.

Every reader of the numbers (the CLI's `stats`, the HTML report, the dashboard's Overview, Heatmaps and
Calibration pages) asks the same two questions, answered once here so they say the same thing:

* Is there a review sample to correct with?  `sample_labels(sample)` counts the human checks in a selection;
  a view is corrected by default exactly when that count is above zero.
* Which estimate does a view show?  `choose_estimator`, the one choice every page, the report and the CLI make.
* What is a model's overall DR?  `corrected_headline` (core.ppi.CorrectedRates per model and language) next to
  the judge's own, combined per row by `combined_headline`; the disparity across groups is
  core.views.disparity's.

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
from core.stats import StatsError

ESTIMATORS: tuple[str, ...] = ("judge", "ppi")
JUDGE_ONLY = "judge only"
# The Overview's and the report's headline: one row per model and language (the overall DR, then the disparity).
HEADLINE_COLUMNS: tuple[str, ...] = ("model", "language", "estimate", "n", "n_human", "dr", "ci_low", "ci_high",
                                     "dr_judge", "note")


class EstimateError(StatsError):
    """An estimate that cannot be given as asked (a corrected one without human checks); says what to do."""


def choose_estimator(requested: str | None, n_human: int) -> str:
    """The one choice of estimate every reader makes: "ppi" (corrected by the review sample) when asked or, by
    default, whenever the selection holds human checks; "judge" when asked or without checks. Asking for "ppi"
    without a single check is refused: a corrected figure without checks would be the judge's, mislabelled."""
    if requested not in (None, *ESTIMATORS):
        raise EstimateError(f"unknown estimator {requested!r}; choose from {', '.join(ESTIMATORS)}")
    if requested == "ppi" and not n_human:
        raise EstimateError("--estimator ppi: this selection has no human checks of a review sample; draw one with "
                            "`python -m core review sample --run-id RUN` and label it (Review page or `verdicts "
                            "import`), or use --estimator judge")
    if requested is not None:
        return requested
    return "ppi" if n_human else "judge"


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
                       power_tuning: bool = False) -> pd.DataFrame:
    """Per model and language: the corrected overall DR (dr, ci_low, ci_high), the judge's own DR (dr_judge), n,
    n_human and, where the overall DR cannot be corrected, the `note` saying why."""
    overall = CorrectedRates(population, sample, ["model", "language"], power_tuning=power_tuning,
                             min_human=min_human).table
    for column in HEADLINE_COLUMNS:
        if column not in overall.columns:
            overall[column] = None
    return overall[[c for c in HEADLINE_COLUMNS if c != "estimate"]]


def combined_headline(judge_head: pd.DataFrame, corrected: pd.DataFrame | None) -> pd.DataFrame:
    """One overall-DR row per model and language, each labelled with the estimate it shows.

    `judge_head` is core.stats.rates.headline (judge only, human verdicts overriding); `corrected` is
    corrected_headline, or None where the selection has no sample labels. A row shows the corrected DR where its
    model has enough human checks for one (estimate "corrected by N human checks"), else the judge's (estimate
    "judge only", with the reason in `note` when some checks exist), so a model without a sample is never shown as
    if it had been checked. `dr_judge` is the judge's DR.
    """
    rows = judge_head.assign(n_human=0, ci_low=float("nan"), ci_high=float("nan"), dr_judge=judge_head["dr"],
                             note="", error_note=judge_head["note"], estimate=JUDGE_ONLY)
    if corrected is not None and len(corrected):
        fixed = corrected.set_index(["model", "language"])
        key = pd.MultiIndex.from_frame(rows[["model", "language"]])
        found = key.isin(fixed.index)
        matched = fixed.reindex(key)
        rows["n_human"] = matched["n_human"].fillna(0).astype("int64").to_numpy()
        usable = found & matched["dr"].notna().to_numpy()
        for column in ("dr", "ci_low", "ci_high", "dr_judge"):
            rows.loc[usable, column] = matched.loc[usable, column].to_numpy()
        rows.loc[found, "note"] = matched.loc[found, "note"].fillna("").astype(str).to_numpy()
        rows.loc[usable, "estimate"] = [estimate_label(n) for n in rows.loc[usable, "n_human"]]
    return rows[[*HEADLINE_COLUMNS, *[c for c in ("errors", "error_share") if c in rows.columns], "error_note"]]


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
