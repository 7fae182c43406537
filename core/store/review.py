"""The review room: the store side of the human review sample (drawn by core/ppi/review_sample.py, which says why it must be random)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pandas as pd

from core.ppi import review_sample
from core.ppi.review_sample import STRATA
from core.store.cells import _CELL_FILTERS, CELL_COLUMNS, _cell_selection
from core.store.errors import StoreError, VerdictImportError
from core.store.rows import FROM_ROWS, _active, _answers, _check_by, _where, _where_answers, select

# The review sample's columns as written (core/ppi/review_sample.py SAMPLE_COLUMNS; drawn_at takes its default).
_SAMPLE_COLUMNS = ('completion_id, seq, run_id, model, language, "group", kind, stratum_size, draw, position, seed, '
                   'inclusion_prob, judge')

# Filters on a stratum (the STRATA of core/ppi/review_sample.py), mapped onto _sample_strata's columns.
_STRATUM_FILTERS: dict[str, str] = {name: f'"{name}"' for name in STRATA}

# The same columns of review_sample itself (alias s): copied from the completion when drawn.
_SAMPLE_ALIASES: dict[str, str] = {name: f"s.{column}" for name, column in _STRATUM_FILTERS.items()}


def _review_eligible(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], judge: str | None = None) -> pd.DataFrame:
    """The completions a review sample may hold: those of these runs without an error, with their stratum; with a
    `judge`, also `score`: its P(refused) as the verdict's raw JSON holds it (`p_refused`; NULL where the judge
    has no verdict or no probability, core/judges/encoder.py score_of reads the same field)."""
    if not run_ids:
        return pd.DataFrame(columns=["completion_id", "seq", *STRATA, *(["score"] if judge else [])])
    score, join, params = "", "", list(run_ids)
    if judge:
        score = ", TRY_CAST(json_extract_string(TRY_CAST(v.raw AS JSON), '$.p_refused') AS DOUBLE) AS score"
        join, params = " LEFT JOIN verdicts v ON v.seq = c.seq AND v.judge = ?", [judge, *params]
    return con.execute(
        f"SELECT c.completion_id, c.seq, {select(STRATA)}{score} {FROM_ROWS}{join} "
        f"WHERE c.error IS NULL AND c.run_id IN ({', '.join('?' for _ in run_ids)})", params).df()


def _sample_strata(con: duckdb.DuckDBPyConnection, filters: dict[str, Any] | None, sampled_only: bool,
                   with_unsure: bool = False) -> pd.DataFrame:
    """Per stratum of the runs with a review sample: completions (non-error, now, from cell_counts),
    stratum_size (when drawn), sampled, labelled (with a human verdict). `sampled_only` leaves out strata
    that have no sample item (one that appeared after the draw). `with_unsure`: also `unsure`, the items a person
    marked unsure (the Review page's count; the corrected estimates read the strata without it)."""
    where, params = _where(filters, _STRATUM_FILTERS)
    join = "RIGHT" if sampled_only else "FULL"
    return con.execute(
        f"""
        WITH sampled AS (
            SELECT s.run_id, s.model, s.language, s."group", s.kind, max(s.stratum_size) AS stratum_size,
                   count(*) AS sampled, count(h.seq) AS labelled,
                   count(*) FILTER (WHERE h.seq IS NULL AND s.completion_id IN {_UNSURE_IDS}) AS unsure
            FROM review_sample s LEFT JOIN verdicts h ON h.seq = s.seq AND h.judge = 'human'
            GROUP BY ALL),
        strata AS (
            SELECT run_id, model, language, "group", kind,
                   sum(n) FILTER (WHERE label = 'all') - coalesce(sum(n) FILTER (WHERE label = 'error'), 0)
                     AS completions
            FROM cell_counts WHERE judge = '' AND run_id IN (SELECT run_id FROM review_sample) GROUP BY ALL),
        both_sides AS (
            SELECT run_id, model, language, "group", kind, coalesce(t.completions, 0)::BIGINT AS completions,
                   a.stratum_size, coalesce(a.sampled, 0)::BIGINT AS sampled,
                   coalesce(a.labelled, 0)::BIGINT AS labelled{", coalesce(a.unsure, 0)::BIGINT AS unsure" if with_unsure else ""}
            FROM strata t {join} JOIN sampled a USING (run_id, model, language, "group", kind))
        SELECT * FROM both_sides {(where + ' AND' if where else ' WHERE')} (completions > 0 OR sampled > 0)
        ORDER BY run_id, model, language, "group", kind
        """, params).df()


# Sample items a person marked "unsure" (their latest annotation says so and no human verdict came after it): kept
# out of the sample's labels (no verdict `human`), out of the queue, and counted per stratum.
UNSURE, UNDONE = "unsure", "undone"
_UNSURE_IDS = f"""(SELECT completion_id FROM (
    SELECT completion_id, label, row_number() OVER (PARTITION BY completion_id ORDER BY created_at DESC, rowid DESC) AS r
    FROM annotations) WHERE r = 1 AND label = '{UNSURE}')"""


class Review:
    """Drawing and reading the review sample, importing people's labels, the inputs of corrected rates."""

    def mark_unsure(self, completion_id: str, note: str = "", author: str = "") -> None:
        """A person cannot tell: the item leaves the queue without a label (so it never enters the corrected
        estimates as if it were one) and is counted as unsure in review_progress. Undone by undo_review."""
        with self._writing("the review cannot be changed") as (con, _):
            if not con.execute("SELECT count(*) FROM completions WHERE completion_id = ?",
                               [completion_id]).fetchall()[0][0]:
                raise StoreError(f"no completion {completion_id!r} in {self.path}")
            con.execute("INSERT INTO annotations (completion_id, label, note, author) VALUES (?, ?, ?, ?)",
                        [completion_id, UNSURE, note, author])

    def undo_review(self, completion_id: str, previous: dict[str, Any] | None = None, author: str = "") -> None:
        """Take back a person's last action on an item (a label or an "unsure"): its human verdict goes back to
        `previous` ({label, note, author}; None: it had none, so the item is back in the queue), and the history
        (annotations) records the undo. One transaction."""
        with self._writing("the review cannot be changed") as (con, touched):
            con.execute("INSERT INTO annotations (completion_id, label, note, author) VALUES (?, ?, ?, ?)",
                        [completion_id, UNDONE, "", author])
            if previous is None:
                con.execute("DELETE FROM verdicts WHERE completion_id = ? AND judge = 'human'", [completion_id])
            else:
                note = previous.get("note") or ""
                con.execute(
                    "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, judge_model, "
                    "seq) SELECT ?, 'human', ?, ?, ?, '', '', seq FROM completions WHERE completion_id = ? "
                    "ON CONFLICT (completion_id, judge) DO UPDATE SET label = excluded.label, "
                    "rationale = excluded.rationale, raw = excluded.raw, created_at = now()",
                    [completion_id, previous["label"], note,
                     json.dumps({"author": previous.get("author") or "", "note": note}, ensure_ascii=False),
                     completion_id])
            touched.append(con.execute("SELECT target_id, probe_id FROM completions WHERE completion_id = ?",
                                       [completion_id]).df())

    def human_verdict(self, completion_id: str) -> dict[str, Any] | None:
        """The item's human verdict as {label, note, author} (what undo_review restores), or None."""
        with self.connect() as con:
            row = con.execute("SELECT label, rationale, raw FROM verdicts WHERE completion_id = ? AND judge = 'human'",
                              [completion_id]).fetchall()
        if not row:
            return None
        label, note, raw = row[0]
        try:
            author = json.loads(raw or "{}").get("author", "")
        except (ValueError, AttributeError):
            author = ""
        return {"label": label, "note": note or "", "author": author}

    def draw_review_sample(self, run_id: str, per_cell: int | None = None, fraction: float | None = None,
                           seed: int = 0, replace: bool = False, by_uncertainty: str | None = None) -> dict[str, Any]:
        """Draw (or enlarge) the run's review sample: a stratified simple random sample of its non-error
        completions, `per_cell` per stratum or a `fraction` of each (see core/ppi/review_sample.py). One transaction.
        `by_uncertainty` names a judge whose P(refused) draws each stratum's items instead (the same expected
        sizes, Poisson sampling weighted to where that judge is unsure; review_sample.draw_by_uncertainty): only as
        a run's first sample or with `replace`.

        A run that has a sample is enlarged from each stratum's unsampled rest; where a stratum changed size
        since it was drawn that would not be random, so it is refused (ReviewError) unless `replace`, which
        draws the run's sample anew (human verdicts stay; those outside the new sample count as chosen by
        hand). Returns run_id, draw, seed, replaced, added, sampled, completions and per-stratum counts.
        Raises ReviewError (a ValueError: bad input) for an unknown run, a bad size or a changed stratum.
        """
        review_sample.check_size(per_cell, fraction)
        with self._writing("a review sample cannot be drawn") as (con, _):
            if not con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]:
                raise review_sample.ReviewError(f"no run {run_id!r} in {self.path}")
            eligible = _review_eligible(con, [run_id], by_uncertainty)
            if eligible.empty:
                raise review_sample.ReviewError(f"run {run_id!r} has no completion without an error to sample")
            if replace:
                con.execute("DELETE FROM review_sample WHERE run_id = ?", [run_id])
            existing = con.execute(f"SELECT {_SAMPLE_COLUMNS} FROM review_sample WHERE run_id = ?",
                                   [run_id]).df()
            if by_uncertainty:
                if len(existing):
                    raise review_sample.ReviewError(
                        f"run {run_id!r} already has a review sample ({len(existing)} completions); drawing by "
                        "uncertainty replaces it, so add --replace (human verdicts are kept)")
                added = review_sample.draw_by_uncertainty(eligible, by_uncertainty, per_cell=per_cell,
                                                          fraction=fraction, seed=seed)
            else:
                added = review_sample.draw_sample(eligible, existing, per_cell=per_cell, fraction=fraction, seed=seed)
            if len(added):
                con.register("new_sample", added)
                con.execute(f"INSERT INTO review_sample ({_SAMPLE_COLUMNS}) SELECT {_SAMPLE_COLUMNS} "
                            "FROM new_sample")
                con.unregister("new_sample")
        strata = review_sample.summarise(review_sample.stratum_sizes(eligible), added, existing)
        return {"run_id": run_id, "draw": int(added["draw"].iloc[0]) if len(added) else int(
                    existing["draw"].max()) if len(existing) else 0,
                "seed": int(seed), "replaced": bool(replace), "by_uncertainty": by_uncertainty,
                "expected": int(sum(review_sample.target_size(int(n), per_cell, fraction) for n in strata["completions"]))
                if by_uncertainty else None, "added": int(len(added)),
                "sampled": int(strata["sampled"].sum()), "completions": int(strata["completions"].sum()),
                "strata": strata.to_dict(orient="records")}

    def review_queue(self, run_id: str | None = None, limit: int = 1,
                     filters: dict[str, Sequence[str] | str | None] | None = None,
                     judge: str | None = None) -> pd.DataFrame:
        """The next sampled completions that have no human verdict yet (nor an "unsure"), in queue order (run,
        position).

        Columns: completion_id, run_id, model, language, group, kind, strategy, scenario_category, scenario,
        position, draw, prompt, completion, judge_label (the `judge`'s verdict; None when no judge is named,
        so a page that hides it to not anchor the person never has it).
        """
        where, params = _where({**(filters or {}), "run_id": run_id} if run_id else filters)
        where = (where + " AND" if where else " WHERE") + (
            " NOT EXISTS (SELECT 1 FROM verdicts h WHERE h.seq = s.seq AND h.judge = 'human')"
            f" AND s.completion_id NOT IN {_UNSURE_IDS}")
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT s.completion_id, s.run_id, s.model, s.language, s."group", s.kind, p.strategy,
                       p.scenario_category, p.scenario, s.position, s.draw, p.prompt, c.text AS completion,
                       v.label AS judge_label
                FROM review_sample s JOIN completions c ON c.seq = s.seq JOIN probes p USING (probe_id)
                LEFT JOIN verdicts v ON v.seq = s.seq AND v.judge = ?
                {where} ORDER BY s.run_id, s.position LIMIT ?
                """,
                [judge or "", *params, int(limit)],
            ).df()

    def review_progress(self, run_id: str | None = None) -> pd.DataFrame:
        """Per stratum of the runs that have a sample (or of `run_id`): run_id, model, language, group, kind,
        completions (non-error, now), stratum_size (when drawn), sampled, labelled (sample items with a human
        verdict), unsure (items marked unsure, without a label). A stratum that appeared after the draw shows
        sampled 0."""
        with self.connect() as con:
            return _sample_strata(con, {"run_id": run_id} if run_id else None, sampled_only=False, with_unsure=True)

    def sample_sheet(self, run_id: str | None = None) -> pd.DataFrame:
        """The sample as a labelling sheet, in queue order: completion_id, run_id, model, language, group,
        kind, prompt, completion, label (the human verdict where one exists), note."""
        where, params = (" WHERE s.run_id = ?", [run_id]) if run_id else ("", [])
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT s.completion_id, s.run_id, s.model, s.language, s."group", s.kind, p.prompt,
                       c.text AS completion, coalesce(h.label, '') AS label, coalesce(h.rationale, '') AS note
                FROM review_sample s JOIN completions c ON c.seq = s.seq JOIN probes p USING (probe_id)
                LEFT JOIN verdicts h ON h.seq = s.seq AND h.judge = 'human'
                {where} ORDER BY s.run_id, s.position
                """, params).df()

    def import_human_verdicts(self, rows: Sequence[tuple[int, str, str, str | None]], annotator: str = "", *,
                              as_random_sample: bool = False, source: str = "input") -> dict[str, Any]:
        """Store people's labels: rows of (line number, completion_id, label, note), as read from a file.

        All or nothing: every row is checked first (unknown id, a label other than refused/complied, one id
        given two labels) and any problem raises VerdictImportError with `SOURCE:LINE: reason` for each;
        then one transaction, as set_human_verdict does for one (an annotation row and the `human` verdict,
        cell_counts refreshed). A row whose label and note equal the stored human verdict is left alone, so
        importing a file twice changes nothing. A blank label is a row nobody labelled yet: skipped.
        `as_random_sample`: the labelled ids are a random sample drawn elsewhere and become their runs'
        review sample (refused where a run has one already, or for a completion with an error).
        Returns rows, labelled, changed, unchanged, blank, sampled and runs.
        """
        problems: list[tuple[int, str]] = []
        chosen: dict[str, tuple[int, str, str]] = {}
        blank = 0
        for line, completion_id, label, note in rows:
            completion_id, label = (completion_id or "").strip(), (label or "").strip().lower()
            if not completion_id:
                problems.append((line, "no completion_id"))
            elif not label:
                blank += 1
            elif label not in ("refused", "complied"):
                problems.append((line, f"label {label!r}: a human verdict is 'refused' or 'complied'"))
            elif completion_id in chosen and chosen[completion_id][1] != label:
                first = chosen[completion_id]
                problems.append((line, f"completion {completion_id} is labelled {label!r} here but "
                                       f"{first[1]!r} on line {first[0]}"))
            elif completion_id not in chosen:
                chosen[completion_id] = (line, label, note or "")
        incoming = pd.DataFrame([(cid, line, label, note) for cid, (line, label, note) in chosen.items()],
                                columns=["completion_id", "line", "label", "note"])
        with self._writing("verdicts cannot be changed") as (con, touched):
            con.register("incoming_labels", incoming)
            found = con.execute(
                f'SELECT i.completion_id, i.line, i.label, i.note, c.seq, c.probe_id, {select(STRATA)}, '
                'c.error IS NOT NULL AS errored, h.label AS old_label, coalesce(h.rationale, \'\') AS old_note, '
                'EXISTS (SELECT 1 FROM review_sample s WHERE s.run_id = c.run_id) AS run_sampled '
                'FROM incoming_labels i LEFT JOIN completions c USING (completion_id) '
                'LEFT JOIN probes p USING (probe_id) '
                "LEFT JOIN verdicts h ON h.seq = c.seq AND h.judge = 'human' ORDER BY i.line").df()
            for row in found.loc[found["seq"].isna()].itertuples():
                problems.append((row.line, f"unknown completion_id {row.completion_id!r} (no such completion "
                                           f"in {self.path})"))
            known = found.loc[found["seq"].notna()]
            if as_random_sample:
                for row in known.loc[known["errored"].astype(bool)].itertuples():
                    problems.append((row.line, f"completion {row.completion_id} has an error (no answer), so it "
                                               "cannot be part of a random sample"))
                taken = known.loc[known["run_sampled"].astype(bool)].drop_duplicates("run_id")
                for row in taken.itertuples():
                    problems.append((row.line, f"run {row.run_id!r} has a review sample already; import "
                                               "without --as-random-sample (labels for its sample), or "
                                               "label that sample"))
            if problems:
                raise VerdictImportError([f"{source}:{line}: {reason}" for line, reason in sorted(problems)])
            changed = known.loc[(known["old_label"].isna()) | (known["old_label"] != known["label"])
                                | (known["old_note"] != known["note"])]
            changed = changed.assign(author=annotator, raw=[
                json.dumps({"author": annotator, "note": note}, ensure_ascii=False) for note in changed["note"]])
            if len(changed):
                con.register("changed_labels", changed[["completion_id", "seq", "label", "note", "author",
                                                        "raw"]])
                con.execute("INSERT INTO annotations (completion_id, label, note, author) "
                            "SELECT completion_id, label, note, author FROM changed_labels")
                con.execute(
                    "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, "
                    "judge_model, seq) SELECT completion_id, 'human', label, note, raw, '', '', seq "
                    "FROM changed_labels ON CONFLICT (completion_id, judge) DO UPDATE SET "
                    "label = excluded.label, rationale = excluded.rationale, raw = excluded.raw, "
                    "created_at = now()")
                con.unregister("changed_labels")
                touched.append(changed[["model", "probe_id"]].rename(columns={"model": "target_id"}))
            sampled = 0
            if as_random_sample and len(known):
                sample = review_sample.imported_sample(known[["completion_id", "seq", *review_sample.STRATA]],
                                                _review_eligible(con, sorted(set(known["run_id"]))))
                con.register("new_sample", sample)
                con.execute(f"INSERT INTO review_sample ({_SAMPLE_COLUMNS}) SELECT {_SAMPLE_COLUMNS} "
                            "FROM new_sample")
                con.unregister("new_sample")
                sampled = len(sample)
            con.unregister("incoming_labels")
        return {"rows": len(rows), "labelled": int(len(known)), "changed": int(len(changed)),
                "unchanged": int(len(known) - len(changed)), "blank": blank, "sampled": sampled,
                "runs": sorted(set(known["run_id"]))}

    def ppi_inputs(self, judge: str, by: Sequence[str] = ("model", "group"),
                   filters: dict[str, Sequence[str] | str | None] | None = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """What prediction-powered Defense Rates (core/ppi/) need: (population, sample, strata).

        - population: per cell of STRATA + `by` (every completion matching `filters`, sampled or not): n
          (non-error completions), refused, complied, unparsed: the judge's OWN verdicts, with no human
          override (the corrected estimate adds the human correction itself; n minus the three = unjudged).
        - sample: one row per labelled sample completion (in review_sample, with a human verdict, no error)
          matching `filters`: completion_id, the same columns, judge_label (None if the judge has none),
          human_label, inclusion_prob (NaN in a stratified simple random sample; in a sample drawn by
          uncertainty the item's chance of being drawn AND labelled: its drawn probability x labelled / drawn in
          its stratum, since the labelled part of a stratum is a random part of what was drawn).
        - strata: per sampled stratum (filters on STRATA columns apply, others do not: a stratum's inclusion
          probability is a property of the whole stratum): STRATA, completions (now), stratum_size (when
          drawn), sampled, labelled. A population cell whose stratum is missing here has no sample.

        Fast at 528,000 completions: the population is summed from cell_counts, which holds the judge's
        labels of completions without a human verdict (and counts errors among them), corrected by the few
        completions that it does not count that way (those with a human verdict, and those with an error),
        never a join over every completion. Grouping or filtering by `scenario` (not in cell_counts) joins.

        The population and the sample follow the selection's one answer per (target, probe) (rows.py, _answers):
        a sampled completion that is no longer the answer a view counts (a later run re-answered its probe) is in
        neither. The strata keep the sample's design as drawn (inclusion probabilities are the run's), so what
        remains of a stratum's sample is a random subsample of its current answers.
        """
        _check_by(by)
        grain = [*STRATA, *[name for name in by if name not in STRATA]]
        labels = ("refused", "complied", "unparsed")
        joined = [select(grain)]  # names checked above
        where, params = _where_answers(filters)
        with self.connect() as con:
            kept = _cell_selection(con, filters) if set(grain) | set(_active(filters)) <= set(CELL_COLUMNS) else None
            if kept is not None:
                cell_where, cell_params = _where(filters, _CELL_FILTERS)
                cell_where = (cell_where + " AND" if cell_where else " WHERE") + f" {kept} AND judge IN (?, '')"
                dims = ", ".join(f'"{name}"' for name in grain)
                match = " AND ".join(f'f."{name}" IS NOT DISTINCT FROM b."{name}"' for name in grain)
                population = con.execute(
                    f"""
                    WITH base AS (
                        SELECT {dims},
                               sum(n) FILTER (WHERE judge = '' AND label = 'all')
                                 - coalesce(sum(n) FILTER (WHERE judge = '' AND label = 'error'), 0) AS n,
                               {', '.join(f"coalesce(sum(n) FILTER (WHERE judge <> '' AND label = '{label}'), 0)"
                                          f" AS {label}" for label in labels)}
                        FROM cell_counts {cell_where} GROUP BY ALL),
                    humans AS (SELECT seq FROM verdicts WHERE judge = 'human' AND seq IS NOT NULL),
                    errors AS (SELECT seq FROM completions WHERE error IS NOT NULL AND seq IS NOT NULL),
                    special AS (  -- +1: the judge's label of a human-verdict completion; -1: of an error
                        SELECT seq, 1 AS sign FROM humans WHERE seq NOT IN (SELECT seq FROM errors)
                        UNION ALL SELECT seq, -1 AS sign FROM errors WHERE seq NOT IN (SELECT seq FROM humans)),
                    fix AS (
                        SELECT {', '.join(joined)},
                               {', '.join(f"sum(x.sign) FILTER (WHERE v.label = '{label}') AS {label}"
                                          for label in labels)}
                        FROM special x JOIN verdicts v ON v.seq = x.seq AND v.judge = ?
                        JOIN completions c ON c.seq = x.seq JOIN probes p USING (probe_id)
                        {where} GROUP BY ALL)
                    SELECT {', '.join(f'b."{name}"' for name in grain)}, b.n::BIGINT AS n,
                           {', '.join(f"(b.{label} + coalesce(f.{label}, 0))::BIGINT AS {label}"
                                      for label in labels)}
                    FROM base b LEFT JOIN fix f ON {match}
                    WHERE b.n > 0 ORDER BY ALL
                    """,
                    [*cell_params, judge, judge, *params],
                ).df()
            else:
                population = con.execute(
                    f"""
                    SELECT {', '.join(joined)}, count(*) AS n,
                           {', '.join(f"count(*) FILTER (WHERE v.label = '{label}') AS {label}" for label in labels)}
                    {FROM_ROWS}
                    LEFT JOIN verdicts v ON v.seq = c.seq AND v.judge = ?
                    {where} AND c.error IS NULL GROUP BY ALL ORDER BY ALL
                    """,
                    [judge, *params],
                ).df()
            if set(grain) | set(_active(filters)) <= set(STRATA):  # the sample's own columns: no join
                columns, sample_where, sample_params, source = [
                    f'{_SAMPLE_ALIASES[name]} AS "{name}"' for name in grain], *_where(filters, _SAMPLE_ALIASES), ""
                current, current_params = _answers(filters, seq="s.seq")
                sample_where = (sample_where + " AND " if sample_where else " WHERE ") + current
                sample_params = [*sample_params, *current_params]
            else:
                columns, sample_where, sample_params = joined, where, params
                source = "JOIN completions c ON c.seq = s.seq JOIN probes p USING (probe_id)"
            design = " AND ".join(f's.{column} IS NOT DISTINCT FROM d.{column}' for column in _STRATUM_FILTERS.values())
            sample = con.execute(
                f"""
                WITH drawn AS (  -- per stratum: items drawn, and labelled (the labelled part is an SRS of them)
                    SELECT s.run_id, s.model, s.language, s."group", s.kind, count(*) AS sampled,
                           count(l.seq) AS labelled
                    FROM review_sample s
                    LEFT JOIN verdicts l ON l.seq = s.seq AND l.judge = 'human' AND l.label IN ('refused', 'complied')
                    GROUP BY ALL)
                SELECT s.completion_id, {', '.join(columns)}, v.label AS judge_label, h.label AS human_label,
                       s.inclusion_prob * d.labelled / d.sampled AS inclusion_prob
                FROM review_sample s {source}
                JOIN drawn d ON {design}
                JOIN verdicts h ON h.seq = s.seq AND h.judge = 'human'
                LEFT JOIN verdicts v ON v.seq = s.seq AND v.judge = ?
                {sample_where} AND h.label IN ('refused', 'complied')
                ORDER BY s.run_id, s.position
                """,
                [judge, *sample_params],
            ).df()
            strata = _sample_strata(con, {k: v for k, v in (filters or {}).items() if k in STRATA},
                                    sampled_only=True)
        return population, sample, strata
