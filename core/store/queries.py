"""The query room: what views read, all from the joined rows of rows.py (or the kept cell_counts)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.store.cells import _CELL_FILTERS, CELL_COLUMNS, _cell_selection
from core.store.rows import (_ANSWER_RANK, _COMPLETION_ROWS, _EFFECTIVE_LABEL, _JUDGED_BY, _JUDGED_FROM, FROM_ROWS,
                             JUDGED_COLUMNS, ROW_COLUMNS, _active, _check_by, _verdict_condition, _where,
                             _where_answers, column, select)
from core.store.schema import SCHEMA_VERSION

# Every verdict with its completion's row (filters apply to the joined rows), without the texts.
_VERDICTS_FROM = ("SELECT v.completion_id, v.judge, v.label FROM verdicts v JOIN completions c USING (completion_id) "
                  "JOIN probes p USING (probe_id)")


class Queries:
    """Reads for views: judged rows, label counts, drill-down pages and details, counterfactuals, exports."""

    def judged(self, judge: str = "refusal", filters: dict[str, Sequence[str] | str | None] | None = None,
               with_text: bool = False) -> pd.DataFrame:
        """One row per completion with its effective label: a human verdict if any, else `judge`'s.

        Completions that errored or that the judge could not read (`unparsed`) keep their row with
        label None/'unparsed', so callers can count them, but metrics leave them out of the DR. Like every view,
        one answer per (target, probe) of the selection's runs (rows.py, _answers; filter `run_id` chooses runs).
        """
        where, params = _where_answers(filters)
        text_cols = ", " + select(["prompt", "completion"]) if with_text else ""
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT {select(JUDGED_COLUMNS)}, {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by{text_cols}
                {_JUDGED_FROM}
                {where}
                """,
                [judge, *params],
            ).df()

    def matched_outcomes(self, judge: str = "refusal",
                         filters: dict[str, Sequence[str] | str | None] | None = None) -> pd.DataFrame:
        """One row per readable answer (refused or complied; errors and `unparsed` left out) with what the matched
        statistics (core/stats/matched.py) pair and resample on: model, language, group, kind, counterfactual_id (empty
        for a matched-seed probe), claim_id (for a matched-seed probe its seed statement stands in: `seed:` + a
        hash of it, so one seed used in several prompts is one claim) and refused (bool)."""
        where, params = _where_answers(filters)
        where += f" AND {_EFFECTIVE_LABEL} IN ('refused', 'complied')"
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT {select(["model", "language", "group", "kind", "strategy", "counterfactual_id"])},
                       CASE WHEN p.claim_id <> '' THEN p.claim_id ELSE 'seed:' || left(md5(p.seed_text), 12) END
                           AS claim_id,
                       {_EFFECTIVE_LABEL} = 'refused' AS refused
                {_JUDGED_FROM}
                {where}
                """,
                [judge, *params],
            ).df()

    def label_counts(self, judge: str = "refusal", by: Sequence[str] = ("model", "group"),
                     filters: dict[str, Sequence[str] | str | None] | None = None) -> pd.DataFrame:
        """Per cell of `by`: refused, complied, unparsed and errors, counted by DuckDB (one row per cell).

        What DefenseRates needs, without moving one row per completion into pandas: on a 528,000-completion
        store the judged frame takes seconds to load and ~100 MB, these counts milliseconds and kilobytes.
        Same effective label (human, else `judge`) and the same one answer per (target, probe) as judged():
        summed from cell_counts (its `current` marker, or the chosen runs when they share no target), joined
        from the rows only for a dimension it does not keep or chosen runs that answered for one target twice.
        """
        _check_by(by)
        group = "GROUP BY ALL ORDER BY ALL" if by else ""
        with self.connect() as con:
            kept = _cell_selection(con, filters) if set(by) | set(_active(filters)) <= set(CELL_COLUMNS) else None
            if kept is not None:
                # Sum the kept counts (see _CELL_REFRESH): a few thousand rows instead of a join per completion.
                where, params = _where(filters, _CELL_FILTERS)
                where = (where + " AND" if where else " WHERE") + f" {kept} AND judge IN (?, 'human', '')"
                columns = [f'"{name}"' for name in by]  # names checked by _check_by above
                labelled = "judge <> '' AND label = '{}'"
                return con.execute(
                    f"""
                    SELECT {''.join(c + ', ' for c in columns)}
                           coalesce(sum(n) FILTER (WHERE {labelled.format('refused')}), 0)::BIGINT AS refused,
                           coalesce(sum(n) FILTER (WHERE {labelled.format('complied')}), 0)::BIGINT AS complied,
                           coalesce(sum(n) FILTER (WHERE {labelled.format('unparsed')}), 0)::BIGINT AS unparsed,
                           coalesce(sum(n) FILTER (WHERE judge = '' AND label = 'error'), 0)::BIGINT AS errors
                    FROM cell_counts {where} {group}
                    """,
                    [*params, judge],
                ).df()
            where, params = _where_answers(filters)
            return con.execute(
                f"""
                SELECT {''.join(select([name]) + ', ' for name in by)}
                       count(*) FILTER (WHERE {_EFFECTIVE_LABEL} = 'refused') AS refused,
                       count(*) FILTER (WHERE {_EFFECTIVE_LABEL} = 'complied') AS complied,
                       count(*) FILTER (WHERE {_EFFECTIVE_LABEL} = 'unparsed') AS unparsed,
                       count(*) FILTER (WHERE c.error IS NOT NULL) AS errors
                {_JUDGED_FROM} {where} {group}
                """,
                [judge, *params],
            ).df()

    def completion_rows(self, filters: dict[str, Sequence[str] | str | None] | None = None,
                        verdicts: Sequence[str] = (), judge: str = "refusal") -> pd.DataFrame:
        """Completions with their probe fields and every verdict as `verdict_<judge>` columns (for export).

        `verdicts` keeps only completions whose effective verdict (human, else `judge`) is one of them. One answer
        per (target, probe) of the selection's runs, as every view.
        """
        where, params = _where_answers(filters)
        if verdicts:
            where += (" AND " if where else " WHERE ") + (
                f"c.completion_id IN (SELECT c.completion_id {_JUDGED_FROM} WHERE {_verdict_condition(verdicts)})")
            params = [*params, judge]
        with self.connect() as con:
            rows = con.execute(_COMPLETION_ROWS + where + " ORDER BY c.completion_id", params).df()
            verdicts = con.execute(_VERDICTS_FROM + where, params).df()
        if len(verdicts):
            wide = verdicts.pivot(index="completion_id", columns="judge", values="label")
            wide.columns = [f"verdict_{name}" for name in wide.columns]
            rows = rows.merge(wide, left_on="completion_id", right_index=True, how="left")
        return rows

    def completion_page(self, judge: str = "refusal", filters: dict[str, Sequence[str] | str | None] | None = None,
                        verdicts: Sequence[str] = (), limit: int = 50, offset: int = 0) -> tuple[pd.DataFrame, int]:
        """One page of completions (a 160-character preview, not the full text) and how many match in all.

        Ordered by model, language, group, strategy, scenario, so pages are stable between requests. One answer
        per (target, probe) of the selection's runs, as the counts the page links from.
        """
        where, params = _where_answers(filters)
        if verdicts:
            where += (" AND " if where else " WHERE ") + _verdict_condition(verdicts)
        with self.connect() as con:
            # The total rides along with the page (one pass over the matches, not two).
            page = con.execute(
                f"""
                SELECT {select(["completion_id", "model", "language", "group", "strategy", "scenario_category"])},
                       {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by, {select(["error"])},
                       left({column("completion")}, 160) AS preview, {select(["run_id", "probe_id"])},
                       count(*) OVER () AS matches
                {_JUDGED_FROM} {where}
                ORDER BY {', '.join(map(column, ["model", "language", "group", "strategy", "scenario", "completion_id"]))}
                LIMIT ? OFFSET ?
                """,
                [judge, *params, int(limit), int(offset)],
            ).df()
            if len(page):
                total = int(page["matches"].iloc[0])
            else:  # past the last page (or nothing matches): count on its own
                total = con.execute(f"SELECT count(*) {_JUDGED_FROM} {where}", [judge, *params]).fetchall()[0][0]
            # in_sample: in the random review sample, so a human verdict outside it reads "chosen by hand".
            sampled = {row[0] for row in con.execute(
                "SELECT completion_id FROM review_sample WHERE completion_id IN (SELECT unnest(?::VARCHAR[]))",
                [list(page["completion_id"])]).fetchall()} if len(page) else set()
        page = page.drop(columns="matches")
        page["in_sample"] = page["completion_id"].isin(sampled)
        return page, int(total)

    def completion_detail(self, completion_id: str, judge: str = "refusal") -> dict[str, Any] | None:
        """A completion with its probe, effective verdict, every judge's verdict and the human annotations."""
        with self.connect() as con:
            found = con.execute(
                f"""
                SELECT {select(list(ROW_COLUMNS))}, {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by,
                EXISTS (SELECT 1 FROM review_sample rs WHERE rs.seq = c.seq) AS in_sample
                {_JUDGED_FROM} WHERE c.completion_id = ?
                """,
                [judge, completion_id],
            ).df()
            if found.empty:
                return None
            verdicts = con.execute(
                "SELECT judge, label, rationale, raw, judge_version, judge_model, created_at FROM verdicts "
                "WHERE completion_id = ? ORDER BY judge", [completion_id]).df()
            annotations = con.execute(
                "SELECT created_at, label, note, author FROM annotations WHERE completion_id = ? "
                "ORDER BY created_at", [completion_id]).df()
        detail = found.iloc[0].to_dict()
        detail["verdicts"] = verdicts
        detail["annotations"] = annotations
        return detail

    def counterfactuals(self, completion_id: str, judge: str = "refusal") -> pd.DataFrame:
        """The same probe answered for every group by the same model.

        For a counterfactual probe, its counterfactual_id's siblings: the same claim, scenario, strategy and
        template, differing only in the group's words. For a matched-seed probe (the bundled set), the same
        scenario, strategy and language: these differ in the group's name and its own seed statement. One
        completion per probe: the one in the same run where there is one, else the newest. The given completion
        is among the rows (is_self).
        """
        same_cell = " AND ".join(f'{column(name)} = this."{name}"' for name in ("language", "strategy", "scenario", "kind"))
        with self.connect() as con:
            return con.execute(
                f"""
                WITH this AS (
                    SELECT {select(["run_id", "model", "language", "strategy", "scenario", "kind", "counterfactual_id"])}
                    {FROM_ROWS} WHERE c.completion_id = ?)
                SELECT {select(["completion_id", "run_id", "group", "seed_text", "prompt", "completion", "error"])},
                       {_EFFECTIVE_LABEL} AS label, {_JUDGED_BY} AS judged_by,
                       c.completion_id = ? AS is_self
                {_JUDGED_FROM}
                JOIN this ON {column("model")} = this."model" AND CASE WHEN this."counterfactual_id" <> ''
                    THEN {column("counterfactual_id")} = this."counterfactual_id"
                    ELSE {column("counterfactual_id")} = '' AND {same_cell} END
                QUALIFY row_number() OVER (PARTITION BY c.probe_id
                                           ORDER BY c.run_id = this.run_id DESC, c.created_at DESC) = 1
                ORDER BY {column("group")}, c.completion_id
                """,
                [completion_id, completion_id, judge],
            ).df()

    def verdict_labels(self, judges: Sequence[str],
                       filters: dict[str, Sequence[str] | str | None] | None = None) -> pd.DataFrame:
        """completion_id, judge, label of these judges' verdicts (long form, no text): for agreement tables; one
        answer per (target, probe) of the selection's runs, as every view."""
        where, params = _where_answers(filters)
        if not judges:
            return pd.DataFrame(columns=["completion_id", "judge", "label"])
        where += (" AND " if where else " WHERE ") + f"v.judge IN ({', '.join('?' for _ in judges)})"
        with self.connect() as con:
            return con.execute(_VERDICTS_FROM + where, [*params, *judges]).df()

    def answered_probe_sets(self) -> list[str]:
        """The probe sets (dimension probe_set: matched, counterfactual) the store holds answers of."""
        with self.connect() as con:
            return [row[0] for row in con.execute(
                "SELECT DISTINCT probe_set FROM cell_counts WHERE judge = '' AND label = 'all' ORDER BY 1").fetchall()]

    def answer_runs(self, filters: dict[str, Sequence[str] | str | None] | None = None) -> pd.DataFrame:
        """The runs whose answers a selection reads (only its `run_id` and `probe_set` filters apply), oldest
        first: run_id, status (None for a run the store has no row for), answers (its completions in the
        selection, errors included), shown (those that are the answer a view counts for their (target, probe)),
        replacing (shown ones for a probe an older run of the selection answered too) and superseded (answers -
        shown: another run's answer is counted). What core.views.selection.describe says above every view.

        Per-run totals are summed from cell_counts; only targets that two of the selection's runs answered are
        joined (the same rank as every view, rows.py _ANSWER_RANK), so a store with one run per target answers
        from the kept counts alone.
        """
        scope = {name: (filters or {}).get(name) for name in ("run_id", "probe_set")}
        where, params = _where(scope, _CELL_FILTERS)
        where = (where + " AND" if where else " WHERE") + " judge = '' AND label = 'all'"
        joined_where, joined_params = _where(scope)
        with self.connect() as con:
            totals = con.execute(
                f"SELECT run_id, sum(n)::BIGINT AS answers FROM cell_counts {where} GROUP BY run_id", params).df()
            shared = con.execute(
                f"""
                WITH shared AS (SELECT model FROM cell_counts {where} GROUP BY model HAVING count(DISTINCT run_id) > 1),
                ranked AS (
                    SELECT c.run_id, {_ANSWER_RANK} AS answer, r.created_at,
                           min(r.created_at) OVER (PARTITION BY c.target_id, c.probe_id) AS first_answered,
                           count(*) OVER (PARTITION BY c.target_id, c.probe_id) AS answered
                    {FROM_ROWS} LEFT JOIN runs r ON r.run_id = c.run_id
                    {(joined_where + ' AND' if joined_where else ' WHERE')} c.target_id IN (SELECT model FROM shared))
                SELECT run_id, count(*) FILTER (WHERE answer > 1) AS superseded,
                       count(*) FILTER (WHERE answer = 1 AND answered > 1 AND created_at > first_answered) AS replacing
                FROM ranked GROUP BY run_id
                """, [*params, *joined_params]).df()
            status = con.execute("SELECT run_id, status, created_at FROM runs").df()
        out = totals.merge(shared, on="run_id", how="left").merge(status, on="run_id", how="left")
        out[["superseded", "replacing"]] = out[["superseded", "replacing"]].fillna(0).astype("int64")
        out["shown"] = out["answers"] - out["superseded"]
        out["status"] = out["status"].astype(object).where(out["status"].notna(), None)
        out = out.sort_values(["created_at", "run_id"], na_position="first").reset_index(drop=True)
        return out[["run_id", "status", "answers", "shown", "replacing", "superseded"]]

    def summary(self) -> dict[str, Any]:
        """What the database holds: counts, models, languages, judges."""
        with self.connect() as con:
            def values(sql: str) -> list[Any]:
                return [r[0] for r in con.execute(sql).fetchall()]

            return {
                "path": str(self.path),
                "schema_version": SCHEMA_VERSION,
                "probes": con.execute("SELECT count(*) FROM probes").fetchall()[0][0],
                "runs": con.execute("SELECT count(*) FROM runs").fetchall()[0][0],
                "completions": con.execute("SELECT count(*) FROM completions").fetchall()[0][0],
                "verdicts": con.execute("SELECT count(*) FROM verdicts").fetchall()[0][0],
                "models": values("SELECT DISTINCT target_id FROM completions ORDER BY 1"),
                "languages": values(f"SELECT DISTINCT p.language {FROM_ROWS} ORDER BY 1"),
                "judges": values("SELECT DISTINCT judge FROM verdicts ORDER BY 1"),
            }
