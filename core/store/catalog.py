"""The catalog room: probes, targets and runs (their plans, statuses and per-run counts)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

from core.probes.schema import PROBE_FIELDS, Probe
from core.redact import redact
from core.store.connection import _first
from core.store.errors import ProbeChanged, StoreError, TaxonomyConflict
from core.store.rows import _PROBE_COLUMNS, FROM_ROWS, _where, select
from core.vocab import taxonomy


class Catalog:
    """What the store knows besides results: probes, targets, runs."""

    def add_probes(self, probes: Sequence[Probe], vocabulary: taxonomy.Taxonomy | None = None,
                   refuse_changed: bool = False) -> int:
        """Insert probes that are not stored yet; returns how many were new.

        The probes' taxonomy is stored with them (name, hash and text of the file: `vocabulary`, needed for one
        this database does not hold yet). A database holds one taxonomy: probes of another are refused with
        TaxonomyConflict and nothing is written, because two populations' keys mixed in one table (a `black`
        of one file beside a `black` of another) would be silently merged in every view.

        A probe whose id is stored already is kept as stored; with `refuse_changed` (`probes import`), one whose
        content differs from the stored one is refused instead (ProbeChanged naming both versions, nothing
        written): the same id with other words would otherwise be dropped without a word."""
        if not probes:
            return 0
        names = sorted({p.taxonomy for p in probes})
        if len(names) > 1:
            raise TaxonomyConflict(f"these probes name {len(names)} taxonomies ({', '.join(names)}): store them in "
                                   "one database each (--db)")
        name = names[0]
        if vocabulary is None and name == taxonomy.DEFAULT_NAME:
            vocabulary = taxonomy.DEFAULT
        if vocabulary is not None and vocabulary.name != name:
            raise TaxonomyConflict(f"the probes name taxonomy {name!r}, the file given is {vocabulary.name!r}")
        # vars(), not asdict(): a probe's fields are plain strings, and asdict's deep copy is 10x slower.
        frame = pd.DataFrame([vars(p) for p in probes], columns=list(PROBE_FIELDS))
        with self._writing() as (con, _):
            conflict = self._population_conflict(con, name, vocabulary.path if vocabulary else None, "these probes")
            if conflict:
                raise TaxonomyConflict(conflict)
            if vocabulary is not None:
                con.execute("INSERT INTO taxonomies (name, sha256, path, text) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT DO NOTHING", [vocabulary.name, vocabulary.sha256, vocabulary.path,
                                                       vocabulary.text])
            elif _first(con.execute("SELECT 1 FROM taxonomies WHERE name = ?", [name])) is None:
                raise TaxonomyConflict(f"taxonomy {name!r} is not stored in {self.path}: import the probe file "
                                       "that names it first (python -m core probes import FILE)")
            con.register("incoming", frame)
            if refuse_changed:
                stored = {row[0]: Probe(*row) for row in con.execute(
                    f"SELECT {_PROBE_COLUMNS} FROM probes WHERE probe_id IN (SELECT probe_id FROM incoming)").fetchall()}
                changed = [(stored[p.probe_id], p) for p in probes
                           if p.probe_id in stored and ProbeChanged.fields(stored[p.probe_id], p)]
                if changed:
                    raise ProbeChanged(changed)
            before = con.execute("SELECT count(*) FROM probes").fetchall()[0][0]
            con.execute(
                f"INSERT INTO probes ({_PROBE_COLUMNS}) SELECT DISTINCT ON (probe_id) {_PROBE_COLUMNS} "
                f"FROM incoming ON CONFLICT DO NOTHING"
            )
            return con.execute("SELECT count(*) FROM probes").fetchall()[0][0] - before

    def _population_conflict(self, con, name: str, path: str | None, these: str) -> str | None:
        """Why probes of taxonomy `name` cannot join this database (it holds another population), or None; what
        `probes import` and `restore` both refuse, because one database holds one population."""
        held = [row[0] for row in con.execute("SELECT DISTINCT taxonomy FROM probes ORDER BY 1").fetchall()]
        if not held or held == [name]:
            return None
        stored = _first(con.execute("SELECT path FROM taxonomies WHERE name = ? ORDER BY stored_at DESC LIMIT 1",
                                    [held[0]]))
        return (f"{self.path} holds probes of taxonomy {held[0]!r} ({stored[0] if stored else 'built in'}); {these} "
                f"are of taxonomy {name!r}{f' ({path})' if path else ''}. One database holds one population: store "
                "them in another database (--db, or AUDIT_DB).")

    def taxonomy(self) -> taxonomy.Taxonomy:
        """The taxonomy of the stored probes (its newest stored revision): where pages, statistics, exports and
        the report take group names and languages from. The bundled default for a database without probes."""
        with self.connect() as con:
            row = _first(con.execute(
                "SELECT t.text, t.path FROM taxonomies t WHERE t.name = (SELECT taxonomy FROM probes LIMIT 1) "
                "ORDER BY t.stored_at DESC LIMIT 1"))
        if row is None:
            return taxonomy.DEFAULT
        if row[0] == taxonomy.DEFAULT.text:
            return taxonomy.DEFAULT
        return taxonomy.parse(row[0], row[1] or "<stored taxonomy>")

    def probes(self, filters: dict[str, Sequence[str] | str | None] | None = None) -> list[Probe]:
        """Stored probes, optionally filtered by language, group, strategy, scenario_category, kind."""
        allowed = {k: v for k, v in (filters or {}).items() if k not in ("model", "run_id")}
        where, params = _where(allowed)
        with self.connect() as con:
            rows = con.execute(f"SELECT {_PROBE_COLUMNS} FROM probes p{where} ORDER BY probe_id",
                               params).fetchall()
        return [Probe(*row) for row in rows]

    def save_target(self, target_id: str, backend: str, model: str, base_url: str | None = None,
                    family: str | None = None, size_b: float | None = None,
                    settings: dict[str, Any] | None = None) -> None:
        """Record a target's description (never a secret: settings must hold names, not keys)."""
        with self._writing() as (con, _):
            con.execute(
                "INSERT INTO targets (target_id, backend, model, base_url, family, size_b, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target_id) DO UPDATE SET backend = excluded.backend, "
                "model = excluded.model, base_url = excluded.base_url, family = excluded.family, "
                "size_b = excluded.size_b, settings = excluded.settings",
                [target_id, backend, model, base_url, family, size_b, json.dumps(settings or {}, sort_keys=True)],
            )

    def targets(self) -> pd.DataFrame:
        with self.connect() as con:
            return con.execute("SELECT * FROM targets ORDER BY target_id").df()

    def target(self, target_id: str) -> dict[str, Any] | None:
        """One saved target with its settings decoded (what `resolve_target(name, store=...)` rebuilds), or None."""
        with self.connect() as con:
            row = _first(con.execute("SELECT target_id, backend, model, base_url, family, size_b, settings "
                                     "FROM targets WHERE target_id = ?", [target_id]))
        if row is None:
            return None
        return {"target_id": row[0], "backend": row[1], "model": row[2], "base_url": row[3], "family": row[4],
                "size_b": row[5], "settings": json.loads(row[6] or "{}")}

    def token_usage(self, run_id: str) -> pd.DataFrame:
        """Per target of a run: completions, errors, prompt and completion tokens, mean latency (for cost)."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT target_id, count(*) AS completions, count(error) AS errors,
                       coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
                       coalesce(sum(completion_tokens), 0) AS completion_tokens,
                       avg(latency_s) AS mean_latency_s
                FROM completions WHERE run_id = ? GROUP BY target_id ORDER BY target_id
                """,
                [run_id],
            ).df()

    def create_run(self, run_id: str, config: dict[str, Any], probe_ids: Sequence[str]) -> None:
        """Record a run and its planned probes in one transaction (targets attach when it executes)."""
        plan = pd.DataFrame({"run_id": run_id, "probe_id": list(probe_ids),
                             "position": range(len(probe_ids))})
        with self._writing() as (con, _):
            if con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchall()[0][0]:
                raise StoreError(f"a run {run_id!r} exists already in {self.path}")
            con.execute("INSERT INTO runs (run_id, status, config) VALUES (?, 'created', ?)",
                        [run_id, json.dumps(config, sort_keys=True)])
            con.register("plan", plan)
            con.execute("INSERT INTO run_probes SELECT run_id, probe_id, position FROM plan")

    def run(self, run_id: str) -> dict[str, Any] | None:
        """A run's row with its config decoded, or None."""
        with self.connect() as con:
            row = _first(con.execute("SELECT run_id, created_at, updated_at, status, config, message FROM runs "
                                     "WHERE run_id = ?", [run_id]))
            if row is None:
                return None
            targets = [r[0] for r in con.execute(
                "SELECT target_id FROM run_targets WHERE run_id = ? ORDER BY target_id", [run_id]).fetchall()]
        return {"run_id": row[0], "created_at": row[1], "updated_at": row[2], "status": row[3],
                "config": json.loads(row[4]), "targets": targets, "message": row[5]}

    def runs(self) -> pd.DataFrame:
        """Every run with its planned and stored counts, newest first."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT r.run_id, r.status, r.created_at, r.updated_at,
                       (SELECT count(*) FROM run_probes rp WHERE rp.run_id = r.run_id)
                         * (SELECT count(*) FROM run_targets rt WHERE rt.run_id = r.run_id) AS planned,
                       (SELECT count(*) FROM completions c WHERE c.run_id = r.run_id) AS completions,
                       (SELECT count(*) FROM completions c WHERE c.run_id = r.run_id AND c.error IS NOT NULL) AS errors,
                       r.message
                FROM runs r ORDER BY r.created_at DESC
                """
            ).df()

    def add_run_targets(self, run_id: str, target_ids: Sequence[str]) -> None:
        """Attach targets to a run (idempotent)."""
        with self._writing() as (con, _):
            con.executemany("INSERT INTO run_targets VALUES (?, ?) ON CONFLICT DO NOTHING",
                            [[run_id, t] for t in target_ids])

    def add_run_probes(self, run_id: str, probe_ids: Sequence[str]) -> int:
        """Append probes to a run's plan after its last position (idempotent); returns how many were new.

        Imports plan as they read (core/files/align.py), since a streamed file's probes are not known up front.
        """
        plan = pd.DataFrame({"probe_id": list(probe_ids)}).drop_duplicates()
        with self._writing() as (con, _):
            start = con.execute("SELECT coalesce(max(position) + 1, 0) FROM run_probes WHERE run_id = ?",
                                [run_id]).fetchall()[0][0]
            before = con.execute("SELECT count(*) FROM run_probes WHERE run_id = ?", [run_id]).fetchall()[0][0]
            con.register("appended_plan", plan.assign(position=range(start, start + len(plan))))
            con.execute("INSERT INTO run_probes SELECT ?, probe_id, position FROM appended_plan ON CONFLICT DO NOTHING",
                        [run_id])
            added = con.execute("SELECT count(*) FROM run_probes WHERE run_id = ?", [run_id]).fetchall()[0][0] - before
        return added

    def judge_counts(self) -> dict[str, int]:
        """Verdicts stored per judge, most first: which judges a view can choose from."""
        with self.connect() as con:
            rows = con.execute("SELECT judge, count(*) AS n FROM verdicts GROUP BY judge ORDER BY n DESC, judge").fetchall()
        return {judge: n for judge, n in rows}

    def default_judge(self) -> str:
        """The judge a view uses unless told: the default judge (core.judges.DEFAULT_JUDGES) where it has verdicts,
        else `refusal` where it has (or nothing has), else the judge with the most verdicts (an imported
        MiJaBench-Align file brings only its own judges)."""
        from core.judges import DEFAULT_JUDGES

        counts = [name for name in self.judge_counts() if name != "human"]
        for preferred in (*DEFAULT_JUDGES, "refusal"):
            if preferred in counts:
                return preferred
        return "refusal" if not counts else counts[0]

    def set_run_status(self, run_id: str, status: str, message: str | None = None) -> None:
        """Set a run's status and the plain message that says why it stopped or failed (None clears it); any trace
        of an API key in the message is masked (core.redact).

        Which answer of a (target, probe) a view counts depends on whether its run completed (rows.py,
        _ANSWER_RANK), so the run's targets are recounted when it becomes or stops being completed."""
        with self._writing() as (con, touched):
            before = _first(con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]))
            con.execute("UPDATE runs SET status = ?, message = ?, updated_at = current_timestamp WHERE run_id = ?",
                        [status, redact(message), run_id])
            if before is not None and (before[0] == "completed") != (status == "completed"):
                touched.append(con.execute("SELECT DISTINCT model AS target_id FROM cell_counts WHERE run_id = ?",
                                           [run_id]).df())  # no probe_id: every answer of the target

    def errored_probes(self, run_id: str, target_id: str) -> list[Probe]:
        """Planned probes of a run whose completion for this target holds an error, in plan order."""
        return self._planned_probes(run_id, target_id, "EXISTS (SELECT 1 FROM completions c WHERE c.run_id = "
                                    "rp.run_id AND c.probe_id = rp.probe_id AND c.target_id = ? AND c.error IS NOT NULL)")

    def _planned_probes(self, run_id: str, target_id: str, condition: str) -> list[Probe]:
        """Planned probes of a run, in plan order, that meet `condition` (a constant of this class about the
        target's completion; its one parameter is the target)."""
        with self.connect() as con:
            rows = con.execute(
                f"""
                SELECT {", ".join("p." + c for c in _PROBE_COLUMNS.split(", "))}
                FROM run_probes rp JOIN probes p USING (probe_id)
                WHERE rp.run_id = ? AND {condition}
                ORDER BY rp.position
                """,
                [run_id, target_id],
            ).fetchall()
        return [Probe(*row) for row in rows]

    def first_error(self, run_id: str) -> str | None:
        """The most frequent error of a run's completions (the first stored among equals), or None."""
        with self.connect() as con:
            row = _first(con.execute("SELECT error FROM completions WHERE run_id = ? AND error IS NOT NULL "
                                     "GROUP BY error ORDER BY count(*) DESC, min(seq) LIMIT 1", [run_id]))
        return row[0] if row else None

    def attempts(self, run_id: str) -> pd.DataFrame:
        """The earlier attempts of a run's completions that were retried (their errors and times), oldest first."""
        with self.connect() as con:
            return con.execute("SELECT * FROM completion_attempts WHERE run_id = ? ORDER BY replaced_at, "
                               "completion_id", [run_id]).df()

    def target_speed(self, target_id: str) -> dict[str, Any] | None:
        """How fast a target answered in its latest run with at least two answers, from the completions' stored
        times: {run_id, completions, seconds (first to last answer stored), tokens (generated)}; None when it has
        no such run; `batches`: the distinct store times (a batch is stored at once, so the span runs from the first
        batch's store to the last's). The Run page's estimate before a run, and its ETA until the first batch is
        measured (core.run.eta.prior)."""
        with self.connect() as con:
            row = _first(con.execute(
                """
                SELECT run_id, count(*) AS n, epoch(max(created_at)) - epoch(min(created_at)) AS seconds,
                       sum(coalesce(completion_tokens, 0)) AS tokens, max(created_at) AS last,
                       count(DISTINCT created_at) AS batches
                FROM completions WHERE target_id = ? AND error IS NULL
                GROUP BY run_id HAVING count(*) >= 2 AND epoch(max(created_at)) > epoch(min(created_at))
                ORDER BY last DESC LIMIT 1
                """, [target_id]))
        if row is None:
            return None
        return {"run_id": row[0], "completions": int(row[1]), "seconds": float(row[2]), "tokens": int(row[3] or 0),
                "batches": int(row[5])}

    def run_target_counts(self) -> pd.DataFrame:
        """Per run and target: probes planned, completions stored, errors, pending, the error share."""
        with self.connect() as con:
            return con.execute(
                """
                SELECT rt.run_id, rt.target_id, r.status,
                       (SELECT count(*) FROM run_probes rp WHERE rp.run_id = rt.run_id) AS planned,
                       count(c.completion_id) AS completions, count(c.error) AS errors
                FROM run_targets rt JOIN runs r USING (run_id)
                LEFT JOIN completions c ON c.run_id = rt.run_id AND c.target_id = rt.target_id
                GROUP BY ALL ORDER BY max(r.created_at) DESC, rt.run_id, rt.target_id
                """
            ).df().assign(pending=lambda f: f["planned"] - f["completions"],
                          error_share=lambda f: (f["errors"] / f["completions"].where(f["completions"] > 0)))

    def pending_probes(self, run_id: str, target_id: str) -> list[Probe]:
        """Planned probes of a run that have no stored completion for this target yet, in plan order."""
        return self._planned_probes(run_id, target_id, "NOT EXISTS (SELECT 1 FROM completions c WHERE c.run_id = "
                                    "rp.run_id AND c.probe_id = rp.probe_id AND c.target_id = ?)")

    def unjudged(self, run_id: str, judge: str) -> pd.DataFrame:
        """Completions of a run (without errors) that lack a verdict from this judge."""
        with self.connect() as con:
            return con.execute(
                f"""
                SELECT {select(["completion_id", "prompt", "completion", "language", "kind"])} {FROM_ROWS}
                WHERE c.run_id = ? AND c.error IS NULL AND NOT EXISTS (
                    SELECT 1 FROM verdicts v WHERE v.completion_id = c.completion_id AND v.judge = ?)
                ORDER BY c.completion_id
                """,
                [run_id, judge],
            ).df()

    def run_counts(self, run_id: str) -> dict[str, int]:
        """Planned probes x targets, stored completions, verdicts, errors and refusals of one run."""
        with self.connect() as con:
            row = con.execute(
                """
                SELECT
                  (SELECT count(*) FROM run_probes WHERE run_id = ?),
                  (SELECT count(*) FROM run_targets WHERE run_id = ?),
                  (SELECT count(*) FROM completions WHERE run_id = ?),
                  (SELECT count(*) FROM completions WHERE run_id = ? AND error IS NOT NULL),
                  (SELECT count(*) FROM verdicts v JOIN completions c USING (completion_id) WHERE c.run_id = ?)
                """,
                [run_id] * 5,
            ).fetchall()[0]
        return {"probes": row[0], "targets": row[1], "planned": row[0] * row[1], "completions": row[2],
                "errors": row[3], "verdicts": row[4]}
