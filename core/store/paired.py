"""The paired room: one version against another on the probes both answered (core/stats/comparison.py's 2x2 tables).

A side is a (run_id, target_id); the two sides' completions of one probe are paired by probe_id, each with
its effective label (a human verdict if any, else the judge's), so a comparison is about the same prompts.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from core.store.errors import StoreError
from core.store.rows import _EFFECTIVE_LABEL, _JUDGED_BY, _JUDGED_FROM, select
from core.vocab import dimensions

# What a comparison can be cut by: the probe's dimensions that cell_counts keeps (core/vocab/dimensions.py); the
# model and the run are the two sides themselves.
PAIRED_DIMENSIONS: tuple[str, ...] = tuple(name for name in dimensions.cell_dimensions()
                                           if name not in ("model", "run_id"))
# A paired comparison (Store.paired_counts): both sides' completions of one (run, target) each, with the
# effective label (parameters: judge, run_id, target_id, once per side).
_PAIRED_SIDE = f"""
    SELECT {select(["probe_id", *PAIRED_DIMENSIONS, "prompt", "completion"])},
           CASE WHEN c.error IS NULL THEN {_EFFECTIVE_LABEL} END AS label, {_JUDGED_BY} AS judged_by
    {_JUDGED_FROM}
    WHERE c.run_id = ? AND c.target_id = ?
"""
_PAIRED_SIDES = f"base_side AS ({_PAIRED_SIDE}), cand_side AS ({_PAIRED_SIDE})"


class Paired:
    """Paired counts and disagreements of two (or every pair of) sides."""

    def paired_counts(self, base: tuple[str, str], candidate: tuple[str, str], judge: str = "refusal",
                      by: Sequence[str] = ("language", "group", "strategy", "kind")) -> tuple[pd.DataFrame, dict]:
        """The 2x2 tables of a paired comparison (core/stats/comparison.py): per cell of `by`, the probes that both
        sides, each a (run_id, target_id), answered with a readable label, counted by outcome pair.

        Also returns what was left out: probes only one side answered, and shared probes where either side
        errored or its label is unreadable, so a comparison can say on how much it rests.
        """
        unknown = [name for name in by if name not in PAIRED_DIMENSIONS]
        if unknown:
            raise StoreError(f"cannot compare by {', '.join(map(repr, unknown))}; known: {', '.join(PAIRED_DIMENSIONS)}")
        # names checked against a constant tuple above; a probe only one side answered has its keys on that side
        columns = ", ".join(f'coalesce(b."{name}", c."{name}") AS "{name}"' for name in by)
        readable = "b.label IN ('refused', 'complied') AND c.label IN ('refused', 'complied')"
        with self.connect() as con:
            cells = con.execute(
                f"""
                WITH {_PAIRED_SIDES}
                SELECT {columns},
                       count(*) FILTER (WHERE b.label = 'refused' AND c.label = 'refused') AS both_refused,
                       count(*) FILTER (WHERE b.label = 'refused' AND c.label = 'complied') AS base_only,
                       count(*) FILTER (WHERE b.label = 'complied' AND c.label = 'refused') AS cand_only,
                       count(*) FILTER (WHERE b.label = 'complied' AND c.label = 'complied') AS neither,
                       count(*) FILTER (WHERE c.probe_id IS NULL) AS base_only_probes,
                       count(*) FILTER (WHERE b.probe_id IS NULL) AS cand_only_probes,
                       count(*) FILTER (WHERE b.probe_id IS NOT NULL AND c.probe_id IS NOT NULL
                                        AND NOT coalesce({readable}, false)) AS unreadable_pairs
                FROM base_side b FULL OUTER JOIN cand_side c USING (probe_id)
                GROUP BY ALL ORDER BY ALL
                """, [judge, *base, judge, *candidate]).df()
        left_out = ("base_only_probes", "cand_only_probes", "unreadable_pairs")
        left = {name: int(cells[name].sum()) for name in left_out}
        counts = cells[cells[["both_refused", "base_only", "cand_only", "neither"]].sum(axis=1) > 0]
        return counts.drop(columns=list(left_out)).reset_index(drop=True), left

    def paired_disagreements(self, base: tuple[str, str], candidate: tuple[str, str], judge: str = "refusal",
                             filters: dict[str, str] | None = None, limit: int = 200) -> pd.DataFrame:
        """The shared probes of one comparison cell (`filters` on PAIRED_DIMENSIONS) where the two sides'
        labels differ: the prompt and both completions as stored (plain text), both labels and who gave them."""
        clauses, values = [], []
        for name, value in (filters or {}).items():
            if name not in PAIRED_DIMENSIONS:
                raise StoreError(f"unknown filter {name!r}; known: {', '.join(PAIRED_DIMENSIONS)}")
            clauses.append(f'b."{name}" = ?')  # the name is checked against a constant tuple above
            values.append(value)
        where = "".join(f" AND {clause}" for clause in clauses)
        with self.connect() as con:
            return con.execute(
                f"""
                WITH {_PAIRED_SIDES}
                SELECT b.probe_id, b.language, b."group", b.strategy, b.kind, b.prompt,
                       b.completion AS base_completion, b.label AS base_label, b.judged_by AS base_judged_by,
                       c.completion AS cand_completion, c.label AS cand_label, c.judged_by AS cand_judged_by
                FROM base_side b JOIN cand_side c USING (probe_id)
                WHERE b.label IN ('refused', 'complied') AND c.label IN ('refused', 'complied')
                      AND b.label <> c.label {where}
                ORDER BY b.label = 'refused' DESC, b.probe_id LIMIT ?
                """, [judge, *base, judge, *candidate, *values, int(limit)]).df()

    def paired_counts_all(self, sides: Sequence[tuple[str, str]], judge: str = "refusal",
                          kind: str = "attack") -> pd.DataFrame:
        """For every ordered pair of `sides` (each a (run_id, target_id)), the 2x2 tables per language x group
        of their shared `kind` probes: what core/compare.pairwise_gaps needs for the all-pairs matrix. One
        self-join in DuckDB, so 12 models of a 528,000-completion store come back as a few thousand rows."""
        if not sides:
            return pd.DataFrame(columns=["base_run", "base", "cand_run", "candidate", "language", "group",
                                         "both_refused", "base_only", "cand_only", "neither"])
        rows = ", ".join("(?, ?, ?)" for _ in sides)  # one placeholder row per side; values are parameters
        ranked = [value for i, (run, target) in enumerate(sides) for value in (run, target, i)]
        with self.connect() as con:
            return con.execute(
                f"""
                WITH labelled AS (
                    SELECT s.rank, c.run_id, c.target_id, c.probe_id, p.language, p."group",
                           {_EFFECTIVE_LABEL} AS label
                    {_JUDGED_FROM}
                    JOIN (VALUES {rows}) AS s(run_id, target_id, rank)
                         ON s.run_id = c.run_id AND s.target_id = c.target_id
                    WHERE p.kind = ? AND c.error IS NULL AND {_EFFECTIVE_LABEL} IN ('refused', 'complied'))
                SELECT b.run_id AS base_run, b.target_id AS base, c.run_id AS cand_run, c.target_id AS candidate,
                       b.language, b."group",
                       count(*) FILTER (WHERE b.label = 'refused' AND c.label = 'refused') AS both_refused,
                       count(*) FILTER (WHERE b.label = 'refused' AND c.label = 'complied') AS base_only,
                       count(*) FILTER (WHERE b.label = 'complied' AND c.label = 'refused') AS cand_only,
                       count(*) FILTER (WHERE b.label = 'complied' AND c.label = 'complied') AS neither
                FROM labelled b JOIN labelled c ON b.probe_id = c.probe_id AND b.rank < c.rank
                GROUP BY ALL ORDER BY ALL
                """, [judge, *ranked, kind]).df()
