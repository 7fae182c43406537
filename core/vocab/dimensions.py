"""The slicing dimensions: the one table that says what a Defense Rate can be sliced, filtered and counted by.

Every part that names dimensions reads this table: the store (which SQL column a filter or a count uses,
which dimensions `cell_counts` keeps), core.stats.rates (which groupings it accepts, the default baseline of a
deviation), the dashboard (the sidebar's filters and their labels, the deviations' baseline) and the CLI's
`--by`. One table, because hand-kept lists in each part drift apart (one counts by a dimension another
refuses). An auditor-defined taxonomy adds its dimensions here, and every part takes them up.

A dimension's `column` is an SQL expression over the joined rows of the store (`c` = completions, `p` =
probes, see core/store/rows.py); it is a constant of this table, never a user's text.
"""
from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Baseline(enum.Enum):
    """What a dimension is to a deviation ("how far is this cell from its model's own average?")."""

    COMPARED = "compared"  # its slices are what is compared with the average (group, strategy, scenario...)
    WITHIN = "within"  # every average is taken within it: a model's own mean, per language (group sets differ)
    SPLIT = "split"  # the default baseline also splits by it when grouped by (runs, attack vs control)


@dataclass(frozen=True)
class Dimension:
    """One slicing dimension and what each part of the project does with it."""

    name: str  # as in filters, `by=` groupings, frame columns, URL parameters
    column: str  # SQL expression over the joined rows (c: completions, p: probes)
    label: str  # how the dashboard names it
    cell: bool  # cell_counts keeps it (counts by it sum kept rows; otherwise they join every completion)
    baseline: Baseline
    page_grain: bool  # the dashboard's tables are fetched at it (all kept ones but run_id: pages filter runs)


# In the order the dashboard's sidebar shows them.
DIMENSIONS: tuple[Dimension, ...] = (
    Dimension("model", "c.target_id", "Model", cell=True, baseline=Baseline.WITHIN, page_grain=True),
    Dimension("language", "p.language", "Language", cell=True, baseline=Baseline.WITHIN, page_grain=True),
    Dimension("group", 'p."group"', "Group", cell=True, baseline=Baseline.COMPARED, page_grain=True),
    Dimension("strategy", "p.strategy", "Strategy", cell=True, baseline=Baseline.COMPARED, page_grain=True),
    Dimension("scenario_category", "p.scenario_category", "Scenario category", cell=True,
              baseline=Baseline.COMPARED, page_grain=True),
    # One scenario per probe in MiJaBench: keeping it in cell_counts would keep a row per completion, so a
    # count by or a filter on it joins the tables.
    Dimension("scenario", "p.scenario", "Scenario", cell=False, baseline=Baseline.COMPARED, page_grain=False),
    Dimension("kind", "p.kind", "Kind", cell=True, baseline=Baseline.SPLIT, page_grain=True),
    Dimension("run_id", "c.run_id", "Run", cell=True, baseline=Baseline.SPLIT, page_grain=False),
    # Which probe set a probe came from (builtin matched seeds, counterfactual, mijabench, custom): the
    # Counterfactual page links its cells to the drill-down with source=counterfactual.
    Dimension("source", "p.source", "Probe source", cell=False, baseline=Baseline.SPLIT, page_grain=False),
    # Matched-seed probes (each group its own seed statements: the bundled set, MiJaBench, custom files) or
    # counterfactual ones (a non-empty counterfactual_id: one claim filled for every group). Views read one set
    # at a time unless told (core/views/selection.py), so kept per cell: the default filter sums kept rows.
    Dimension("probe_set", "CASE WHEN coalesce(p.counterfactual_id, '') <> '' THEN 'counterfactual' ELSE 'matched' END",
              "Probe set", cell=True, baseline=Baseline.SPLIT, page_grain=False),
)

_BY_NAME: dict[str, Dimension] = {d.name: d for d in DIMENSIONS}


def by_name(name: str) -> Dimension:
    """The dimension called `name`; KeyError for any other name (callers say which names exist)."""
    return _BY_NAME[name]


def names() -> tuple[str, ...]:
    """Every dimension's name, in table order: what metrics can group by and the store can count by."""
    return tuple(_BY_NAME)


def unknown(requested: Sequence[str]) -> list[str]:
    """The requested names that are no dimension (empty when all are)."""
    return [name for name in requested if name not in _BY_NAME]


def filterable() -> tuple[str, ...]:
    """What Store queries take as filters and the dashboard keeps in its URL: every dimension."""
    return names()


def columns() -> dict[str, str]:
    """Name -> SQL expression over the joined rows, for every dimension."""
    return {d.name: d.column for d in DIMENSIONS}


def cell_dimensions() -> tuple[str, ...]:
    """The dimensions cell_counts keeps, in table order."""
    return tuple(d.name for d in DIMENSIONS if d.cell)


def page_grain() -> tuple[str, ...]:
    """The finest cells the dashboard's tables use: counts fetched once at this grain sum up to any grouping
    of these dimensions, so one query serves every table of a page."""
    return tuple(d.name for d in DIMENSIONS if d.page_grain)


def baseline() -> tuple[str, ...]:
    """The dimensions that define "the model's own average" by default, when they are in a grouping."""
    return tuple(d.name for d in DIMENSIONS if d.baseline in (Baseline.WITHIN, Baseline.SPLIT))


def within() -> tuple[str, ...]:
    """The dimensions every dashboard deviation is measured within: the model's mean, per language."""
    return tuple(d.name for d in DIMENSIONS if d.baseline is Baseline.WITHIN)


def labels() -> dict[str, str]:
    """Name -> display label, for every dimension."""
    return {d.name: d.label for d in DIMENSIONS}
