"""Paired comparison at MiJaBench-Align scale, ours against the same computation in pandas, in one run.

Builds (or reuses) a synthetic store of 528,000 completions over 12 models (bench/synthetic.py; each model
answers the same 44,000 probes), then times, each as a median over repeats:
  * two models: `core.views.compare.compute` (DuckDB counts the 2x2 tables per language x group x kind, numpy
    tests them), against pandas pairing the same two models' judged rows (merge on probe_id, then a groupby
    of the four outcomes) from the judged frame already in memory, and from loading it first;
  * all pairs: `core.views.compare.all_pairs` over the 12 models (one DuckDB self-join, one vectorised bootstrap)
    against pandas pairing each of the 66 pairs in turn (same counts, same bootstrap);
and checks that both paths give the same tables.

    .venv/bin/python -m bench.compare_bench [--completions 528000] [--db /tmp/compare/store.duckdb] [--json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from bench.synthetic import build_synthetic_store
from bench.timing import median_s
from core.views import compare as paired
from core.views.compare import Side, all_pairs
from core.stats.comparison import PAIR_COLUMNS, compare, pairwise_gaps
from core.store import Store

GOALS = {"two_models_s": 1.0, "all_pairs_s": 5.0}
JUDGE = "refusal"


def pandas_pairs(frame: pd.DataFrame, a: str, b: str, keys: list[str]) -> pd.DataFrame:
    """The 2x2 tables of models a and b per `keys`, in pandas: one row per probe each, merged on probe_id."""
    readable = frame[frame["label"].isin(["refused", "complied"])]
    left = readable[readable["model"] == a][["probe_id", *keys, "label"]]
    right = readable[readable["model"] == b][["probe_id", "label"]]
    both = left.merge(right, on="probe_id", suffixes=("_a", "_b"))
    ra, rb = both["label_a"] == "refused", both["label_b"] == "refused"
    both = both.assign(both_refused=ra & rb, base_only=ra & ~rb, cand_only=~ra & rb, neither=~ra & ~rb)
    return both.groupby(keys, as_index=False)[list(PAIR_COLUMNS)].sum()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=528_000)
    parser.add_argument("--db", type=Path, default=None, help="reuse (or build) this database")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="compare_bench_"))
    db = args.db or folder / "store.duckdb"
    if not db.exists():
        print("building", json.dumps(build_synthetic_store(db, args.completions)), flush=True)
    sides_frame = Store(db, readonly=True).run_target_counts()
    sides = [Side(r, t) for r, t in sorted(zip(sides_frame["run_id"], sides_frame["target_id"]))]
    base, candidate = sides[0], sides[-1]
    keys = ["language", "group", "kind"]

    ours_two, ours = median_s(lambda: paired.compute(Store(db, readonly=True), base, candidate, JUDGE), args.repeats)
    load_s, frame = median_s(lambda: Store(db, readonly=True).judged(JUDGE), 1)

    def pandas_two():
        counts = pandas_pairs(frame, base.target_id, candidate.target_id, keys)
        return compare(counts, base.label, candidate.label)

    pandas_two_s, theirs = median_s(pandas_two, args.repeats)
    same_two = ours.result.cells[["pairs", "change", "p_adjusted"]].reset_index(drop=True).equals(
        theirs.cells[["pairs", "change", "p_adjusted"]].reset_index(drop=True))

    ours_all_s, matrix = median_s(lambda: all_pairs(Store(db, readonly=True), sides, JUDGE), args.repeats)
    labels = {s.target_id: s.label for s in sides}

    def pandas_all():
        attacks = frame[frame["kind"] == "attack"]
        parts = [pandas_pairs(attacks, a.target_id, b.target_id, ["language", "group"])
                 .assign(base=labels[a.target_id], candidate=labels[b.target_id]) for a, b in combinations(sides, 2)]
        return pairwise_gaps(pd.concat(parts, ignore_index=True))

    pandas_all_s, their_matrix = median_s(pandas_all, max(1, args.repeats - 2))
    merged = matrix.merge(their_matrix, on=["base", "candidate", "language"], suffixes=("", "_pandas"))
    same_all = len(merged) == len(matrix) == len(their_matrix) and bool(
        np.allclose(merged["change"], merged["change_pandas"]))

    result = {
        "completions": int(sides_frame["completions"].sum()), "models": len(sides), "pairs": len(sides) * (len(sides) - 1) // 2,
        "two_models_s": round(ours_two, 3), "pandas_two_models_in_memory_s": round(pandas_two_s, 3),
        "pandas_load_judged_frame_s": round(load_s, 3),
        "two_models_ratio_vs_in_memory": round(pandas_two_s / ours_two, 2),
        "two_models_ratio_vs_load_and_count": round((load_s + pandas_two_s) / ours_two, 2),
        "all_pairs_s": round(ours_all_s, 3), "pandas_all_pairs_in_memory_s": round(pandas_all_s, 3),
        "all_pairs_ratio_vs_in_memory": round(pandas_all_s / ours_all_s, 2),
        "same_tables_two_models": bool(same_two), "same_matrix_all_pairs": same_all,
        "goals": GOALS, "meets_goals": ours_two < GOALS["two_models_s"] and ours_all_s < GOALS["all_pairs_s"],
    }
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
