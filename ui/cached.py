"""Store reads for pages, cached per database version (the file's modification time is in every key).

The judged frame of a large store (528,000 completions) takes seconds to load and is large to copy, so
pages ask for the small table they draw instead: DuckDB counts labels per cell (Store.label_counts), and
core.stats.rates computes the Defense Rate table from those counts once per (database version, judge,
filters, grouping) and serves it from the cache on every later rerun. A write
(a finished batch, a human verdict) changes the file's modification time, so no view shows stale data.

Corrected tables follow the same pattern: Store.ppi_inputs (population counts per cell and
stratum, one row per sample label) is read once per (database version, judge, filters) at the heatmaps' finest
grain, and core.ppi.CorrectedRates sums it up to each grouping a page asks for (`corrected`,
`headline`, `judge_errors`); `sample_labels` says whether a selection has any human checks, which
is what makes a view corrected by default.

The views of core.views (headline, over-refusal, cross-lingual, scaling, reproduction) are cached as their
small results, computed from the same cached counts: `headline`, `over_refusal`, `cross_lingual`, `scaling`,
`reproduction` below, one per view. No page reads the one-row-per-completion frame.

Every read of a selection follows the page's runs and probe set (ui.filters.selection: the sidebar's run selector
and probe-set choice, kept in the URL; core/views/selection.py says the rule): `_key` adds them to the filters a page
passes (a page's own `run_id` or `probe_set` wins), so they are part of every cache key and every view of a page
shows the answers its header sentence names.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

from core import views
from core.mitigate.audit import BeforeAfter, before_after, known_mitigations
from core.ppi import CorrectedRates, JudgeError, judge_error
from core.stats import estimates
from core.stats.rates import CELL_GRAIN, DefenseRates
from core.store import Store
from core.views import compare as paired
from core.views import selection
from core.views.compare import RunComparison, Side, all_pairs
from core.views.counterfactual import Counterfactual
from core.views.cross_lingual import CrossLingual
from core.views.disparity import Disparity
from core.views.headline import Headline
from core.views.over_refusal import OverRefusal
from core.views.reproduction import Reproduction
from core.views.scaling import Scaling
from core.vocab import dimensions, taxonomy
from ui import filters as url

# The mean a cell deviates from: its model's, within one language (group sets differ by language).
DEVIATION_BASELINE: tuple[str, ...] = dimensions.within()


def _key(filters: Mapping[str, Sequence[str]]) -> tuple:
    """Filters with the page's selection (runs, probe set; the filters' own win) as a hashable, order-independent
    cache key."""
    return _frozen({**url.selection(), **{name: values for name, values in filters.items() if values}})


def _frozen(filters: Mapping[str, Sequence[str]]) -> tuple:
    """Filters as they are (inside a cached read, whose key holds the selection already) as a hashable key."""
    return tuple(sorted((name, (values,) if isinstance(values, str) else tuple(values))
                        for name, values in filters.items() if values))


@st.cache_data(show_spinner="Counting verdicts…", max_entries=64)
def _counts(path: str, mtime: float, judge: str, filters: tuple, by: tuple[str, ...]) -> pd.DataFrame:
    return Store(path, readonly=True).label_counts(judge, list(by), dict(filters))


def counts(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]], by: Sequence[str]) -> pd.DataFrame:
    """Store.label_counts(): refused, complied, unparsed and errors per cell of `by`, counted by DuckDB."""
    return _counts(path, mtime, judge, _key(filters), tuple(by))


@st.cache_data(show_spinner="Computing Defense Rates…", max_entries=64)
def _rates(path: str, mtime: float, judge: str, filters: tuple, by: tuple[str, ...], deviations: bool) -> pd.DataFrame:
    # Counted by DuckDB (kilobytes), never the 528,000-row judged frame (see Store.label_counts), at one
    # fine grain per filter set, so every table of a page comes from one query; DefenseRates sums up to `by`.
    grain = CELL_GRAIN if set(by) <= set(CELL_GRAIN) else tuple(by)
    table = DefenseRates(_counts(path, mtime, judge, filters, grain), list(by))
    if deviations:
        return table.deviations([c for c in DEVIATION_BASELINE if c in by])
    return table.table


def rates(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]], by: Sequence[str],
          deviations: bool = False) -> pd.DataFrame:
    """DefenseRates(judged frame, by).table (n, dr, ci_low, ci_high...), or with each cell's deviation from its
    model's mean per language (deviation, dev_ci_low, dev_ci_high, significant) when `deviations`."""
    return _rates(path, mtime, judge, _key(filters), tuple(by), deviations)


# The grain corrected tables are computed from: the heatmaps' finest cells (Store.ppi_inputs adds the strata).
PPI_GRAIN: tuple[str, ...] = CELL_GRAIN


@st.cache_data(show_spinner="Reading the review sample…", max_entries=32)
def _ppi_inputs(path: str, mtime: float, judge: str, filters: tuple,
                grain: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    population, sample, _ = Store(path, readonly=True).ppi_inputs(judge, list(grain), dict(filters))
    return population, sample


def review_sample(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]],
                  by: Sequence[str] = PPI_GRAIN) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Store.ppi_inputs(): (population counts per cell and stratum, one row per sample label) for a selection."""
    return _ppi_inputs(path, mtime, judge, _key(filters), tuple(by))


def sample_labels(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]]) -> int:
    """How many human checks of the review sample the selection holds (0: only the judge's figures exist)."""
    return estimates.sample_labels(review_sample(path, mtime, judge, filters)[1])


@st.cache_data(show_spinner="Correcting Defense Rates with the human checks…", max_entries=64)
def _corrected(path: str, mtime: float, judge: str, filters: tuple, by: tuple[str, ...], deviations: bool,
               min_human: int, power_tuning: bool) -> pd.DataFrame:
    # One sample query per filter set at the finest grain the pages use; CorrectedRates sums up to `by`.
    grain = PPI_GRAIN if set(by) <= set(PPI_GRAIN) else tuple(by)
    population, sample = _ppi_inputs(path, mtime, judge, filters, grain)
    table = CorrectedRates(population, sample, list(by), power_tuning=power_tuning, min_human=min_human)
    if deviations:
        return table.deviations([c for c in DEVIATION_BASELINE if c in by])
    return table.table


def corrected(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]], by: Sequence[str],
              deviations: bool = False, min_human: int = 10, power_tuning: bool = False) -> pd.DataFrame:
    """CorrectedRates(...).table per cell of `by` (n, n_human, dr corrected, ci_low, ci_high, dr_judge, rectifier,
    note), or its deviations from each model's mean per language when `deviations` (same names as rates())."""
    return _corrected(path, mtime, judge, _key(filters), tuple(by), deviations, int(min_human), bool(power_tuning))


@st.cache_data(show_spinner="Measuring the judge's errors by group…", max_entries=16)
def _judge_error(path: str, mtime: float, judge: str, filters: tuple, by: tuple[str, ...]) -> JudgeError | None:
    population, sample = _ppi_inputs(path, mtime, judge, filters, PPI_GRAIN)
    return judge_error(sample, by=list(by), population=population) if len(sample) else None


def judge_errors(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]],
                 by: Sequence[str] = ("language", "group")) -> JudgeError | None:
    """core.ppi.judge_error on the selection's sample labels (false-refusal / false-compliance rates by group,
    the test that they differ); None when the selection has no sample labels."""
    return _judge_error(path, mtime, judge, _key(filters), tuple(by))


# -- the views of core.views, each cached as its small result ------------------------------------
@st.cache_data(show_spinner="Reading the database…", max_entries=16)
def _headline(path: str, mtime: float, judge: str, filters: tuple, min_human: int) -> Headline:
    scope = _frozen(views.headline.scope(dict(filters)))
    population, sample = _ppi_inputs(path, mtime, judge, scope, PPI_GRAIN)
    return views.headline.compute(_counts(path, mtime, judge, scope, views.headline.GRAIN),
                                     population=population, sample=sample, min_human=min_human,
                                     words=Store(path, readonly=True).taxonomy())


def headline(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]] | None = None,
             min_human: int = 10) -> Headline:
    """core.views.headline of the selection's attack probes: the judge's, the corrected and the combined
    headline per model and language (the Overview's table; the HTML report draws the same result)."""
    return _headline(path, mtime, judge, _key(filters or {}), int(min_human))


@st.cache_data(show_spinner="Separating disparity from noise…", max_entries=16)
def _disparity(path: str, mtime: float, judge: str, filters: tuple, estimator: str | None,
               min_human: int) -> Disparity:
    scope = _key(views.disparity.scope(dict(filters)))
    population, sample = _ppi_inputs(path, mtime, judge, scope, PPI_GRAIN)
    return views.disparity.compute(_counts(path, mtime, judge, scope, views.disparity.GRAIN),
                                      population=population, sample=sample, estimator=estimator,
                                      min_human=min_human, words=Store(path, readonly=True).taxonomy())


def disparity(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]] | None = None,
              estimator: str | None = None, min_human: int = 10) -> Disparity:
    """core.views.disparity of the selection's attack probes per model and language: the observed gap, the
    noise gap, the gap beyond noise and the sentence that says it (the Overview and the report draw the same)."""
    return _disparity(path, mtime, judge, _key(filters or {}), estimator, int(min_human))


@st.cache_data(show_spinner="Computing over-refusal…", max_entries=16)
def _over_refusal(path: str, mtime: float, judge: str, filters: tuple) -> OverRefusal:
    scope = _frozen(views.over_refusal.scope(dict(filters)))
    return views.over_refusal.compute(_counts(path, mtime, judge, scope, views.over_refusal.GRAIN))


def over_refusal(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]]) -> OverRefusal:
    """core.views.over_refusal of the selection (attack and control probes)."""
    return _over_refusal(path, mtime, judge, _key(filters))


@st.cache_data(show_spinner="Comparing languages…", max_entries=16)
def _cross_lingual(path: str, mtime: float, judge: str, filters: tuple) -> CrossLingual:
    scope = _frozen(views.cross_lingual.scope(dict(filters)))
    return views.cross_lingual.compute(_counts(path, mtime, judge, scope, views.cross_lingual.GRAIN))


def cross_lingual(path: str, mtime: float, judge: str,
                  filters: Mapping[str, Sequence[str]] | None = None) -> CrossLingual:
    """core.views.cross_lingual of the selection's attack probes."""
    return _cross_lingual(path, mtime, judge, _key(filters or {}))


@st.cache_data(show_spinner="Computing disparity by model size…", max_entries=16)
def _scaling(path: str, mtime: float, judge: str, filters: tuple) -> Scaling:
    scope = _frozen(views.scaling.scope(dict(filters)))
    return views.scaling.compute(_counts(path, mtime, judge, scope, views.scaling.GRAIN),
                                    targets=Store(path, readonly=True).targets())


def scaling(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]]) -> Scaling:
    """core.views.scaling of the selection's attack probes (raises core.stats.rates.MetricsError as it does)."""
    return _scaling(path, mtime, judge, _key(filters))


@st.cache_data(show_spinner="Computing deviations…", max_entries=16)
def _reproduction(path: str, mtime: float, judge: str, language: str, chosen: tuple) -> Reproduction:
    scope = _frozen({**dict(chosen), **views.reproduction.scope(language)})
    return views.reproduction.compute(_counts(path, mtime, judge, scope, views.reproduction.GRAIN), language)


def reproduction(path: str, mtime: float, judge: str, language: str) -> Reproduction:
    """core.views.reproduction for one language's attack probes (of the page's runs and probe set)."""
    return _reproduction(path, mtime, judge, language, _key({}))


@st.cache_data(show_spinner="Pairing the counterfactual answers on their claims…", max_entries=8)
def _counterfactual(path: str, mtime: float, judge: str, filters: tuple) -> Counterfactual:
    return views.counterfactual.compute(Store(path, readonly=True), judge, dict(filters))


def counterfactual(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]]) -> Counterfactual:
    """core.views.counterfactual: the gap when only the group changes, next to the matched-seed gap."""
    return _counterfactual(path, mtime, judge, _key(filters))


@st.cache_data(show_spinner=False, max_entries=8)
def vocabulary(path: str, mtime: float) -> taxonomy.Taxonomy:
    """Store.taxonomy(): the groups, their names and the languages of the stored probes."""
    return Store(path, readonly=True).taxonomy()


@st.cache_data(show_spinner=False, max_entries=8)
def summary(path: str, mtime: float) -> dict:
    """Store.summary() (models, languages, counts, judges)."""
    return Store(path, readonly=True).summary()


@st.cache_data(show_spinner=False, max_entries=8)
def answered_runs(path: str, mtime: float) -> list[str]:
    """The runs that hold answers, newest first: what the sidebar's run selector offers."""
    every = Store(path, readonly=True).runs()
    return list(every.loc[every["completions"] > 0, "run_id"])


@st.cache_data(show_spinner=False, max_entries=8)
def default_probe_set(path: str, mtime: float) -> str:
    """core.views.selection.default_probe_set: matched-seed, or counterfactual in a store of counterfactual answers only."""
    return selection.default_probe_set(Store(path, readonly=True))


@st.cache_data(show_spinner=False, max_entries=32)
def _selection_sentence(path: str, mtime: float, chosen: tuple) -> str:
    return selection.describe(Store(path, readonly=True), dict(chosen))


def selection_sentence(path: str, mtime: float, chosen: Mapping[str, Sequence[str]]) -> str:
    """core.views.selection.describe: which runs (and how many of their answers) and which probe set a page shows."""
    return _selection_sentence(path, mtime, _key(chosen))


@st.cache_data(show_spinner=False, max_entries=8)
def runs(path: str, mtime: float) -> pd.DataFrame:
    """Store.runs(): every run with planned and stored counts, newest first."""
    return Store(path, readonly=True).runs()


@st.cache_data(show_spinner=False, max_entries=8)
def run_targets(path: str, mtime: float) -> pd.DataFrame:
    """Store.run_target_counts(): per run and target, completions, errors (and their share) and pending probes."""
    return Store(path, readonly=True).run_target_counts()


@st.cache_data(show_spinner="Finding completions…", max_entries=32)
def _completion_page(path: str, mtime: float, judge: str, filters: tuple, verdicts: tuple, limit: int,
                     offset: int) -> tuple[pd.DataFrame, int]:
    return Store(path, readonly=True).completion_page(judge, dict(filters), list(verdicts), limit, offset)


def completion_page(path: str, mtime: float, judge: str, filters: Mapping[str, Sequence[str]],
                    verdicts: Sequence[str], limit: int, offset: int) -> tuple[pd.DataFrame, int]:
    """Store.completion_page(): one page of matching completions (previews, not full texts) and the total."""
    return _completion_page(path, mtime, judge, _key(filters), tuple(verdicts), int(limit), int(offset))


@st.cache_data(show_spinner="Comparing the two versions probe by probe…", max_entries=16)
def _comparison(path: str, mtime: float, judge: str, base: tuple[str, str], candidate: tuple[str, str],
                by: tuple[str, ...]) -> RunComparison:
    return paired.compute(Store(path, readonly=True), Side(*base), Side(*candidate), judge, by=list(by))


def comparison(path: str, mtime: float, judge: str, base: Side, candidate: Side,
               by: Sequence[str] = ("language", "group")) -> RunComparison:
    """core.views.compare.compute: the paired comparison of two (run, target) sides (a small result: per-cell
    2x2 tables and their tests, never one row per completion)."""
    return _comparison(path, mtime, judge, base.key, candidate.key, tuple(by))


@st.cache_data(show_spinner="Finding the probes the two versions answered differently…", max_entries=32)
def disagreements(path: str, mtime: float, judge: str, base: tuple[str, str], candidate: tuple[str, str],
                  cell: tuple) -> pd.DataFrame:
    """Store.paired_disagreements for one comparison cell ((name, value) pairs)."""
    return Store(path, readonly=True).paired_disagreements(base, candidate, judge, dict(cell))


@st.cache_data(show_spinner="Comparing every pair of versions…", max_entries=8)
def pair_matrix(path: str, mtime: float, judge: str, sides: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    """core.views.compare.all_pairs over `sides`: the change of the selective-safety gap for every pair."""
    return all_pairs(Store(path, readonly=True), [Side(*s) for s in sides], judge)


@st.cache_data(show_spinner="Correcting both versions with the human checks…", max_entries=16)
def _corrected_comparison(path: str, mtime: float, judge: str, base: tuple[str, str],
                          candidate: tuple[str, str]) -> tuple[object, str | None]:
    try:
        return paired.corrected(Store(path, readonly=True), Side(*base), Side(*candidate), judge), None
    except paired.UncheckedSide as exc:
        return None, str(exc)


def corrected_comparison(path: str, mtime: float, judge: str, base: Side,
                         candidate: Side) -> tuple[object, str | None]:
    """core.views.compare.corrected: (the comparison on prediction-powered DRs, None), or (None, why it is
    refused: core's words naming the side without enough human checks and how to draw and label its sample)."""
    return _corrected_comparison(path, mtime, judge, base.key, candidate.key)


@st.cache_data(show_spinner="Reading the mitigations…", max_entries=8)
def mitigations(path: str, mtime: float) -> list[str]:
    """core.mitigate.audit.known_mitigations: the mitigation directories with an after-audit in this store."""
    return known_mitigations(Store(path, readonly=True))


@st.cache_data(show_spinner="Comparing the base and the adapted model…", max_entries=8)
def mitigation(path: str, mtime: float, out: str, stamp: float) -> BeforeAfter:
    """core.mitigate.audit.before_after of one mitigation directory; `stamp` (its manifest's and audit's modification
    times) keys the cache, so a retrained adapter is read again."""
    return before_after(Store(path, readonly=True), out)
