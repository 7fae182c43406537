"""Counterfactual: does a model treat groups differently when only the group's words change?

The matched-seed set (the bundled probes) gives each group its own seed statements, so a gap there mixes what
the group is with how hard its seeds are; the paper names this as the assumption its conclusion rests on. The
counterfactual set fills one claim, scenario, strategy and template for every group (core/probes/
counterfactual.py), so its probes of one counterfactual_id differ only in the group. This view puts the two side
by side per model and language (core/stats/matched.py does the statistics):

* `matched`: on the counterfactual attack probes, DR per group with CIs from resampling claims, the gap with its
  CI, Cochran's Q across groups and every pair of groups by McNemar (Holm-corrected), all paired on the claim;
* `seeds`: the matched-seed gap, its CI resampling seed statements (the same estimator, so the two compare);
* `decomposition`: on both sets together, the raw gap split into the part the group makes and the part the
  claims (seeds) make, and `surviving`: how much of the gap survives when only the group changes;
* `comparison`: one row per model x language with the three answers side by side (the page's and the report's
  headline).

Unlike the other views it reads one row per answer (Store.matched_outcomes), not per-cell counts: pairing needs
to know which answers share a claim.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from core.stats.matched import MatchedError, MatchedSummary, decompose, matched_summary
from core.store import Store
from core.views.source import Filters

CELL: tuple[str, ...] = ("model", "language")
NOTHING_TO_SPLIT = ("no matched-seed answers here: every claim was asked about every group, so the claims make none "
                    "of the counterfactual gap (run the bundled matched-seed set too to split a matched-seed gap)")
COUNTERFACTUAL = "counterfactual"
COMPARISON_COLUMNS: tuple[str, ...] = (
    "model", "language", "groups", "seed_answers", "seed_gap", "seed_gap_ci_low", "seed_gap_ci_high",
    "counterfactual_answers", "counterfactual_gap", "counterfactual_gap_ci_low", "counterfactual_gap_ci_high",
    "cochran_p", "surviving", "surviving_ci_low", "surviving_ci_high", "group_part", "group_part_ci_low",
    "group_part_ci_high", "claim_part", "claim_part_ci_low", "claim_part_ci_high", "note")


@dataclass(frozen=True)
class Counterfactual:
    """answers: readable counterfactual attack answers (0: nothing to show); matched: core.stats.matched tables on
    them; seeds: the matched-seed set's gaps and rates (claim = seed statement); decomposition: per model x
    language, quantity (raw_gap, group_part, claim_part, surviving, adjusted_gap), estimate, se, ci_low, ci_high,
    group_high, group_low, claims, crossed_claims, nested_claims, dropped_claims; comparison: COMPARISON_COLUMNS."""

    answers: int
    matched: MatchedSummary | None
    seeds: MatchedSummary | None
    decomposition: pd.DataFrame
    comparison: pd.DataFrame


def scope(filters: Filters | None = None) -> dict:
    """Attack probes within `filters`: the matched design compares attacks (controls are over-refusal's). Both
    probe sets whatever `filters` say (its `probe_set` is dropped): the view sets the counterfactual answers
    beside the matched-seed ones by design."""
    return {**{k: v for k, v in dict(filters or {}).items() if k != "probe_set"}, "kind": ["attack"]}


def compute(source: Store | pd.DataFrame, judge: str = "refusal", filters: Filters | None = None,
            resamples: int = 1000, seed: int = 0) -> Counterfactual:
    """The view of a selection; `source` a Store, or Store.matched_outcomes rows already read."""
    rows = source.matched_outcomes(judge, scope(filters)) if isinstance(source, Store) else source
    rows = rows.loc[rows["kind"] == "attack"] if "kind" in rows.columns else rows
    is_cf = rows["counterfactual_id"].fillna("") != ""
    counterfactual, seeded = rows.loc[is_cf], rows.loc[~is_cf].assign(counterfactual_id=None)
    matched = matched_summary(counterfactual, resamples=resamples, seed=seed) if len(counterfactual) else None
    seeds = matched_summary(seeded, resamples=resamples, seed=seed) if len(seeded) else None
    decomposition = _decompositions(rows) if len(counterfactual) else pd.DataFrame()
    return Counterfactual(int(len(counterfactual)), matched, seeds, decomposition,
                          _comparison(counterfactual, seeded, matched, seeds, decomposition))


def _decompositions(rows: pd.DataFrame) -> pd.DataFrame:
    """core.stats.matched.decompose per model x language on every attack answer (both sets), or a note saying why not."""
    tables = []
    for (model, language), part in rows.groupby(list(CELL), sort=True, observed=True):
        labels = {"model": model, "language": language}
        if (part["counterfactual_id"].fillna("") != "").all():
            tables.append(pd.DataFrame([{**labels, "quantity": "surviving", "note": NOTHING_TO_SPLIT}]))
            continue
        try:
            found = decompose(part)
        except MatchedError as error:
            tables.append(pd.DataFrame([{**labels, "quantity": "surviving", "note": str(error)}]))
            continue
        tables.append(found.gaps.assign(**labels, claims=found.claims, crossed_claims=found.crossed_claims,
                                        nested_claims=found.nested_claims, dropped_claims=found.dropped_claims,
                                        note=""))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _comparison(counterfactual: pd.DataFrame, seeded: pd.DataFrame, matched: MatchedSummary | None,
                seeds: MatchedSummary | None, decomposition: pd.DataFrame) -> pd.DataFrame:
    """One row per model x language that has counterfactual answers: the matched-seed gap, the counterfactual
    gap, Cochran's p and the decomposition's group part, claim part and surviving share, each with its CI (none
    where the decomposition has a note saying why)."""
    if matched is None:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    cell = list(CELL)
    interval = {"gap": "{}_gap", "ci_low": "{}_gap_ci_low", "ci_high": "{}_gap_ci_high"}
    out = matched.gaps[[*cell, "groups", *interval]].rename(columns={k: v.format("counterfactual")
                                                                      for k, v in interval.items()})
    out = out.merge(counterfactual.groupby(cell).size().rename("counterfactual_answers").reset_index(), on=cell)
    out = out.merge(matched.cochran[[*cell, "pvalue"]].rename(columns={"pvalue": "cochran_p"}), on=cell, how="left")
    if seeds is not None:
        out = out.merge(seeds.gaps[[*cell, *interval]].rename(columns={k: v.format("seed") for k, v in interval.items()}),
                        on=cell, how="left")
        out = out.merge(seeded.groupby(cell).size().rename("seed_answers").reset_index(), on=cell, how="left")
    out["seed_answers"] = out.get("seed_answers", pd.Series(0, index=out.index)).fillna(0).astype(int)
    out["groups"] = out["groups"].astype(int)
    if len(decomposition):
        notes = decomposition.loc[decomposition["note"] != "", [*cell, "note"]].drop_duplicates(cell)
        out = out.merge(notes, on=cell, how="left")
        fitted = decomposition.loc[(decomposition["note"] == "")
                                   & decomposition["quantity"].isin(["surviving", "group_part", "claim_part"])]
        if len(fitted):
            wide = fitted.pivot(index=cell, columns="quantity", values=["estimate", "ci_low", "ci_high"])
            wide.columns = [q if stat == "estimate" else f"{q}_{stat}" for stat, q in wide.columns]
            out = out.merge(wide.reset_index(), on=cell, how="left")
    out["note"] = out.get("note", pd.Series("", index=out.index)).fillna("")
    return out.reindex(columns=list(COMPARISON_COLUMNS))
