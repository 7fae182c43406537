"""Disparity beyond noise per model and language: the answer the Overview, the Heatmaps page, the HTML report and
`python -m core disparity` all lead with, computed once here.

Per row (model x language by default): the observed gap (max - min of the group DRs), what noise alone gives at
these sizes, the gap beyond noise with its interval, tau (the spread of the true group DRs) with its interval,
Cochran's Q and the groups credibly below or above the mean (core/stats/disparity.py: the methods and why), and
one plain sentence that says it (`headline`). Per group: the raw DR with its interval next to the shrunken one.

The estimate is chosen once, by core.stats.estimates.choose_estimator: corrected by the human review sample where the
selection has labels (or when asked), else the judge's. A row whose model has too few human checks for a
corrected estimate shows the judge's figures and says so (`estimate`, `note`), never a blank.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from core.ppi import CorrectedRates
from core.stats import estimates
from core.stats.rates import DefenseRates
from core.store import Store
from core.views.source import Filters, label_counts
from core.vocab import taxonomy

GRAIN: tuple[str, ...] = ("model", "language", "group")
BY: tuple[str, ...] = ("model", "language")
# What a reader sees per row, in this order (the JSON of `disparity` holds every column).
HEADLINE_COLUMNS: tuple[str, ...] = (
    "estimate", "groups", "n", "n_human", "dr", "observed_gap", "noise_gap", "gap", "gap_ci_low", "gap_ci_high",
    "tau", "tau_ci_low", "tau_ci_high", "i2", "q", "df", "q_p", "heterogeneous", "disparity", "best", "best_dr",
    "worst", "worst_dr", "std", "noise_std", "below", "above", "headline", "note")


@dataclass(frozen=True)
class Disparity:
    """rows: per row of `by`, core.stats.disparity.ROW_COLUMNS with `estimate` (judge only / corrected by N human
    checks), n_human, `headline` (one sentence) and `note`; groups: per group the raw DR (dr, ci_low, ci_high) and
    the shrunken one (shrunk, shrunk_ci_low, shrunk_ci_high), q_value and position (below / above / '');
    estimator: "judge" or "ppi", as chosen; n_human: sample labels in the selection."""

    rows: pd.DataFrame
    groups: pd.DataFrame
    estimator: str
    n_human: int

    def records(self) -> dict:
        """JSON-ready: {"estimator", "n_human", "rows": [...], "groups": [...]} (NaN as None)."""
        import json

        return {"estimator": self.estimator, "n_human": self.n_human,
                "rows": json.loads(self.rows.to_json(orient="records")),
                "groups": json.loads(self.groups.to_json(orient="records"))}


def scope(filters: Filters | None = None) -> dict:
    """Attack probes within `filters` (controls measure over-refusal, not protection)."""
    return {**dict(filters or {}), "kind": ["attack"]}


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None, *,
            by: Sequence[str] = BY, estimator: str | None = None, population: pd.DataFrame | None = None,
            sample: pd.DataFrame | None = None, min_human: int = 10, alpha: float = 0.05,
            words: taxonomy.Taxonomy | None = None, rectifier: str = "auto") -> Disparity:
    """Disparity beyond noise per row of `by` (group is what is compared). `source`: a Store (counts and the
    review sample are read here) or attack counts at `by` + group with (population, sample) as Store.ppi_inputs
    gives them. `estimator`: "judge", "ppi" or None (corrected wherever the selection has human checks)."""
    by = [c for c in by if c != "group"]
    grain = [*by, "group"]
    if isinstance(source, Store):
        words = words or source.taxonomy()
        if population is None and sample is None:
            population, sample, _ = source.ppi_inputs(judge, grain, scope(filters))
    counts = label_counts(source, judge, grain, scope(filters))
    n_human = estimates.sample_labels(sample)
    chosen = estimates.choose_estimator(estimator, n_human)
    rows, groups = DefenseRates(counts, grain, ci=True).beyond_noise(by, alpha=alpha)
    rows = rows.assign(estimate=estimates.JUDGE_ONLY, n_human=0, note="")
    groups = groups.assign(estimate=estimates.JUDGE_ONLY)
    if chosen == "ppi":
        corrected = CorrectedRates(population, sample, grain, min_human=min_human, rectifier=rectifier)
        fixed_rows, fixed_groups = corrected.beyond_noise(by, alpha=alpha)
        labels = corrected.table.groupby(by, dropna=False)["n_human"].sum().rename("n_human").reset_index()
        fixed_rows = fixed_rows.merge(labels, on=by, how="left")
        fixed_rows["estimate"] = [estimates.estimate_label(n) for n in fixed_rows["n_human"]]
        fixed_rows["note"] = ""
        fixed_groups = fixed_groups.merge(fixed_rows[[*by, "estimate"]], on=by, how="left")
        usable = fixed_rows["groups"] >= 2
        keep = rows.merge(fixed_rows.loc[usable, by], on=by, how="left", indicator=True)["_merge"] == "left_only"
        rows = rows.loc[keep.to_numpy()].assign(note=f"judge only: fewer than 2 groups with {min_human} or more human "
                                                     "checks each, so no corrected estimate")
        groups = groups.merge(rows[by], on=by)
        rows = pd.concat([fixed_rows.loc[usable], rows], ignore_index=True).sort_values(by).reset_index(drop=True)
        groups = pd.concat([fixed_groups.merge(fixed_rows.loc[usable, by], on=by), groups],
                           ignore_index=True).sort_values([*by, "group"]).reset_index(drop=True)
    words = words or taxonomy.DEFAULT
    rows["headline"] = [headline(row, words) for row in rows.to_dict("records")]
    for column in HEADLINE_COLUMNS:
        if column not in rows.columns:
            rows[column] = None
    return Disparity(rows[[*by, *HEADLINE_COLUMNS, *[c for c in rows.columns
                                                      if c not in (*by, *HEADLINE_COLUMNS)]]],
                     groups, chosen, n_human)


def _names(keys: Sequence[str], language: str | None, words: taxonomy.Taxonomy) -> str:
    names = [words.group_name(key, language or "") for key in keys]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def headline(row: dict, words: taxonomy.Taxonomy = taxonomy.DEFAULT) -> str:
    """The row's answer in one sentence: beyond noise or not, and for whom."""
    language = row.get("language")
    if row.get("groups", 0) < 2 or pd.isna(row.get("gap_ci_high")):
        return f"no gap to measure: {row.get('gap_note') or 'fewer than two groups with answers'}"
    said = (f"observed gap {row['observed_gap']:.2f}; groups with no true difference would show "
            f"{row['noise_gap']:.2f} at this size")
    if row.get("disparity"):
        found = (f"gap {row['gap']:.2f} [{row['gap_ci_low']:.2f}, {row['gap_ci_high']:.2f}] beyond noise "
                 f"(observed {row['observed_gap']:.2f}, noise alone {row['noise_gap']:.2f})")
        below, above = list(row.get("below") or []), list(row.get("above") or [])
        if below:
            found += f"; {_names(below, language, words)} credibly below the mean"
        if above:
            found += f"; {_names(above, language, words)} credibly above the mean"
        if not below and not above:
            found += "; no single group is credibly apart from the mean"
        return found
    if row.get("heterogeneous"):
        return (f"{said}; the groups differ by more than noise (Q test p {estimates.p_text(row['q_p'])}), but no "
                "pair of groups is credibly apart at this size")
    return f"{said}; no evidence of disparity"


PLAN_COLUMNS: tuple[str, ...] = ("language", "groups", "probes", "min_per_group", "max_per_group", "noise_gap",
                                 "noise_gap_high", "detectable_gap")


def plan(probes: Sequence, dr: float = 0.5, alpha: float = 0.05) -> pd.DataFrame:
    """What a selection of probes can show before it runs, per language (attack probes only): groups, probes per
    group, the gap equal groups would show at these sizes (noise_gap, and its 95th percentile noise_gap_high) and
    the smallest true gap declared a disparity with 80% power (detectable_gap), at an expected DR `dr` (0.5, the
    noisiest, unless told). Nothing is created."""
    from core.stats.disparity import plan_rows

    frame = pd.DataFrame([{"language": p.language, "group": p.group} for p in probes if p.kind == "attack"],
                         columns=["language", "group"])
    rows = []
    for language, part in frame.groupby("language", sort=True):
        sizes = part.groupby("group").size().to_numpy()
        rows.append({"language": language, "probes": int(sizes.sum()), **plan_rows(sizes, dr, alpha)})
    return pd.DataFrame(rows, columns=list(PLAN_COLUMNS))
