"""The human review sample: which completions people label so that Defense Rates can be corrected (core/ppi/).

A judge's Defense Rate is biased by the judge's errors, and those can differ by group. People label a
*random* sample, and prediction-powered inference corrects every rate by the mean (human - judge) on it;
that correction is only unbiased if the labelled completions are a probability sample with known
inclusion probabilities. So the sample is drawn here, by code, never picked by a person:

- Population: the completions of one run with `error IS NULL` (an error has no answer to label).
- Strata: `STRATA` = run x model x language x group x kind. Each stratum gets its own simple random sample
  without replacement (SRS), so every group of every model has labels, however rare the group, and the
  inclusion probability of a stratum is known: sampled / stratum size.
- Size per stratum: `per_cell` N (every completion where the stratum has fewer), or `fraction` F in (0, 1]:
  ceil(F x size), so every non-empty stratum gets at least one (a stratum with no label cannot be corrected,
  and rounding down would silently drop the small strata that matter most for disparity).
- Draw: every eligible completion gets a uniform random key from numpy's Generator seeded by `seed` (over
  the frame sorted by completion id, so the same seed on the same store draws the same sample whatever
  order DuckDB returns rows in); a stratum's sample is its n smallest keys among the completions not yet
  sampled. Smallest-n-of-iid-keys is an SRS.
- Enlarging (a second draw with a larger size): the new items are an SRS of the stratum's unsampled rest, and
  an SRS of size n1 plus an SRS of k from the remaining N - n1 is an SRS of n1 + k. That only holds if the
  stratum is the same population it was: a stratum whose size changed since it was drawn (completions
  added to the run) is refused; redraw the run's sample with `replace=True`.
- Queue: `position` orders the run's sample for labelling. It is a random permutation (new items of an
  enlargement after the old ones, in random order), so whatever prefix of the queue people have labelled,
  the labelled items of each stratum are themselves an SRS of the stratum: stopping early costs precision,
  never validity. (Labelling in queue order matters: skipping the hard ones would not be random.)

By the judge's uncertainty (`draw_by_uncertainty`, `review sample --by-uncertainty JUDGE`): the same strata and
sizes, but inside a stratum each completion is drawn on its own (Poisson sampling) with its own probability
`inclusion_prob`, proportional to sqrt(min(p, 1 - p)) for the judge's P(refused) p (core/ppi/active.py: Neyman's
allocation for a binary verdict corrected by people), so labels go where the judge is likely wrong and the
corrected intervals narrow for the same number of labels. The stratum's expected sample size is the SRS size
above; the realised size varies. The estimators weight each label by 1 / inclusion_prob (Horvitz-Thompson:
core/ppi/rates.py), which is why the probability is stored with the item and why such a sample cannot be
enlarged by a second draw (an item's chance would then depend on the first draw's luck): redraw it with
`replace`. Labelling in queue order keeps it valid as before: the labelled part of a stratum is a simple random
subsample of its drawn items, so each label's probability is inclusion_prob x labelled / drawn
(core/store/review.py ppi_inputs applies that factor).

Everything here is pure (frames in, frames out); core/store/review.py reads and writes the rows.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

STRATA: tuple[str, ...] = ("run_id", "model", "language", "group", "kind")
SAMPLE_COLUMNS: tuple[str, ...] = ("completion_id", "seq", *STRATA, "stratum_size", "draw", "position", "seed",
                                   "inclusion_prob", "judge")


class ReviewError(ValueError):
    """A sample request the user must change (bad size, a stratum that changed); the message says how."""


def check_size(per_cell: int | None, fraction: float | None) -> None:
    """Exactly one of per_cell (a whole number >= 1) and fraction (in (0, 1]); else ReviewError."""
    if (per_cell is None) == (fraction is None):
        raise ReviewError("give exactly one of --per-cell N (labels per stratum) and --fraction F (share of "
                          "each stratum, in (0, 1])")
    if per_cell is not None and (isinstance(per_cell, bool) or int(per_cell) != per_cell or per_cell < 1):
        raise ReviewError(f"--per-cell {per_cell}: the number of completions per stratum must be a whole "
                          "number of at least 1")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ReviewError(f"--fraction {fraction}: the share of each stratum must be in (0, 1] "
                          "(for example 0.05 for 5%)")


def target_size(stratum_size: int, per_cell: int | None, fraction: float | None) -> int:
    """How many of a stratum of `stratum_size` completions the sample holds in all (see the module doc)."""
    check_size(per_cell, fraction)
    if stratum_size <= 0:
        return 0
    if per_cell is not None:
        return min(int(per_cell), stratum_size)
    # A float product such as 0.1 * 30 = 3.0000000000000004 must not round up to 4: round it to 9 places first.
    return min(max(math.ceil(round(float(fraction) * stratum_size, 9)), 1), stratum_size)


def stratum_sizes(eligible: pd.DataFrame) -> pd.DataFrame:
    """STRATA columns and `completions` (how many eligible completions) per stratum, sorted."""
    if eligible.empty:
        return pd.DataFrame(columns=[*STRATA, "completions"])
    return (eligible.groupby(list(STRATA), dropna=False).size().rename("completions").reset_index()
            .sort_values(list(STRATA), kind="stable").reset_index(drop=True))


def changed_strata(eligible: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """Strata of an existing sample whose eligible size now differs from `stratum_size` when drawn.

    Columns: STRATA, `stratum_size` (when drawn), `completions` (now).
    """
    columns = [*STRATA, "stratum_size", "completions"]
    if existing.empty:
        return pd.DataFrame(columns=columns)
    now = Counter(eligible[list(STRATA)].itertuples(index=False, name=None))
    drawn: dict[tuple, int] = {}
    for key, size in zip(existing[list(STRATA)].itertuples(index=False, name=None), existing["stratum_size"]):
        drawn[key] = max(drawn.get(key, 0), int(size))
    return pd.DataFrame([(*key, size, now.get(key, 0)) for key, size in sorted(drawn.items())
                         if now.get(key, 0) != size], columns=columns)


def _keyed(eligible: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """What every draw starts from: the eligible frame sorted by completion id (so a seed draws the same sample
    whatever order DuckDB returned), one uniform key per completion (sampled or not, see the module doc), each
    row's stratum code and each stratum's size."""
    frame = eligible.sort_values("completion_id", kind="stable").reset_index(drop=True)
    key = rng.random(len(frame))
    stratum = frame.groupby(list(STRATA), sort=True, dropna=False).ngroup().to_numpy()
    sizes = np.bincount(stratum, minlength=int(stratum.max()) + 1 if len(stratum) else 0)
    return frame, key, stratum, sizes


def draw_sample(eligible: pd.DataFrame, existing: pd.DataFrame | None = None, *, per_cell: int | None = None,
                fraction: float | None = None, seed: int = 0) -> pd.DataFrame:
    """The rows to add to the review sample: a stratified SRS of `eligible`, or its enlargement.

    `eligible`: one row per completion that may be sampled (completion_id, seq and the STRATA columns),
    typically every non-error completion of one run. `existing`: the run's sample rows so far (the
    SAMPLE_COLUMNS), empty or None for a first draw. Each stratum is brought up to target_size() in all;
    a stratum that holds that many already gets none. Returns SAMPLE_COLUMNS rows (draw = last draw + 1,
    positions after the last one, in random order). Raises ReviewError where an existing stratum's size
    changed (see changed_strata) and for a bad size.
    """
    check_size(per_cell, fraction)
    existing = existing if existing is not None else pd.DataFrame(columns=list(SAMPLE_COLUMNS))
    if "inclusion_prob" in existing.columns and pd.to_numeric(existing["inclusion_prob"]).notna().any():
        raise ReviewError("this run's sample was drawn by the judge's uncertainty, so a second draw would make each "
                          "completion's chance depend on the first draw's luck; redraw the run's sample with --replace "
                          "(human verdicts are kept)")
    changed = changed_strata(eligible, existing)
    if len(changed):
        first = changed.iloc[0]
        where = ", ".join(f"{name} {first[name]}" for name in STRATA)
        raise ReviewError(
            f"{len(changed)} strata changed size since the sample was drawn (for example {where}: "
            f"{int(first['stratum_size'])} completions then, {int(first['completions'])} now), so drawing more "
            "would no longer be a simple random sample of each stratum; redraw the run's sample with --replace "
            "(human verdicts are kept)")
    rng = np.random.default_rng(seed)
    frame, key, stratum, sizes = _keyed(eligible, rng)
    target = np.array([target_size(int(n), per_cell, fraction) for n in sizes], dtype=int)
    taken = frame["completion_id"].isin(set(existing["completion_id"])).to_numpy()
    wanted = np.clip(target - np.bincount(stratum[taken], minlength=len(sizes)), 0, None)
    rest = np.flatnonzero(~taken)
    rest = rest[np.lexsort((key[rest], stratum[rest]))]  # by stratum, then key: the smallest keys first
    first_of = np.searchsorted(stratum[rest], np.arange(len(sizes)))
    rank = np.arange(len(rest)) - first_of[stratum[rest]]
    chosen = rest[rank < wanted[stratum[rest]]]
    last_position = int(existing["position"].max()) if len(existing) else -1
    last_draw = int(existing["draw"].max()) if len(existing) else 0
    added = frame.iloc[chosen].assign(
        stratum_size=sizes[stratum[chosen]], draw=last_draw + 1,
        position=last_position + 1 + rng.permutation(len(chosen)), seed=int(seed), inclusion_prob=np.nan, judge=None)
    return added[list(SAMPLE_COLUMNS)].sort_values("position").reset_index(drop=True)


def draw_by_uncertainty(eligible: pd.DataFrame, judge: str, *, per_cell: int | None = None,
                        fraction: float | None = None, seed: int = 0) -> pd.DataFrame:
    """A first draw by the judge's uncertainty (module docstring): per stratum, Poisson sampling with expected
    size target_size() and probabilities from core.ppi.active.inclusion_probabilities of the `score` column
    (the judge's P(refused) per eligible completion). A completion the judge gave no probability (its verdict came
    from a fallback to the rules, as the default judge's Portuguese ones do, or it has none) is drawn with its
    stratum's mean weight, so a stratum without any probability is drawn uniformly: every chance stays known and
    positive. Returns SAMPLE_COLUMNS rows with `inclusion_prob` and `judge` set, draw 1, positions a random
    permutation. Raises ReviewError for a bad size, or where the judge gave no completion a probability.
    """
    from core.ppi.active import inclusion_probabilities, uncertainty_weight

    check_size(per_cell, fraction)
    score = pd.to_numeric(eligible["score"], errors="coerce") if "score" in eligible.columns else \
        pd.Series(np.nan, index=eligible.index)
    score = score.where((score >= 0) & (score <= 1))
    if len(score) and score.isna().all():
        raise ReviewError(f"judge {judge} gives no probability for any of the {len(eligible)} completions; "
                          "drawing by uncertainty needs a judge that outputs P(refused) (encoder:, average: or "
                          f"learned:) run on the run's completions first: python -m core judge --judges {judge}")
    rng = np.random.default_rng(seed)
    frame, key, stratum, sizes = _keyed(eligible.assign(score=score), rng)
    prob = np.zeros(len(frame))
    order = np.argsort(stratum, kind="stable")
    bounds = np.searchsorted(stratum[order], np.arange(len(sizes) + 1))
    for s, size in enumerate(sizes):  # one call per stratum: the allocation is within each stratum
        rows = order[bounds[s]:bounds[s + 1]]
        p = frame["score"].to_numpy(dtype="float64")[rows]
        known = ~np.isnan(p)
        # no probability: the stratum's mean weight sqrt(min(p, 1 - p)), as the probability whose weight it is
        mean_weight = uncertainty_weight(p[known]).mean() if known.any() else uncertainty_weight(np.array(0.5))
        p = np.where(known, p, mean_weight ** 2)
        prob[rows] = inclusion_probabilities(p, target_size(int(size), per_cell, fraction))
    chosen = np.flatnonzero(key < prob)
    added = frame.iloc[chosen].assign(
        stratum_size=sizes[stratum[chosen]], draw=1, position=rng.permutation(len(chosen)), seed=int(seed),
        inclusion_prob=prob[chosen], judge=judge)
    return added[list(SAMPLE_COLUMNS)].sort_values("position").reset_index(drop=True)


def imported_sample(labelled: pd.DataFrame, eligible: pd.DataFrame) -> pd.DataFrame:
    """Sample rows for completions that someone drew at random elsewhere (`verdicts import --as-random-sample`).

    `labelled`: the imported completions (completion_id, in file order) with seq and STRATA columns;
    `eligible`: every non-error completion of their runs (for the stratum sizes). The queue keeps the file's
    order; seed is None (not drawn here), draw 1. Whether the outside draw was random is the importer's claim.
    """
    sizes = stratum_sizes(eligible)
    rows = labelled.merge(sizes, on=list(STRATA), how="left")
    rows["position"] = rows.groupby("run_id").cumcount()
    return rows.assign(stratum_size=rows["completions"].astype(int), draw=1, seed=None, inclusion_prob=np.nan,
                       judge=None)[list(SAMPLE_COLUMNS)]


def summarise(sizes: pd.DataFrame, added: pd.DataFrame, existing: pd.DataFrame) -> pd.DataFrame:
    """Per stratum: completions (eligible now), sampled (in all after this draw), added (by this draw)."""
    table = sizes.copy()
    for name, rows in (("added", added), ("before", existing)):
        counts = rows.groupby(list(STRATA), dropna=False).size().rename(name).reset_index() if len(rows) else \
            pd.DataFrame(columns=[*STRATA, name])
        table = table.merge(counts, on=list(STRATA), how="left")
        table[name] = pd.to_numeric(table[name]).fillna(0).astype(int)
    table["sampled"] = table["before"] + table["added"]
    return table[[*STRATA, "completions", "sampled", "added"]]
