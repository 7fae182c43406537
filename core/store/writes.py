"""The write room: completions and verdicts, each batch in one transaction that also refreshes cell_counts.

Uniqueness is enforced by the schema itself (a completion by (run, probe, target), a verdict by (completion,
judge)), so a run that is killed at any point resumes without duplicates: each batch of completions and its
verdicts is written in one transaction, which either lands whole or not at all.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pandas as pd

from core.redact import redact
from core.store.errors import StoreError


@dataclass(frozen=True)
class CompletionRecord:
    """One target response to one probe within a run, ready to store."""

    run_id: str
    probe_id: str
    target_id: str
    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    gen_seed: int | None = None
    retries: int = 0  # extra attempts an API target needed before this answer (or this final error)

    @property
    def completion_id(self) -> str:
        return completion_id_for(self.run_id, self.probe_id, self.target_id)


@dataclass(frozen=True)
class VerdictRecord:
    completion_id: str
    judge: str
    label: str
    rationale: str = ""
    raw: str = ""
    judge_version: str = ""
    judge_model: str = ""


def completion_id_for(run_id: str, probe_id: str, target_id: str) -> str:
    """Deterministic, so a retried write of the same completion hits the same primary key. The schema checks
    every stored id against this rule (SQL sha1), which makes the key unique by (run, probe, target)."""
    key = "\x1f".join((run_id, probe_id, target_id))
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


def _numbered(con: duckdb.DuckDBPyConnection, completions: pd.DataFrame) -> pd.DataFrame:
    """New completions with their `seq` (the integer key verdicts join on), after the file's last one."""
    start = con.execute("SELECT coalesce(max(seq) + 1, 0) FROM completions").fetchall()[0][0]
    return completions.assign(seq=range(start, start + len(completions)))


def _replace_errors(con: duckdb.DuckDBPyConnection, comp: pd.DataFrame, verd: pd.DataFrame,
                    touched: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Inside a write's transaction: the batch's completions whose stored row holds an error replace it in place
    (same id and seq, so its verdicts join as any other's), the old row kept in completion_attempts; their
    verdicts are written. Returns the rest of the batch (and of its verdicts) for the ordinary insert."""
    con.register("retried_completions", comp)
    replaced = [row[0] for row in con.execute(
        "SELECT completion_id FROM retried_completions JOIN completions c USING (completion_id) "
        "WHERE c.error IS NOT NULL").fetchall()]
    if not replaced:
        con.unregister("retried_completions")
        return comp, verd
    con.register("replaced_ids", pd.DataFrame({"completion_id": replaced}))
    con.execute(
        "INSERT INTO completion_attempts (completion_id, run_id, probe_id, target_id, text, error, prompt_tokens, "
        "completion_tokens, latency_s, retries, gen_seed, attempted_at) SELECT c.completion_id, c.run_id, "
        "c.probe_id, c.target_id, c.text, c.error, c.prompt_tokens, c.completion_tokens, c.latency_s, c.retries, "
        "c.gen_seed, c.created_at FROM completions c JOIN replaced_ids USING (completion_id)")
    con.execute(
        "UPDATE completions SET text = r.text, prompt_tokens = r.prompt_tokens, "
        "completion_tokens = r.completion_tokens, "
        "latency_s = r.latency_s, error = r.error, gen_seed = r.gen_seed, retries = r.retries, "
        "created_at = current_timestamp FROM retried_completions r JOIN replaced_ids USING (completion_id) "
        "WHERE completions.completion_id = r.completion_id")
    # An error has no judge's verdict; one left from before (none is written for errors) would judge other text.
    con.execute("DELETE FROM verdicts WHERE judge <> 'human' AND completion_id IN "
                "(SELECT completion_id FROM replaced_ids)")
    mine = verd[verd["completion_id"].isin(replaced)] if len(verd) else verd
    if len(mine):
        con.register("replacing_verdicts", mine)
        con.execute(
            "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, judge_model, seq) "
            "SELECT n.completion_id, n.judge, n.label, n.rationale, n.raw, n.judge_version, n.judge_model, c.seq "
            "FROM replacing_verdicts n JOIN completions c USING (completion_id) ON CONFLICT DO NOTHING")
        con.unregister("replacing_verdicts")
    touched.append(comp.loc[comp["completion_id"].isin(replaced), ["target_id", "probe_id"]])
    con.execute("UPDATE runs SET updated_at = current_timestamp WHERE run_id IN "
                "(SELECT DISTINCT run_id FROM retried_completions)")
    con.unregister("retried_completions")
    con.unregister("replaced_ids")
    rest = ~comp["completion_id"].isin(replaced)
    return comp[rest], (verd[~verd["completion_id"].isin(replaced)] if len(verd) else verd)


class Writes:
    """Storing results: batches of completions and verdicts, a re-judge, a person's verdict."""

    def drop_stale_verdicts(self, run_id: str, judge: str, version: str) -> int:
        """Delete a run's verdicts by `judge` that an older version of it gave (so the current rules can judge
        those completions again); returns how many. Human verdicts are never touched."""
        if judge == "human":
            raise StoreError("human verdicts are never re-judged")
        condition = ("judge = ? AND coalesce(judge_version, '') <> ? AND completion_id IN "
                     "(SELECT completion_id FROM completions WHERE run_id = ?)")
        with self._writing("verdicts cannot be changed") as (con, touched):
            dropped = con.execute(f"SELECT DISTINCT c.target_id, c.probe_id FROM verdicts JOIN completions c "
                                  f"USING (completion_id) WHERE {condition}", [judge, version, run_id]).df()
            stale = con.execute(f"SELECT count(*) FROM verdicts WHERE {condition}", [judge, version, run_id]).fetchall()[0][0]
            con.execute(f"DELETE FROM verdicts WHERE {condition}", [judge, version, run_id])
            touched.append(dropped)
        return int(stale)

    def save_results(self, completions: Sequence[CompletionRecord], verdicts: Sequence[VerdictRecord],
                     replace_errors: bool = False) -> int:
        """Store a batch of completions and their verdicts in one transaction; returns completions added.

        Rows that already exist (same run, probe, target; same completion and judge) are left as they
        are, so writing a batch twice changes nothing. With replace_errors, a stored completion that holds an
        error is replaced by the batch's version of it (same id and seq; the old row goes to
        completion_attempts), so a retried error never makes a second row.
        """
        comp = pd.DataFrame(
            [{"completion_id": c.completion_id, "run_id": c.run_id, "probe_id": c.probe_id,
              "target_id": c.target_id, "text": c.text, "prompt_tokens": c.prompt_tokens,
              "completion_tokens": c.completion_tokens, "latency_s": c.latency_s, "error": redact(c.error),
              "gen_seed": c.gen_seed, "retries": c.retries} for c in completions],
            columns=["completion_id", "run_id", "probe_id", "target_id", "text", "prompt_tokens",
                     "completion_tokens", "latency_s", "error", "gen_seed", "retries"],
        )
        verd = pd.DataFrame([vars(v) for v in verdicts],
                            columns=["completion_id", "judge", "label", "rationale", "raw",
                                     "judge_version", "judge_model"])
        return self.save_result_frames(comp, verd, replace_errors=replace_errors)

    def save_result_frames(self, comp: pd.DataFrame, verd: pd.DataFrame, replace_errors: bool = False) -> int:
        """save_results for data already in DataFrames (the columns of CompletionRecord plus completion_id,
        and of VerdictRecord): bulk loads such as bench/synthetic.py skip building a record per row.
        """
        with self._writing() as (con, touched):
            before = con.execute("SELECT count(*) FROM completions").fetchall()[0][0]
            if len(comp):
                if "retries" not in comp.columns:  # bulk imports of other tools' results: no retries known
                    comp = comp.assign(retries=0)
                comp = comp.drop_duplicates("completion_id")  # a batch naming one completion twice keeps the first
                if replace_errors:
                    comp, verd = _replace_errors(con, comp, verd, touched)
                comp = _numbered(con, comp)
                con.register("new_completions", comp)
                touched.append(comp[["target_id", "probe_id"]])
                # A completion stored already (by another process executing the same run) keeps its row, and
                # the verdicts of this batch's version of it are dropped: they judged text that is not stored
                # (an error of the other process would otherwise carry this process's refusal).
                taken = {row[0] for row in con.execute(
                    "SELECT completion_id FROM new_completions JOIN completions USING (completion_id)").fetchall()}
                if taken and len(verd):
                    verd = verd[~verd["completion_id"].isin(taken)]
                con.execute(
                    "INSERT INTO completions (completion_id, run_id, probe_id, target_id, text, prompt_tokens, "
                    "completion_tokens, latency_s, error, gen_seed, retries, seq) SELECT completion_id, run_id, "
                    "probe_id, target_id, text, prompt_tokens, completion_tokens, latency_s, error, gen_seed, retries, seq "
                    # The id is a hash of (run, probe, target), so naming it is the same rule; a bare
                    # ON CONFLICT over both unique indexes takes minutes on a large table in DuckDB 2.
                    "FROM new_completions ON CONFLICT (completion_id) DO NOTHING"
                )
            if len(verd):
                # A verdict carries its completion's seq (and lands only if that completion is stored). Verdicts
                # of this batch's own completions (a run's batch) find it in the batch; others (a judge run
                # over stored completions) in the table.
                con.register("new_verdicts", verd)
                own = len(comp) > 0 and bool(verd["completion_id"].isin(comp["completion_id"]).all())
                stored = "new_completions" if own else "completions"
                con.execute(
                    "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, "
                    "judge_model, seq) SELECT n.completion_id, n.judge, n.label, n.rationale, n.raw, "
                    f"n.judge_version, n.judge_model, c.seq FROM new_verdicts n JOIN {stored} c USING (completion_id) "
                    "ON CONFLICT DO NOTHING"
                )
                if stored == "completions":
                    touched.append(con.execute("SELECT DISTINCT c.target_id, c.probe_id FROM new_verdicts "
                                               "JOIN completions c USING (completion_id)").df())
            added = con.execute("SELECT count(*) FROM completions").fetchall()[0][0] - before
            if len(comp):
                con.execute("UPDATE runs SET updated_at = current_timestamp WHERE run_id IN "
                            "(SELECT DISTINCT run_id FROM new_completions)")
        return added

    def set_human_verdict(self, completion_id: str, label: str, note: str = "", author: str = "") -> None:
        """Record a person's verdict: appended to `annotations` (the history) and upserted as judge `human`,
        which overrides every other judge in every view. One transaction, so both land or neither.
        """
        if label not in ("refused", "complied"):
            raise StoreError(f"a human verdict is 'refused' or 'complied', not {label!r}")
        with self._writing("verdicts cannot be changed") as (con, touched):
            if not con.execute("SELECT count(*) FROM completions WHERE completion_id = ?",
                               [completion_id]).fetchall()[0][0]:
                raise StoreError(f"no completion {completion_id!r} in {self.path}")
            con.execute("INSERT INTO annotations (completion_id, label, note, author) VALUES (?, ?, ?, ?)",
                        [completion_id, label, note, author])
            con.execute(
                "INSERT INTO verdicts (completion_id, judge, label, rationale, raw, judge_version, judge_model, seq) "
                "SELECT ?, 'human', ?, ?, ?, '', '', seq FROM completions WHERE completion_id = ? "
                "ON CONFLICT (completion_id, judge) DO UPDATE SET "
                "label = excluded.label, rationale = excluded.rationale, raw = excluded.raw, created_at = now()",
                [completion_id, label, note, json.dumps({"author": author, "note": note}, ensure_ascii=False),
                 completion_id],
            )
            touched.append(con.execute("SELECT target_id, probe_id FROM completions WHERE completion_id = ?",
                                       [completion_id]).df())
