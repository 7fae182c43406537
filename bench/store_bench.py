"""The store at MiJaBench-Align scale, each query against the same computation in pandas, in one run.

Builds a synthetic store (bench/synthetic.py, 528,000 completions over 12 models by default), then times:
  * import: writing the completions and verdicts into DuckDB through the Store (time inside Store calls;
    the rows are made in memory first), against pandas writing the same judged rows (with texts) to one
    parquet file, the store a pandas user would keep;
  * heatmap: the model x group table of refusal counts (attack probes), Store.label_counts against a
    pandas groupby over the judged frame already in memory, and against loading that frame first (what
    a dashboard without SQL aggregation pays on every new filter);
  * drill-down: one 50-row page with filters (model, language, group, verdict) and the matching total,
    Store.completion_page against filter + sort + head(50) on the in-memory frame;
  * bootstrap: every 95% CI the heatmaps page shows (model x language x group with deviations, language x
    group, and each model's strategy x group and scenario category x group tables), DefenseRates over the
    store's counts against the textbook bootstrap that resamples each cell's prompts (numpy, per cell).
Query timings are medians over repeats, each opening the file as the app does.

    .venv/bin/python -m bench.store_bench [--completions 528000] [--db /tmp/issue7/store.duckdb] [--json]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench.synthetic import build_synthetic_store
from core.vocab import taxonomy
from core.stats.rates import CELL_GRAIN, DefenseRates
from core.store import Store

GOALS = {"import_s": 20.0, "heatmap_ms": 50.0, "drilldown_ms": 50.0, "bootstrap_s": 1.0}
JUDGE = "refusal"
ATTACKS = {"kind": ["attack"]}
# The tables the heatmaps page draws: (grouping, with deviations, one model at a time).
HEATMAP_TABLES: tuple[tuple[tuple[str, ...], bool, bool], ...] = (
    (("model", "language", "group"), True, False),
    (("language", "group"), False, False),
    (("model", "language", "strategy", "group"), True, True),
    (("model", "language", "scenario_category", "group"), True, True),
)


def median_s(func: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall seconds of `repeats` calls, and the last call's result."""
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def all_rates(store: Store, models: list[str]) -> int:
    """Every CI the heatmaps page shows, from counts the store aggregates; returns the number of cells.

    One query at the finest grain the tables use (as ui/cached.py does); DefenseRates sums up from it.
    """
    counts = store.label_counts(JUDGE, CELL_GRAIN, ATTACKS)
    cells = 0
    for by, deviations, per_model in HEATMAP_TABLES:
        for model in models if per_model else [None]:
            part = counts[counts["model"] == model] if model else counts
            rates = DefenseRates(part, list(by))
            table = rates.deviations([c for c in ("model", "language") if c in by]) if deviations else rates.table
            cells += len(table)
    return cells


def textbook_rates(frame: pd.DataFrame, models: list[str], resamples: int = 1000, seed: int = 0) -> int:
    """The same CIs by resampling each cell's outcomes with replacement (pandas groupby, numpy draws)."""
    rng = np.random.default_rng(seed)
    judged = frame[frame["label"].isin([taxonomy.REFUSED, taxonomy.COMPLIED])]
    cells = 0
    for by, deviations, per_model in HEATMAP_TABLES:
        for model in models if per_model else [None]:
            part = judged[judged["model"] == model] if model else judged
            baseline = [c for c in ("model", "language") if c in by]
            for _, base in (part.groupby(baseline, observed=True) if deviations else [(None, part)]):
                outcomes = {key: (cell["label"] == taxonomy.REFUSED).to_numpy()
                            for key, cell in base.groupby(list(by), observed=True)}
                drawn = {key: values[rng.integers(0, len(values), (resamples, len(values)))]
                         for key, values in outcomes.items()}
                if deviations:  # the baseline rebuilt from the same resamples, as DefenseRates does
                    total = sum(d.sum(axis=1) for d in drawn.values()) / sum(len(v) for v in outcomes.values())
                for key, draws in drawn.items():
                    samples = draws.mean(axis=1) - (total if deviations else 0.0)
                    np.quantile(samples, [0.025, 0.975])
                    cells += 1
    return cells


def run(completions: int = 528_000, db: Path | None = None, repeats: int = 7) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="forwhom-store-bench-"))
    db = db or folder / f"synthetic-{completions}.duckdb"
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    built = build_synthetic_store(db, completions)
    import_s = built["store_seconds"]  # the rows are made in memory first (not timed), as for pandas
    store = Store(db, readonly=True)
    models = sorted(store.summary()["models"])

    load_s, frame = median_s(lambda: store.judged(JUDGE, ATTACKS, with_text=True), 1)
    everything = store.judged(JUDGE, with_text=True)
    started = time.perf_counter()
    everything.to_parquet(folder / "judged.parquet")
    pandas_import_s = time.perf_counter() - started
    del everything

    def open_close() -> None:
        with store.connect():
            pass

    # Every store call opens the file and closes it (so other processes can write in between); DuckDB
    # builds a fresh instance each time (its catalog of built-in functions: the same for an empty file).
    open_s, _ = median_s(open_close, repeats)
    heatmap_s, counts = median_s(lambda: store.label_counts(JUDGE, ["model", "group"], ATTACKS), repeats)
    labels = frame["label"]
    pandas_heatmap_s, grouped = median_s(lambda: frame.assign(
        refused=labels == taxonomy.REFUSED, complied=labels == taxonomy.COMPLIED,
        unparsed=labels == taxonomy.UNPARSED, errors=frame["error"].notna(),
    ).groupby(["model", "group"], observed=True)[["refused", "complied", "unparsed", "errors"]].sum(), repeats)
    assert counts["refused"].sum() == grouped["refused"].sum(), "SQL and pandas heatmaps disagree"

    model, group = models[len(models) // 2], "women"
    filters = {"model": [model], "language": ["en"], "group": [group], "kind": ["attack"]}
    drill_s, (page, total) = median_s(lambda: store.completion_page(JUDGE, filters, ["refused"], 50, 0), repeats)

    def pandas_page() -> tuple[pd.DataFrame, int]:
        hit = frame[(frame["model"] == model) & (frame["language"] == "en") & (frame["group"] == group)
                    & (frame["kind"] == "attack") & (frame["label"] == taxonomy.REFUSED)]
        rows = hit.sort_values(["model", "language", "group", "strategy", "completion_id"]).head(50)
        return rows.assign(preview=rows["completion"].str[:160]), len(hit)

    pandas_drill_s, (_, pandas_total) = median_s(pandas_page, repeats)
    assert total == pandas_total and len(page) == min(50, total), "SQL and pandas drill-downs disagree"

    boot_s, cells = median_s(lambda: all_rates(store, models), 3)
    pandas_boot_s, pandas_cells = median_s(lambda: textbook_rates(frame, models), 1)

    def ratio(slow: float, fast: float) -> float:
        return round(slow / fast, 1) if fast > 0 else float("inf")

    return {
        "completions": built["completions"], "models": len(models), "db_mb": round(db.stat().st_size / 2**20),
        "import_s": import_s, "import_with_making_rows_s": built["seconds"],
        "pandas_parquet_write_s": round(pandas_import_s, 2),
        "judged_frame_load_s": round(load_s, 2),
        "open_close_ms": round(open_s * 1000, 1),
        "heatmap_ms": round(heatmap_s * 1000, 1), "pandas_heatmap_ms": round(pandas_heatmap_s * 1000, 1),
        "ratio_heatmap_pandas_in_memory": ratio(pandas_heatmap_s, heatmap_s),
        "ratio_heatmap_pandas_with_load": ratio(load_s + pandas_heatmap_s, heatmap_s),
        "drilldown_ms": round(drill_s * 1000, 1), "pandas_drilldown_ms": round(pandas_drill_s * 1000, 1),
        "ratio_drilldown_pandas_in_memory": ratio(pandas_drill_s, drill_s),
        "bootstrap_s": round(boot_s, 3), "bootstrap_cells": cells,
        "pandas_bootstrap_s": round(pandas_boot_s, 2), "pandas_bootstrap_cells": pandas_cells,
        "ratio_bootstrap": ratio(pandas_boot_s, boot_s),
        "goals": GOALS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=528_000)
    parser.add_argument("--db", type=Path, default=None, help="where to build the database (replaced)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.completions, args.db, args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['completions']:,} completions, {result['models']} models, {result['db_mb']} MB")
    rows = [("import (s)", "import_s", "pandas_parquet_write_s", None),
            ("heatmap model x group (ms)", "heatmap_ms", "pandas_heatmap_ms", "ratio_heatmap_pandas_in_memory"),
            ("drill-down 50 rows (ms)", "drilldown_ms", "pandas_drilldown_ms", "ratio_drilldown_pandas_in_memory"),
            ("all bootstrap CIs (s)", "bootstrap_s", "pandas_bootstrap_s", "ratio_bootstrap")]
    print(f"{'':<30}{'store':>10}{'pandas':>10}{'ratio':>8}{'goal':>8}")
    for name, ours, theirs, ratio in rows:
        shown = f"{result[ratio]:>7}x" if ratio else f"{'':>8}"
        print(f"{name:<30}{result[ours]:>10}{result[theirs]:>10}{shown}{GOALS[ours]:>8}")
    print(f"each store call includes opening and closing the file: {result['open_close_ms']} ms")
    print(f"pandas heatmap including loading the judged frame ({result['judged_frame_load_s']} s): "
          f"{result['ratio_heatmap_pandas_with_load']}x slower than the store")


if __name__ == "__main__":
    main()
