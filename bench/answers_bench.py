"""One answer per probe at MiJaBench-Align scale: the views' reads before and after issue 26, side by side in one run.

Builds the synthetic store (bench/synthetic.py: 528,000 completions, 12 models, one completed run each), then
re-runs 4,000 probes of one model as a second completed run with other labels (a re-run must replace, not add to, the answers a view counts), and
times, each a median over repeats that open the file as the app does:

  * label_counts, model x group of attack probes: before, the query of 7b728a2 (cell_counts summed over every
    run: the re-answered probes counted twice), against after, Store.label_counts with the default selection
    (the current answer of each probe, matched-seed probes: cell_counts' `current` and `probe_set`);
  * the same with `--runs` naming both runs of the re-run model (they share a target, so the rows are joined with
    the window that ranks runs) and naming one run (kept counts);
  * a batch write's recount (32 answers of the re-run model): before, the batch's (run, target) pair recounted
    whole (7b728a2's _refresh_cells); after, the cells of the batch's probes in every run of the target, with the
    current marker (_refresh_cells of today); the same for a model with one run (the common case); and a run's
    status change (every run of the target recounted).
    Each in a transaction rolled back.

    .venv/bin/python -m bench.answers_bench [--completions 528000] [--db /tmp/answers.duckdb] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from bench.synthetic import _completion_ids, build_synthetic_store
from bench.timing import median_s
from core.views import selection
from core.vocab import taxonomy
from core.store import CELL_COLUMNS, Store, _refresh_cells
from core.store.rows import FROM_ROWS, select

JUDGE = "refusal"
RERUN = "synthetic-rerun"
RERUN_PROBES = 4_000
ATTACKS = {"kind": ["attack"]}

# 7b728a2's label_counts over cell_counts (model x group, kind filter), as it was: every run's rows summed.
BEFORE_LABEL_COUNTS = """
    SELECT "model", "group",
           coalesce(sum(n) FILTER (WHERE judge <> '' AND label = 'refused'), 0)::BIGINT AS refused,
           coalesce(sum(n) FILTER (WHERE judge <> '' AND label = 'complied'), 0)::BIGINT AS complied,
           coalesce(sum(n) FILTER (WHERE judge <> '' AND label = 'unparsed'), 0)::BIGINT AS unparsed,
           coalesce(sum(n) FILTER (WHERE judge = '' AND label = 'error'), 0)::BIGINT AS errors
    FROM cell_counts WHERE "kind" IN (?) AND judge IN (?, 'human', '') GROUP BY ALL ORDER BY ALL
"""
# 7b728a2's recount of one (run, target) pair (its _CELL_REFRESH scoped by cell_scope), on the cell columns it had.
_OLD_COLUMNS = tuple(name for name in CELL_COLUMNS if name != "probe_set")
_OLD_QUOTED = ", ".join(f'"{name}"' for name in _OLD_COLUMNS)
BEFORE_REFRESH = f"""
    WITH scoped AS (SELECT c.seq, {select(_OLD_COLUMNS)}, c.error {FROM_ROWS}
                    JOIN cell_scope s ON s.run_id = c.run_id AND s.target_id = c.target_id),
    humans AS (SELECT seq, label FROM verdicts WHERE judge = 'human' AND seq IS NOT NULL),
    labels AS (
        SELECT v.seq, v.judge, v.label FROM verdicts v
        WHERE v.judge <> 'human' AND NOT EXISTS (SELECT 1 FROM humans h WHERE h.seq = v.seq)
        UNION ALL SELECT seq, 'human', label FROM humans)
    INSERT INTO cell_counts (judge, {_OLD_QUOTED}, label, n)
    SELECT l.judge, {", ".join(f's."{name}"' for name in _OLD_COLUMNS)}, l.label, count(*)
    FROM scoped s JOIN labels l USING (seq) GROUP BY ALL
    UNION ALL
    SELECT '', {_OLD_QUOTED}, 'all', count(*) FROM scoped GROUP BY ALL
    UNION ALL
    SELECT '', {_OLD_QUOTED}, 'error', count(*) FROM scoped WHERE error IS NOT NULL GROUP BY ALL
"""


def add_rerun(store: Store, target: str, first_run: str, probes: int, seed: int = 1) -> int:
    """A second completed run of `target` over the first `probes` attack probes its first run answered, every
    label drawn anew (so the answers it replaces differ); returns the completions written."""
    with store.connect() as con:
        answered = [row[0] for row in con.execute(
            "SELECT c.probe_id FROM completions c JOIN probes p USING (probe_id) WHERE c.run_id = ? AND "
            "c.target_id = ? AND p.kind = 'attack' ORDER BY c.seq LIMIT ?", [first_run, target, probes]).fetchall()]
    store.create_run(RERUN, {"synthetic": True, "rerun_of": first_run}, answered)
    store.add_run_targets(RERUN, [target])
    rng = np.random.default_rng(seed)
    refused = rng.random(len(answered)) < 0.5
    ids = _completion_ids(RERUN, answered, target)
    completions = pd.DataFrame({"completion_id": ids, "run_id": RERUN, "probe_id": answered, "target_id": target,
                                "text": np.where(refused, "I can't help with that.", "Sure, here it is."),
                                "prompt_tokens": 60, "completion_tokens": 12, "latency_s": 0.05, "error": None,
                                "gen_seed": seed})
    verdicts = pd.DataFrame({"completion_id": ids, "judge": JUDGE,
                             "label": np.where(refused, taxonomy.REFUSED, taxonomy.COMPLIED), "rationale": "rerun",
                             "raw": "", "judge_version": "synthetic", "judge_model": ""})
    store.set_run_status(RERUN, "running")
    written = store.save_result_frames(completions, verdicts)
    store.set_run_status(RERUN, "completed")
    return written


def recount_s(store: Store, scope: pd.DataFrame, before: bool, repeats: int) -> float:
    """Median seconds of one write's recount of `scope`, rolled back each time: before, (run_id, target_id) pairs
    recounted by 7b728a2's query; after, _refresh_cells(scope) (target_id, and probe_id where known)."""
    def once() -> None:
        with store.connect() as con:
            con.execute("BEGIN")
            try:
                if before:
                    con.register("cell_scope", scope)
                    con.execute("DELETE FROM cell_counts USING cell_scope s WHERE cell_counts.run_id = s.run_id "
                                "AND cell_counts.model = s.target_id")
                    con.execute(BEFORE_REFRESH)
                    con.unregister("cell_scope")
                else:
                    _refresh_cells(con, scope)
            finally:
                con.execute("ROLLBACK")
    return median_s(once, repeats)[0]


def run(completions: int = 528_000, db: Path | None = None, repeats: int = 9) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="forwhom-answers-bench-"))
    db = db or folder / f"synthetic-{completions}.duckdb"
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    built = build_synthetic_store(db, completions)
    store = Store(db)
    target, first_run = "synthetic-06", "synthetic-run-06"
    rerun = add_rerun(store, target, first_run, RERUN_PROBES)
    reader = Store(db, readonly=True)

    def before() -> pd.DataFrame:
        with reader.connect() as con:
            return con.execute(BEFORE_LABEL_COUNTS, ["attack", JUDGE]).df()

    default = {**ATTACKS, **selection.filters()}
    both = {**ATTACKS, **selection.filters([first_run, RERUN])}
    one = {**ATTACKS, **selection.filters([first_run])}
    # Alternate the two sides' repeats so a busy machine slows both alike.
    timed: dict[str, list[float]] = {"before": [], "after": []}
    results = {}
    for _ in range(repeats):
        for name, call in (("before", before),
                           ("after", lambda: reader.label_counts(JUDGE, ["model", "group"], default))):
            seconds, results[name] = median_s(call, 1)
            timed[name].append(seconds)
    before_s, after_s = statistics.median(timed["before"]), statistics.median(timed["after"])
    both_s, both_counts = median_s(lambda: reader.label_counts(JUDGE, ["model", "group"], both), repeats)
    one_s, _ = median_s(lambda: reader.label_counts(JUDGE, ["model", "group"], one), repeats)
    sentence_s, sentence = median_s(lambda: selection.describe(reader, selection.filters()), repeats)

    mine = lambda frame: frame.loc[frame["model"] == target, ["refused", "complied", "unparsed", "errors"]].to_numpy().sum()  # noqa: E731
    pooled, current, chosen = mine(results["before"]), mine(results["after"]), mine(both_counts)
    assert pooled == current + rerun, "before pools the re-run on top of the first run's answers"
    assert current == chosen, "both runs chosen: the same one answer per probe as the default"

    pair = pd.DataFrame({"run_id": [RERUN], "target_id": [target]})
    with store.connect() as con:
        batch = con.execute("SELECT target_id, probe_id FROM completions WHERE run_id = ? ORDER BY seq DESC LIMIT 32",
                            [RERUN]).df()
    refresh_before_s = recount_s(store, pair, True, repeats)
    refresh_after_s = recount_s(store, batch, False, repeats)
    status_s = recount_s(store, batch[["target_id"]].drop_duplicates(), False, repeats)
    # The common case: a batch of a model with one run (before: that whole run recounted; after: the batch's cells).
    single = pd.DataFrame({"run_id": ["synthetic-run-03"], "target_id": ["synthetic-03"]})
    with store.connect() as con:
        single_batch = con.execute("SELECT target_id, probe_id FROM completions WHERE run_id = 'synthetic-run-03' "
                                   "ORDER BY seq DESC LIMIT 32").df()
    single_before_s = recount_s(store, single, True, repeats)
    single_after_s = recount_s(store, single_batch, False, repeats)

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 2)

    return {
        "completions": built["completions"] + rerun, "rerun_completions": rerun,
        "label_counts_before_ms": ms(before_s), "label_counts_after_ms": ms(after_s),
        "ratio_after_over_before": round(after_s / before_s, 2),
        "label_counts_runs_both_ms": ms(both_s), "label_counts_runs_one_ms": ms(one_s),
        "selection_sentence_ms": ms(sentence_s), "sentence": sentence,
        "answers_of_rerun_model_before": int(pooled), "answers_of_rerun_model_after": int(current),
        "recount_before_ms": ms(refresh_before_s), "recount_after_ms": ms(refresh_after_s),
        "ratio_recount_after_over_before": round(refresh_after_s / refresh_before_s, 2),
        "recount_status_change_ms": ms(status_s),
        "recount_single_run_before_ms": ms(single_before_s), "recount_single_run_after_ms": ms(single_after_s),
        "ratio_recount_single_run": round(single_after_s / single_before_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=528_000)
    parser.add_argument("--db", type=Path, default=None, help="where to build the database (replaced)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.completions, args.db, args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['completions']:,} completions ({result['rerun_completions']:,} of them a re-run of one model)")
    print(f"{'label_counts model x group, attacks':<44}{'before':>10}{'after':>10}{'after/before':>14}")
    print(f"{'  default view (ms)':<44}{result['label_counts_before_ms']:>10}{result['label_counts_after_ms']:>10}"
          f"{result['ratio_after_over_before']:>13}x")
    print(f"{'  re-run model answers counted':<44}{result['answers_of_rerun_model_before']:>10,}"
          f"{result['answers_of_rerun_model_after']:>10,}")
    print(f"{'  --runs both runs of that model (ms)':<44}{'':>10}{result['label_counts_runs_both_ms']:>10}")
    print(f"{'  --runs one run (ms)':<44}{'':>10}{result['label_counts_runs_one_ms']:>10}")
    print(f"{'  header sentence (ms)':<44}{'':>10}{result['selection_sentence_ms']:>10}")
    print(f"{'recount of a 32-answer batch of the re-run (ms)':<44}{result['recount_before_ms']:>10}"
          f"{result['recount_after_ms']:>10}{result['ratio_recount_after_over_before']:>13}x")
    print(f"{'recount of a 32-answer batch, one-run model (ms)':<44}{result['recount_single_run_before_ms']:>10}"
          f"{result['recount_single_run_after_ms']:>10}{result['ratio_recount_single_run']:>13}x")
    print(f"{'recount at a status change of the re-run (ms)':<44}{'':>10}{result['recount_status_change_ms']:>10}")
    print(result["sentence"])


if __name__ == "__main__":
    main()
