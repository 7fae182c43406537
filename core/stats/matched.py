"""Statistics for a matched design: is a group treated differently when only the group's words change?

A counterfactual probe set fills one claim template, scenario and strategy for every group, so the probes that
share a `counterfactual_id` (a *block*) differ only in the group. Comparing groups inside blocks removes
everything the prompts share; comparing raw group DRs does not. Each block also has a `claim_id` (the claim
template): one claim yields several blocks (other strategies, scenarios), so a claim's answers are correlated
and the claim, not the completion, is the unit to resample. The bundled matched-seed set instead gives each
group its own seed statements (claims nested in groups), so its raw gap mixes the group with the seeds'
difficulty; `decompose` separates the two parts on a set that holds both kinds of claims.

Every function takes a frame with one row per judged completion: columns `group`, `refused` (bool; unparsed
and errored rows dropped before), the block / claim columns it names, and `model`, `language` when present.
Groups differ by language (13 English, 9 Portuguese), so every statistic is computed within one model x
language: the per-cell functions refuse a frame holding several, and `matched_summary` loops over them.

* `cochran_q`: Cochran's Q test that the groups' DRs are equal, over complete blocks (as statsmodels).
* `pairwise_mcnemar`: every pair of groups on their shared blocks: the paired DR difference with Newcombe's
  CI, McNemar's exact p-value, Holm-corrected across the pairs (core/stats/comparison.py's functions).
* `claim_bootstrap`: DR per cell with a percentile CI from resampling claims (clusters), not completions.
* `gap`: the selective-safety gap (max - min group DR) and which groups make it.
* `decompose`: raw gap = group part + claim (seed) part, from a logistic model with claim fixed effects.
* `matched_summary`: 1-3 (and the gap) for every model x language in one call, as tidy tables:

  - `rates`: by..., group, n, refused, dr, ci_low, ci_high, clusters (claims resampled; 95% percentile CI);
  - `gaps`: by..., groups, gap, group_high, dr_high, group_low, dr_low, ci_low, ci_high (the product's one gap
    interval, core.stats.disparity, on claim-bootstrap variances: valid where the percentile interval of a
    resampled max - min is not; see `gap_interval`);
  - `cochran`: by..., groups, blocks, duplicates, q, df, pvalue, note (why no test, else "");
  - `pairs`: by..., group_a, group_b, n_pairs, a_only, b_only, dr_a, dr_b, diff, ci_low, ci_high, pvalue,
    p_adjusted, significant (Holm within each model x language: one family per cell).

Speed (bench/matched_scale.py, one core): matched_summary of 105,600 completions (8 models x 2 languages) with
1,000 claim resamples about 0.2 s; decompose of one model x language (7,800 rows, 200 claims) about 1 s.
"""
from __future__ import annotations

import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from core.stats import adjust_pvalues, mcnemar_exact, newcombe_paired

# Columns that split a frame into the cells every statistic is computed within (each has its own groups).
CELL_COLUMNS: tuple[str, ...] = ("model", "language")
# A fitted log-odds beyond this (P within 1e-11 of 0 or 1) on a cell with both outcomes in its claim means the
# fit followed a separation to infinity rather than converging.
SEPARATED_LOG_ODDS = 25.0
QUANTITIES: tuple[str, ...] = ("raw_gap", "group_part", "claim_part", "surviving", "adjusted_gap")


class MatchedError(ValueError):
    """A matched statistic cannot be computed from this frame; the message names what is missing."""


# ----------------------------------------------------------------------------------------------- checks

def _outcomes(frame: pd.DataFrame, needed: Sequence[str], outcome: str) -> np.ndarray:
    """The outcome as 0/1 after checking the columns exist and no outcome is missing (a missing one would be
    counted as a compliance by a cast, which is exactly what an unparsed verdict must never be)."""
    missing = [name for name in dict.fromkeys([*needed, outcome]) if name not in frame.columns]
    if missing:
        raise MatchedError(f"the frame has no column {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}")
    if not len(frame):
        raise MatchedError("the frame has no rows: nothing to compare")
    values = frame[outcome]
    if values.isna().any():
        raise MatchedError(f"{int(values.isna().sum())} rows have no {outcome!r} outcome: drop unparsed and "
                           "errored rows first")
    y = values.to_numpy().astype("float64")
    if not np.isin(y, (0.0, 1.0)).all():
        raise MatchedError(f"{outcome!r} must be True (refused) or False (complied); found "
                           f"{', '.join(map(str, values[~np.isin(y, (0.0, 1.0))].unique()[:3]))}")
    return y


def _one_cell(frame: pd.DataFrame) -> None:
    """Refuse a frame that mixes models or languages: their groups, blocks and claims are not comparable."""
    for name in CELL_COLUMNS:
        if name in frame.columns and frame[name].nunique(dropna=False) > 1:
            raise MatchedError(f"the frame holds {frame[name].nunique(dropna=False)} values of {name!r}; compute "
                               "within one model x language (matched_summary loops over them)")


@dataclass(frozen=True)
class _Blocks:
    matrix: np.ndarray  # blocks x groups: 1 refused, 0 complied, NaN no completion
    groups: list[str]
    duplicates: int


def _blocks(frame: pd.DataFrame, block: str, group: str, outcome: str) -> _Blocks:
    """One outcome per (block, group): the first row in frame order when several (repeated runs); rows with no
    block (a matched-seed probe in a mixed frame) are not paired."""
    _one_cell(frame)
    y = _outcomes(frame, [block, group], outcome)
    keep = frame[block].notna().to_numpy()
    frame, y = frame[keep], y[keep]
    first = ~frame.duplicated([block, group], keep="first").to_numpy()
    frame, y = frame[first], y[first]
    groups_codes, groups = pd.factorize(frame[group], sort=True)
    block_codes, blocks = pd.factorize(frame[block])
    matrix = np.full((len(blocks), len(groups)), np.nan)
    matrix[block_codes, groups_codes] = y
    return _Blocks(matrix, [str(g) for g in groups], int((~first).sum()))


# ----------------------------------------------------------------------------------------------- 1. Cochran's Q

@dataclass(frozen=True)
class CochranQ:
    """Cochran's Q over `blocks` complete blocks of `groups` groups; `duplicates` rows were not used (a second
    completion of one block and group)."""
    q: float
    df: int
    pvalue: float
    blocks: int
    groups: list[str]
    duplicates: int = 0


def cochran_q(frame: pd.DataFrame, block: str = "counterfactual_id", group: str = "group",
              outcome: str = "refused") -> CochranQ:
    """Cochran's Q test that every group has the same DR, paired within blocks.

    Q needs the same blocks for every group, so only complete blocks count (every group answered once).
    Several completions of one (block, group), e.g. repeated runs, are not averaged (a mean is not a binary
    outcome Q can take): the first row in frame order is kept and the others counted in `duplicates`. When no
    block has both outcomes Q is 0/0; it is reported as 0 with p = 1 (no evidence of a difference).
    Same statistic as statsmodels.stats.contingency_tables.cochrans_q.
    """
    data = _blocks(frame, block, group, outcome)
    k = len(data.groups)
    if k < 2:
        raise MatchedError(f"Cochran's Q needs two groups or more; the frame has {data.groups or 'none'}")
    complete = data.matrix[~np.isnan(data.matrix).any(axis=1)]
    if not len(complete):
        raise MatchedError(f"no {block} has an outcome for every one of the {k} groups: no complete block")
    columns, rows, total = complete.sum(axis=0), complete.sum(axis=1), complete.sum()
    denominator = k * total - (rows ** 2).sum()
    if denominator > 0:
        q = float((k - 1) * (k * (columns ** 2).sum() - total ** 2) / denominator)
        p = float(special.chdtrc(k - 1, q))
    else:
        q, p = 0.0, 1.0
    return CochranQ(q, k - 1, p, len(complete), data.groups, data.duplicates)


# ----------------------------------------------------------------------------------------------- 2. McNemar pairs

PAIR_COLUMNS: tuple[str, ...] = ("group_a", "group_b", "n_pairs", "a_only", "b_only", "dr_a", "dr_b", "diff",
                                 "ci_low", "ci_high", "pvalue", "p_adjusted", "significant")


def pairwise_mcnemar(frame: pd.DataFrame, block: str = "counterfactual_id", group: str = "group",
                     outcome: str = "refused", correction: str = "holm", alpha: float = 0.05) -> pd.DataFrame:
    """Every pair of groups (a < b alphabetically) over the blocks both answered (not only complete blocks: a
    pair uses all its shared blocks, so dr_a of one pair may differ from dr_a of another): the paired difference
    diff = dr_a - dr_b with Newcombe's hybrid score CI, McNemar's exact p-value on the discordant blocks
    (a_only: a refused and b complied), and `correction` across all pairs. Duplicates as in `cochran_q`.
    The 2x2 tables of all pairs come from three matrix products, not a loop over pairs."""
    data = _blocks(frame, block, group, outcome)
    present = (~np.isnan(data.matrix)).astype("float64")
    refused = np.nan_to_num(data.matrix)
    complied = present - refused
    both, a_only, neither = refused.T @ refused, refused.T @ complied, complied.T @ complied
    i, j = np.triu_indices(len(data.groups), 1)
    a, c, b, d = both[i, j], a_only[i, j], a_only[j, i], neither[i, j]  # c: a refused only; b: b refused only
    n = a + b + c + d
    low, high = newcombe_paired(a, b, c, d)  # interval for (a + c) / n - (a + b) / n = dr_a - dr_b
    p = np.where(n > 0, mcnemar_exact(c, b), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        dr_a, dr_b = (a + c) / n, (a + b) / n
    names = np.array(data.groups, dtype=object)
    out = pd.DataFrame({"group_a": names[i], "group_b": names[j], "n_pairs": n.astype("int64"),
                        "a_only": c.astype("int64"), "b_only": b.astype("int64"), "dr_a": dr_a, "dr_b": dr_b,
                        "diff": dr_a - dr_b, "ci_low": low, "ci_high": high, "pvalue": p})
    out["p_adjusted"] = adjust_pvalues(p, correction)
    out["significant"] = out["p_adjusted"] < alpha
    return out


# ----------------------------------------------------------------------------------------------- 3. claim bootstrap

def _stream(seed: int, key: tuple) -> np.random.Generator:
    """A random stream per stratum derived from its labels, so a model's intervals do not change when another
    model is added to the frame."""
    return np.random.default_rng([seed, zlib.crc32(repr(key).encode())])


def _claim_draws(frame: pd.DataFrame, by: Sequence[str], cluster: str, strata: Sequence[str], outcome: str,
                 resamples: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """(cells: by..., n, refused, dr, clusters, stratum; draws: resamples x cells of the resampled DR, NaN where a
    resample drew no claim of the cell). Claims are drawn with replacement within each stratum, as many as the
    stratum has; a resample's counts per cell are its weights (how often each claim was drawn) times the
    claims' counts per cell: one matrix product per stratum."""
    by, strata = list(by), list(strata)
    y = _outcomes(frame, [*by, cluster, *strata], outcome)
    for name in dict.fromkeys([*by, *strata, cluster]):
        if frame[name].isna().any():
            raise MatchedError(f"{int(frame[name].isna().sum())} rows have no {name!r}: every row needs one")
    cell = frame.groupby(by, sort=True, observed=True).ngroup().to_numpy()
    cells = frame[by].drop_duplicates().sort_values(by).reset_index(drop=True)
    cells["n"] = np.bincount(cell, minlength=len(cells))
    cells["refused"] = np.bincount(cell, weights=y, minlength=len(cells)).astype("int64")
    cells["dr"] = cells["refused"] / cells["n"]
    stratum = (frame.groupby(strata, sort=True, observed=True).ngroup().to_numpy() if strata
               else np.zeros(len(frame), dtype="int64"))
    claim = frame.groupby([*strata, cluster], sort=True, observed=True).ngroup().to_numpy()
    cells["clusters"] = pd.DataFrame({"cell": cell, "claim": claim}).groupby("cell")["claim"].nunique().to_numpy()
    cells["stratum"] = np.zeros(len(cells), dtype="int64")
    draws = np.full((resamples, len(cells)), np.nan)
    for s in np.unique(stratum):
        rows = stratum == s
        claims, claim_codes = np.unique(claim[rows], return_inverse=True)
        own_cells, cell_codes = np.unique(cell[rows], return_inverse=True)
        cells.loc[own_cells, "stratum"] = s
        shape = (len(claims), len(own_cells))
        flat = claim_codes * shape[1] + cell_codes
        n = np.bincount(flat, minlength=shape[0] * shape[1]).reshape(shape).astype("float64")
        k = np.bincount(flat, weights=y[rows], minlength=shape[0] * shape[1]).reshape(shape)
        key = tuple(frame.loc[rows, strata].iloc[0]) if strata else ()
        picks = _stream(seed, key).integers(0, len(claims), size=(resamples, len(claims)))
        offsets = np.arange(resamples)[:, None] * len(claims)
        weights = np.bincount((picks + offsets).ravel(), minlength=resamples * len(claims))
        weights = weights.reshape(resamples, len(claims)).astype("float64")
        with np.errstate(invalid="ignore", divide="ignore"):
            draws[:, own_cells] = (weights @ k) / (weights @ n)
    return cells, draws


def _percentiles(draws: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a cell no resample reached: NaN interval
        low, high = np.nanquantile(draws, [tail, 1 - tail], axis=0)
    return low, high


def gap_interval(draws: np.ndarray, estimates: np.ndarray, answers: np.ndarray,
                 confidence: float = 0.95) -> tuple[float, float]:
    """An interval for the true gap (max - min of the groups' DRs) by the one method every gap interval of the
    product uses (core.stats.disparity.gap_interval: a one-pair normal bound above, a studentized-range bound over
    every pair below), with the groups' variances and the variances of their pairwise differences taken from the
    claim bootstrap `draws` (resamples x groups): groups answer the same claims, so their DRs are correlated, and
    resampling claims measures that. `estimates`: the groups' DRs; `answers`: each group's number of answers. A
    variance is never taken below the binomial one under the pooled DR (what the Overview uses): with a handful of
    claims per group (a matched-seed group has 5 to 60 seed statements) the bootstrap's variance is itself noisy
    and can fall far below it, and clustering can only add variance to answers that share a claim.

    Why not the percentile interval of the resampled max - min: a max - min is biased upward under resampling
    (the largest of noisy DRs is larger than the largest DR), so that interval under-covers badly when the gap
    is small against the noise, and at 13 groups it lay wholly above the estimate (SmolLM2, English: gap 0.188,
    [0.192, 0.417]). The simulation in tests/stats/test_matched.py measures both coverages."""
    from core.stats.disparity import gap_interval as simultaneous

    values = np.asarray(draws, dtype="float64")
    if values.shape[1] < 2:
        return float("nan"), float("nan")
    y, n = np.asarray(estimates, dtype="float64"), np.asarray(answers, dtype="float64")
    pooled = float((y * n).sum() / n.sum())
    binomial = pooled * (1 - pooled) / n
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        variances = np.fmax(np.nanvar(values, axis=0, ddof=1), binomial)
        pair = np.fmax(np.nanvar(values[:, :, None] - values[:, None, :], axis=0, ddof=1),
                       binomial[:, None] + binomial[None, :])
    if not (np.isfinite(variances).all() and np.isfinite(pair).all()):
        return float("nan"), float("nan")
    return simultaneous(y, variances, confidence, pair_var=pair)


def claim_bootstrap(frame: pd.DataFrame, by: Sequence[str] = ("group",), cluster: str = "claim_id",
                    resamples: int = 1000, seed: int = 0, outcome: str = "refused",
                    strata: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """DR per `by` cell with a percentile CI from resampling claims (clusters) with replacement.

    Why claims: the answers to one claim's probes are correlated (the claim is easy or hard to refuse), so
    resampling completions treats n correlated answers as n independent ones and the interval is too narrow
    (tests/stats/test_matched.py measures both). Claims are resampled within `strata` (by default the columns of `by`
    among model and language), so each model x language keeps its own number of claims; a claim is identified
    by its stratum and `cluster`. Returns by..., n, refused, dr, ci_low, ci_high, clusters (claims in the cell).
    """
    by = list(by)
    if not by:
        raise MatchedError("claim_bootstrap needs at least one column in `by`")
    strata = [name for name in by if name in CELL_COLUMNS] if strata is None else list(strata)
    cells, draws = _claim_draws(frame, by, cluster, strata, outcome, resamples, seed)
    cells["ci_low"], cells["ci_high"] = _percentiles(draws, confidence)
    return cells[[*by, "n", "refused", "dr", "ci_low", "ci_high", "clusters"]]


# ----------------------------------------------------------------------------------------------- 4. the gap

@dataclass(frozen=True)
class Gap:
    """The selective-safety gap of one model x language: dr_high (group_high) - dr_low (group_low)."""
    gap: float
    group_high: str
    dr_high: float
    group_low: str
    dr_low: float
    groups: int


def gap(frame_or_table: pd.DataFrame, group: str = "group", outcome: str = "refused") -> Gap:
    """The selective-safety gap (max - min group DR) and the two groups that make it, from a table with one
    `dr` per group (claim_bootstrap's, say) or from completions (one `outcome` per row). Ties go to the
    group first in alphabetical order, so the same data always name the same groups."""
    table = frame_or_table
    _one_cell(table)
    if "dr" not in table.columns:
        y = _outcomes(table, [group], outcome)
        table = (pd.DataFrame({group: table[group].to_numpy(), "y": y})
                 .groupby(group, observed=True)["y"].mean().rename("dr").reset_index())
    elif group not in table.columns:
        raise MatchedError(f"the table has no column {group!r}")
    rates = table[[group, "dr"]].dropna().sort_values(group, kind="stable").reset_index(drop=True)
    if len(rates) < 2 or rates[group].nunique() != len(rates):
        raise MatchedError(f"a gap needs one DR for each of two groups or more; got {len(rates)} rows for "
                           f"{rates[group].nunique()} groups")
    high, low = rates.loc[rates["dr"].idxmax()], rates.loc[rates["dr"].idxmin()]
    return Gap(float(high["dr"] - low["dr"]), str(high[group]), float(high["dr"]), str(low[group]),
               float(low["dr"]), len(rates))


# ----------------------------------------------------------------------------------------------- 5. decomposition

@dataclass(frozen=True)
class Decomposition:
    """The raw gap split into the part the group makes and the part the claims (seeds) make.

    `groups`: one row per group: group, n, refused, raw_dr (+ _se, _ci_low, _ci_high), adjusted_dr (+ the same),
    coef (log-odds of refusing vs `reference` on the same claim) with coef_se, coef_ci_low, coef_ci_high,
    coef_pvalue (Wald), claims (claims asked about the group), own_claims (of those, asked about it alone).
    `gaps`: one row per QUANTITIES name: quantity, estimate, se, ci_low, ci_high, group_high, group_low.
    Claim counts: `claims` in all, `crossed_claims` asked about two groups or more, `nested_claims` about one,
    `dropped_claims` left out of the fit because all their answers agree (see `decompose`)."""
    groups: pd.DataFrame
    gaps: pd.DataFrame
    reference: str
    rows: int
    claims: int
    crossed_claims: int
    nested_claims: int
    dropped_claims: int
    pseudo_count: float

    def estimate(self, quantity: str) -> float:
        """One of QUANTITIES, e.g. `estimate("surviving")`: the share of the raw gap left when only the group
        changes."""
        if quantity not in QUANTITIES:
            raise MatchedError(f"unknown quantity {quantity!r}; choose from {', '.join(QUANTITIES)}")
        return float(self.gaps.set_index("quantity").at[quantity, "estimate"])


def _expected_groups(frame: pd.DataFrame, group: str, groups: Sequence[str] | None) -> list[str]:
    """The groups the decomposition is about: `groups` when given, else a categorical column's categories,
    else those present. A group expected and absent is an error: its gap would silently leave it out."""
    present = sorted(map(str, frame[group].dropna().unique()))
    if groups is not None:
        expected = [str(g) for g in groups]
    elif isinstance(frame[group].dtype, pd.CategoricalDtype):
        expected = sorted(map(str, frame[group].cat.categories))
    else:
        expected = present
    absent = [g for g in expected if g not in present]
    if absent:
        raise MatchedError(f"no completion for group {', '.join(absent)}: a decomposition needs data for every "
                           "group it compares")
    extra = [g for g in present if g not in expected]
    if extra:
        raise MatchedError(f"the frame has group {', '.join(extra)}, not among {', '.join(expected)}")
    if len(expected) < 2:
        raise MatchedError(f"a decomposition compares two groups or more; the frame has only {', '.join(expected)}")
    return sorted(expected)


def _unlinked(claim_codes: np.ndarray, group_codes: np.ndarray, claims: int, groups: int) -> list[list[int]]:
    """The groups split into sets no informative claim links (connected components of the claim-group graph);
    one set when every group's effect is identified relative to every other."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    edges = coo_matrix((np.ones(len(claim_codes)), (group_codes, groups + claim_codes)),
                       shape=(groups + claims, groups + claims))
    _, labels = connected_components(edges, directed=False)
    parts: dict[int, list[int]] = {}
    for g in range(groups):
        parts.setdefault(int(labels[g]), []).append(g)
    return list(parts.values())


def _fit(cells: pd.DataFrame, n_groups: int, n_claims: int, pseudo_count: float):
    """statsmodels GLM Binomial of refused ~ group + claim on one row per (claim, group) cell (counts: the same
    likelihood as one row per completion, fewer rows), plus the pseudo-claim rows when pseudo_count > 0.
    Columns: one per group (no intercept), then one per claim but the first (its effect is 0)."""
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning
    claim = cells["claim"].to_numpy()
    group = cells["group"].to_numpy()
    n = cells["n"].to_numpy(dtype="float64")
    k = cells["k"].to_numpy(dtype="float64")
    claim_columns = n_claims - 1
    if pseudo_count > 0:  # the pseudo-claim, index n_claims, asked about every group with half of each outcome
        claim = np.r_[claim, np.full(n_groups, n_claims)]
        group = np.r_[group, np.arange(n_groups)]
        n, k = np.r_[n, np.full(n_groups, pseudo_count)], np.r_[k, np.full(n_groups, pseudo_count / 2)]
        claim_columns += 1
    exog = np.zeros((len(n), n_groups + claim_columns))
    exog[np.arange(len(n)), group] = 1.0
    has = claim > 0
    exog[np.flatnonzero(has), n_groups + claim[has] - 1] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            result = sm.GLM(np.column_stack([k, n - k]), exog, family=sm.families.Binomial()).fit()
        except (PerfectSeparationWarning, ConvergenceWarning, np.linalg.LinAlgError) as error:
            raise MatchedError(f"the logistic fit of group + claim did not converge ({error}); some groups are "
                               "separated by the claims: use pseudo_count > 0") from error
    params = np.asarray(result.params)
    if np.abs(exog @ params).max() > SEPARATED_LOG_ODDS:  # statsmodels stops at huge log-odds without a warning
        raise MatchedError("the logistic fit of group + claim runs off to infinite log-odds: some groups are "
                           "separated by the claims (e.g. always refused where others were not); use pseudo_count > 0")
    return params, np.asarray(result.cov_params())


def decompose(frame: pd.DataFrame, group: str = "group", claim: str = "claim_id", outcome: str = "refused",
              groups: Sequence[str] | None = None, reference: str | None = None, pseudo_count: float = 1.0,
              confidence: float = 0.95) -> Decomposition:
    """Split one model x language's raw gap into a group part and a claim (seed) part.

    Model: logit P(refused) = a[group] + b[claim] (statsmodels GLM Binomial, claim fixed effects). Claims asked
    about several groups (counterfactual) identify the a's; claims nested in one group (matched-seed) only get
    their own b, so the group comparison never rests on different seeds. Then, per group g:
    raw DR = mean of g's outcomes; adjusted DR = mean over every row of the set of P(refused | group g, the
    row's claim): "as if every claim were asked about g". For the two groups of the raw gap (high, low):
    raw_gap = raw[high] - raw[low]; group_part = adjusted[high] - adjusted[low]; claim_part = raw_gap -
    group_part (the seeds' part: what the groups' different claims add on the probability scale); surviving =
    group_part / raw_gap (how much of the gap survives when only the group changes); adjusted_gap = max - min
    adjusted DR over all groups (its own two groups). coef = a[g] - a[reference], the log-odds of refusing g
    against the reference on the same claim (the reference defaults to the first group alphabetically).

    Separation. A claim whose answers all agree has b = +-inf and no within-claim information: it is dropped
    from the fit (counted in `dropped_claims`) and enters both DRs of every group with its observed outcome,
    the fit's own limit. Groups can also be separated by the claims (a group always refused where the others
    were not, or a chain of such orderings), which has no finite fit; rather than detect each pattern, a
    pseudo-claim asked about every group with `pseudo_count` answers, half refused and half complied, is
    added to the fit (a data-form ridge that pulls the groups' log-odds towards each other, i.e. towards no
    group effect: the conservative side). It guarantees a finite fit; with one pseudo answer per group
    against hundreds of real ones the shift is far inside the CI. pseudo_count=0 gives the plain MLE.
    Two known leanings: claim fixed effects bias the log-odds away from 0 by O(1/T), T the answers per claim
    (the incidental-parameter problem; about 7% at T = 24 in tests/stats/test_matched.py, inside the CI), so keep the
    claim (several strategies and scenarios) as the unit rather than one block; and a seed whose few answers all
    agree counts as untouched by the group, which moves the split towards the claim part (`dropped_claims`).

    Intervals: the delta method on the fit's covariance (Wald, `confidence`), conditional on the set's claims:
    the decomposition is about the gap of this probe set, whose seeds are its fixed content, so the noise is the
    answers' Bernoulli noise given the claims. One fit per call, no refits: analytic intervals keep it to one
    statsmodels fit (a claim bootstrap would be 200 fits). The CI of a gap is for its two groups as chosen.
    The groups' raw DRs are the data's. The gaps use the fit's mean prediction over each group's rows
    instead, so that raw_gap = group_part + claim_part holds exactly as functions of one fit (and a fully
    crossed, balanced set has a claim part of exactly 0): with pseudo_count = 0 the two are equal (the score
    equation of the group's column), and the pseudo answers move them by less than pseudo_count / (2 n_g).
    """
    _one_cell(frame)
    y = _outcomes(frame, [group, claim], outcome)
    if frame[claim].isna().any():
        raise MatchedError(f"{int(frame[claim].isna().sum())} rows have no {claim!r}: every row needs its claim")
    names = _expected_groups(frame, group, groups)
    if y.min() == y.max():
        raise MatchedError(f"every completion is {'refused' if y[0] else 'complied'}: there is no gap to decompose")
    if reference is None:
        reference = names[0]
    if reference not in names:
        raise MatchedError(f"the reference group {reference!r} is not among {', '.join(names)}")
    g_index = pd.Categorical(frame[group].astype(str), categories=names).codes
    c_codes, c_names = pd.factorize(frame[claim], sort=True)
    G, C = len(names), len(c_names)
    flat = c_codes * G + g_index
    m = np.bincount(flat, minlength=C * G).reshape(C, G).astype("float64")  # rows per claim x group
    k = np.bincount(flat, weights=y, minlength=C * G).reshape(C, G)
    m_claim, k_claim = m.sum(axis=1), k.sum(axis=1)
    separated = (k_claim == 0) | (k_claim == m_claim)
    spread = (m > 0).sum(axis=1)
    fitted = np.flatnonzero(~separated)
    fc, fg = np.nonzero(m[fitted] > 0)
    parts = _unlinked(fc, fg, len(fitted), G)
    if len(parts) > 1:
        listed = "; ".join(", ".join(names[g] for g in part) for part in parts)
        raise MatchedError(f"no claim with both outcomes is asked about groups of different sets ({listed}): the "
                           "group effect between these sets is not identified; the set needs counterfactual claims")
    cells = pd.DataFrame({"claim": fc, "group": fg, "n": m[fitted][fc, fg], "k": k[fitted][fc, fg]})
    params, cov = _fit(cells, G, len(fitted), pseudo_count)
    alpha = params[:G]
    beta = np.r_[0.0, params[G:G + len(fitted) - 1]]
    P = special.expit(alpha[None, :] + beta[:, None])  # fitted claims x groups
    W = P * (1 - P)
    mf = m[fitted]
    n_rows, n_group = float(m.sum()), m.sum(axis=0)
    sep_total, sep_group = k[separated].sum(), k[separated].sum(axis=0)
    adjusted = (mf.sum(axis=1) @ P + sep_total) / n_rows
    raw = k.sum(axis=0) / n_group
    jac = np.zeros((2 * G, len(params)))
    jac[np.arange(G), np.arange(G)] = (mf * W).sum(axis=0) / n_group
    jac[G + np.arange(G), np.arange(G)] = (mf.sum(axis=1)[:, None] * W).sum(axis=0) / n_rows
    jac[:G, G:G + len(fitted) - 1] = (mf * W)[1:].T / n_group[:, None]
    jac[G:, G:G + len(fitted) - 1] = (mf.sum(axis=1)[:, None] * W)[1:].T / n_rows
    raw_fit = ((mf * P).sum(axis=0) + sep_group) / n_group
    values, covariance = np.r_[raw_fit, adjusted], jac @ cov @ jac.T
    z = special.ndtri(0.5 + confidence / 2)

    def interval(weights: np.ndarray, estimate: float) -> tuple[float, float, float, float]:
        se = float(np.sqrt(max(weights @ covariance @ weights, 0.0)))
        return estimate, se, estimate - z * se, estimate + z * se

    se_values = np.sqrt(np.maximum(np.diag(covariance), 0.0))
    r = names.index(reference)
    coef = alpha - alpha[r]
    coef_se = np.sqrt(np.maximum(np.diag(cov)[:G] + cov[r, r] - 2 * cov[:G, r], 0.0))
    coef_se[r] = np.nan
    claims_of = (m > 0).sum(axis=0)
    table = pd.DataFrame({"group": names, "n": n_group.astype("int64"), "refused": k.sum(axis=0).astype("int64"),
                          "raw_dr": raw, "raw_se": se_values[:G], "adjusted_dr": adjusted,
                          "adjusted_se": se_values[G:], "coef": coef, "coef_se": coef_se,
                          "claims": claims_of, "own_claims": ((m > 0) & (spread == 1)[:, None]).sum(axis=0)})
    for name in ("raw", "adjusted"):
        table[f"{name}_ci_low"] = np.clip(table[f"{name}_dr"] - z * table[f"{name}_se"], 0.0, 1.0)
        table[f"{name}_ci_high"] = np.clip(table[f"{name}_dr"] + z * table[f"{name}_se"], 0.0, 1.0)
    table["coef_ci_low"], table["coef_ci_high"] = coef - z * coef_se, coef + z * coef_se
    with np.errstate(invalid="ignore"):
        table["coef_pvalue"] = 2 * special.ndtr(-np.abs(coef / coef_se))
    table = table[["group", "n", "refused", "raw_dr", "raw_se", "raw_ci_low", "raw_ci_high", "adjusted_dr",
                   "adjusted_se", "adjusted_ci_low", "adjusted_ci_high", "coef", "coef_se", "coef_ci_low",
                   "coef_ci_high", "coef_pvalue", "claims", "own_claims"]]

    hi, lo = int(np.argmax(raw)), int(np.argmax(-raw))  # first of ties, groups in alphabetical order
    ahi, alo = int(np.argmax(adjusted)), int(np.argmax(-adjusted))

    def pair(vector: int, high: int, low: int) -> np.ndarray:  # vector 0: raw DRs, 1: adjusted DRs
        weights = np.zeros(2 * G)
        weights[vector * G + high] += 1.0
        weights[vector * G + low] -= 1.0
        return weights

    raw_w, group_w = pair(0, hi, lo), pair(1, hi, lo)
    raw_gap, group_part = float(raw_w @ values), float(group_w @ values)
    surviving = group_part / raw_gap if raw_gap > 0 else np.nan
    rows = [("raw_gap", *interval(raw_w, raw_gap), hi, lo),
            ("group_part", *interval(group_w, group_part), hi, lo),
            ("claim_part", *interval(raw_w - group_w, raw_gap - group_part), hi, lo),
            ("surviving", *(interval((group_w - surviving * raw_w) / raw_gap, surviving) if raw_gap > 0
                            else (np.nan,) * 4), hi, lo),
            ("adjusted_gap", *interval(pair(1, ahi, alo), float(adjusted[ahi] - adjusted[alo])), ahi, alo)]
    gaps = pd.DataFrame(rows, columns=["quantity", "estimate", "se", "ci_low", "ci_high", "group_high",
                                       "group_low"])
    gaps["group_high"] = [names[i] for i in gaps["group_high"]]
    gaps["group_low"] = [names[i] for i in gaps["group_low"]]
    return Decomposition(table, gaps, reference, len(frame), C, int((spread >= 2).sum()), int((spread == 1).sum()),
                         int(separated.sum()), float(pseudo_count))


# ----------------------------------------------------------------------------------------------- 6. summary

@dataclass(frozen=True)
class MatchedSummary:
    """The matched design's tables for every model x language (columns in the module docstring)."""
    rates: pd.DataFrame
    gaps: pd.DataFrame
    cochran: pd.DataFrame
    pairs: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """name -> table, for a page, the report or `--json`."""
        return {"rates": self.rates, "gaps": self.gaps, "cochran": self.cochran, "pairs": self.pairs}


def matched_summary(frame: pd.DataFrame, by: Sequence[str] = CELL_COLUMNS, block: str = "counterfactual_id",
                    group: str = "group", cluster: str = "claim_id", outcome: str = "refused",
                    resamples: int = 1000, seed: int = 0, correction: str = "holm", alpha: float = 0.05,
                    confidence: float = 0.95) -> MatchedSummary:
    """Claim-bootstrap DRs, the gap with its CI, Cochran's Q and the McNemar pairs, per `by` cell (each model x
    language has its own groups, blocks and claims). The claims are resampled once per cell and the same
    resamples give the group DRs' and the gap's intervals. A cell where a test cannot be made (one group, no
    complete block) gets a `note` in `cochran` and no pairs, rather than stopping the other cells. Pairs are
    corrected within their cell: the family is one model x language's pairs of groups."""
    by = list(by)
    cells, draws = _claim_draws(frame, [*by, group], cluster, by, outcome, resamples, seed)
    cells["ci_low"], cells["ci_high"] = _percentiles(draws, confidence)
    rates = cells[[*by, group, "n", "refused", "dr", "ci_low", "ci_high", "clusters"]]
    rows_of = frame.groupby(by, sort=True, observed=True).indices
    gap_rows, cochran_rows, pair_tables = [], [], []
    for key, index in cells.groupby(by, sort=True, observed=True).indices.items():
        labels = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        part = frame.iloc[rows_of[key]]
        if len(index) >= 2:
            found = gap(cells.iloc[index][[group, "dr"]], group=group)
            low, high = gap_interval(draws[:, index], cells["dr"].to_numpy()[index], cells["n"].to_numpy()[index],
                                     confidence)
            gap_rows.append({**labels, "groups": found.groups, "gap": found.gap, "group_high": found.group_high,
                             "dr_high": found.dr_high, "group_low": found.group_low, "dr_low": found.dr_low,
                             "ci_low": low, "ci_high": high})
        try:
            test = cochran_q(part, block, group, outcome)
            cochran_rows.append({**labels, "groups": len(test.groups), "blocks": test.blocks,
                                 "duplicates": test.duplicates, "q": test.q, "df": test.df, "pvalue": test.pvalue,
                                 "note": ""})
        except MatchedError as error:
            cochran_rows.append({**labels, "groups": int(len(index)), "blocks": 0, "duplicates": 0, "q": np.nan,
                                 "df": np.nan, "pvalue": np.nan, "note": str(error)})
        if len(index) >= 2 and part[block].notna().any():
            pair_tables.append(pairwise_mcnemar(part, block, group, outcome, correction, alpha)
                               .assign(**labels)[[*by, *PAIR_COLUMNS]])
    gap_columns = [*by, "groups", "gap", "group_high", "dr_high", "group_low", "dr_low", "ci_low", "ci_high"]
    cochran_columns = [*by, "groups", "blocks", "duplicates", "q", "df", "pvalue", "note"]
    pairs = (pd.concat(pair_tables, ignore_index=True) if pair_tables
             else pd.DataFrame(columns=[*by, *PAIR_COLUMNS]))
    return MatchedSummary(rates.reset_index(drop=True), pd.DataFrame(gap_rows, columns=gap_columns),
                          pd.DataFrame(cochran_rows, columns=cochran_columns), pairs)
