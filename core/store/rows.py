"""The joined rows every query starts from: completions with their probe, the effective verdict, filters."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.probes.schema import PROBE_FIELDS
from core.store.errors import StoreError
from core.vocab import dimensions

_PROBE_COLUMNS = ", ".join(f'"{name}"' if name == "group" else name for name in PROBE_FIELDS)

# The joined rows every query starts from: one row per completion (c) with its probe (p) and target.
FROM_ROWS = "FROM completions c JOIN probes p USING (probe_id)"

# Every column of the joined rows, name -> SQL expression, in the order exports show them: the completion's
# identity, every dimension (core/vocab/dimensions.py), then the probe's and the answer's details. Queries pick
# their columns from here by name (select()), so a column is spelt once, whichever view shows it.
_DIMENSION_COLUMNS = dimensions.columns()
ROW_COLUMNS: dict[str, str] = {
    "completion_id": "c.completion_id", "run_id": _DIMENSION_COLUMNS["run_id"],
    "model": _DIMENSION_COLUMNS["model"], "probe_id": "c.probe_id",
    **{name: column for name, column in _DIMENSION_COLUMNS.items() if name not in ("run_id", "model")},
    "source": "p.source", "counterfactual_id": "p.counterfactual_id", "claim_id": "p.claim_id",
    "seed_text": "p.seed_text", "prompt": "p.prompt", "completion": "c.text",
    "error": "c.error", "prompt_tokens": "c.prompt_tokens", "completion_tokens": "c.completion_tokens",
    "latency_s": "c.latency_s", "retries": "c.retries", "created_at": "c.created_at",
}
# What judged() returns per completion besides its label: its identity, every dimension, its error.
JUDGED_COLUMNS: tuple[str, ...] = tuple(name for name in ROW_COLUMNS if name in (
    "completion_id", "run_id", "model", "probe_id", "error", *_DIMENSION_COLUMNS))


def select(names: Sequence[str]) -> str:
    """`expression AS "name"` for these columns of ROW_COLUMNS (constants, never a caller's text)."""
    return ", ".join(f'{ROW_COLUMNS[name]} AS "{name}"' for name in names)


def column(name: str) -> str:
    """The SQL expression of one column of the joined rows (for ORDER BY, JOIN ... ON)."""
    return ROW_COLUMNS[name]


# Every column of the joined rows (exports, a completion's detail).
_COMPLETION_ROWS = f"SELECT {select(list(ROW_COLUMNS))} {FROM_ROWS}"

# Filters that queries accept, mapped onto the columns of the joined rows (core/vocab/dimensions.py).
FILTER_COLUMNS: dict[str, str] = _DIMENSION_COLUMNS

# Completions with their probe and effective verdict: a human verdict if any, else the named judge's
# (the first parameter). Every query that shows or counts labels starts from it, so a human verdict
# overrides the judges in every view.
_JUDGED_FROM = f"""
    {FROM_ROWS}
    LEFT JOIN verdicts v ON v.seq = c.seq AND v.judge = ?
    LEFT JOIN verdicts h ON h.seq = c.seq AND h.judge = 'human'
"""

_EFFECTIVE_LABEL = "coalesce(h.label, v.label)"
_JUDGED_BY = "CASE WHEN h.label IS NOT NULL THEN 'human' ELSE v.judge END"

# One answer per (target, probe): where several runs of a target answered a probe, a view counts the answer of
# the run ranked first here: completed runs before the others (a re-run that is still running, was stopped or
# failed replaces nothing until it completes), then the newest run (created_at), then the run id. So a re-run of
# some probes replaces those probes' answers, once it completes, and leaves every view's n as it was; and a
# target whose only runs are unfinished still shows their answers. The rank is over the runs a view reads: every
# run (cell_counts.current keeps it per cell), or the runs a user chose (filter run_id). Aliases: c, r (runs).
_RUN_ORDER = "(r.status = 'completed') DESC NULLS LAST, r.created_at DESC NULLS LAST, c.run_id DESC"
_ANSWER_RANK = f"row_number() OVER (PARTITION BY c.target_id, c.probe_id ORDER BY {_RUN_ORDER})"


def _chosen_runs(filters: dict[str, Sequence[str] | str | None] | None) -> list[str]:
    """The runs a selection chose (filter run_id), [] for the default: every run, latest answer of each probe."""
    value = (filters or {}).get("run_id")
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _answers(filters: dict[str, Sequence[str] | str | None] | None, seq: str = "c.seq") -> tuple[str, list[Any]]:
    """A condition on a completion's `seq` that keeps one answer per (target, probe) among the selection's runs
    (every run, or the chosen ones), by _RUN_ORDER, and its parameters.

    The superseded answers are found among the selection's own rows: every filter is on the target, the probe or
    the run (core/vocab/dimensions.py), so a (target, probe) partition is either wholly in the selection or wholly out,
    and a drill-down cell ranks only its own few answers. And only targets answered in more than one of the
    selection's runs can have a superseded answer (cell_counts says which, from a few thousand rows), so on a store
    with one run per target the condition costs next to nothing.
    """
    runs = _chosen_runs(filters)
    where, params = _where(filters)
    among = f" AND run_id IN ({', '.join('?' for _ in runs)})" if runs else ""
    where = (where + " AND" if where else " WHERE") + (
        " c.target_id IN (SELECT model FROM cell_counts WHERE judge = '' AND label = 'all'" + among
        + " GROUP BY model HAVING count(DISTINCT run_id) > 1)")
    return (f"""{seq} NOT IN (
        SELECT seq FROM (SELECT c.seq, {_ANSWER_RANK} AS answer {FROM_ROWS} LEFT JOIN runs r ON r.run_id = c.run_id
                         {where})
        WHERE answer > 1)""", [*params, *runs])


def _where_answers(filters: dict[str, Sequence[str] | str | None] | None) -> tuple[str, list[Any]]:
    """_where(filters) and the one-answer condition (_answers): the WHERE of every view over the joined rows."""
    where, params = _where(filters)
    condition, more = _answers(filters)
    return (where + " AND " if where else " WHERE ") + condition, [*params, *more]


# Verdict filters a user can pick besides the labels: completions that errored, and those no judge labelled.
VERDICT_FILTERS: tuple[str, ...] = ("refused", "complied", "unparsed", "error", "unjudged")


def _verdict_condition(verdicts: Sequence[str]) -> str:
    """A condition on the _JUDGED_FROM aliases matching any of VERDICT_FILTERS (no values pasted in)."""
    unknown = [name for name in verdicts if name not in VERDICT_FILTERS]
    if unknown:
        raise StoreError(f"unknown verdict filter {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(VERDICT_FILTERS)}")
    parts = []
    labels = [name for name in verdicts if name in ("refused", "complied", "unparsed")]
    if labels:  # the names are checked against a constant tuple above, so they are not user text
        parts.append(f"{_EFFECTIVE_LABEL} IN ({', '.join(repr(name) for name in labels)})")
    if "error" in verdicts:
        parts.append("c.error IS NOT NULL")
    if "unjudged" in verdicts:
        parts.append(f"(c.error IS NULL AND {_EFFECTIVE_LABEL} IS NULL)")
    return "(" + " OR ".join(parts) + ")"


def _active(filters: dict[str, Sequence[str] | str | None] | None) -> list[str]:
    """The names of the filters that restrict something (a None or empty value does not)."""
    return [name for name, value in (filters or {}).items()
            if value is not None and (isinstance(value, str) or len(value) > 0)]


def _where(filters: dict[str, Sequence[str] | str | None] | None,
           columns: dict[str, str] = FILTER_COLUMNS) -> tuple[str, list[Any]]:
    """Build a parameterised WHERE clause from {filter name: value or values}; unknown names are errors.

    `columns` maps filter names onto the query's columns (the joined completions, or cell_counts).
    """
    clauses: list[str] = []
    params: list[Any] = []
    for name, value in (filters or {}).items():
        if value is None or (not isinstance(value, str) and len(value) == 0):
            continue
        if name not in FILTER_COLUMNS:
            raise StoreError(f"unknown filter {name!r}; known filters: {', '.join(FILTER_COLUMNS)}")
        values = [value] if isinstance(value, str) else list(value)
        clauses.append(f"{columns[name]} IN ({', '.join('?' for _ in values)})")
        params.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _check_by(by: Sequence[str]) -> None:
    """Refuse a count by a name that is no dimension (the names then go into SQL as column names)."""
    unknown = dimensions.unknown(by)
    if unknown:
        raise StoreError(f"cannot count by {', '.join(map(repr, unknown))}; known: {', '.join(FILTER_COLUMNS)}")
