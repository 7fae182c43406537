"""MiJaBench-Align at full size: import time, bootstrap CI time, and the paper's heatmaps recovered.

Writes (or reuses) a synthetic Align file of 12 models x 44,000 prompts (528,000 pairs, both languages,
bench/synthetic_align.py), imports it into a fresh database with `python -m core import-align`, then
times, on the stored results:
  * loading the judged frame (Store.judged),
  * DR + 95% bootstrap CIs + deviations with joint CIs + disparity for several groupings (all cells),
  * side by side on the same cells (one model), the Binomial-count bootstrap against resampling every
    prompt's outcome one by one (the textbook way), printed as a ratio;
and checks that every recovered deviation lies within 0.006 of the published cell (en and pt).

    .venv/bin/python -m bench.align_scale --file /tmp/align_full.parquet --db /tmp/align_full.duckdb
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.synthetic_align import write_synthetic_align
from core.stats.rates import DefenseRates
from core.files.reference import paper_heatmap, paper_models
from core.store import Store

ROOT = Path(__file__).resolve().parent.parent
GROUPINGS = (["model", "language", "group"], ["model", "language", "group", "strategy"],
             ["model", "language", "group", "strategy", "scenario_category"])


def _timed(func, repeat: int = 3):
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - started)
    return best, value


def naive_bootstrap(outcomes_by_cell: list[np.ndarray], resamples: int, seed: int = 0) -> np.ndarray:
    """Resample every cell's outcomes one by one, 'resamples' times: the reference the Binomial draw replaces."""
    rng = np.random.default_rng(seed)
    bounds = []
    for outcomes in outcomes_by_cell:
        means = rng.choice(outcomes, size=(resamples, len(outcomes)), replace=True).mean(axis=1)
        bounds.append(np.quantile(means, [0.025, 0.975]))
    return np.array(bounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", type=Path, default=Path("/tmp/align_full.parquet"))
    parser.add_argument("--db", type=Path, default=Path("/tmp/align_full.duckdb"))
    parser.add_argument("--prompts-per-group", type=int, default=2000)
    args = parser.parse_args()
    if not args.file.exists():
        print("writing", json.dumps(write_synthetic_align(args.file, ["en", "pt"], args.prompts_per_group)))
    for leftover in (args.db, args.db.with_name(args.db.name + ".wal")):
        leftover.unlink(missing_ok=True)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "core", "import-align", str(args.file), "--db", str(args.db),
                           "--json", "--quiet"], capture_output=True, text=True, cwd=ROOT)
    import_s = time.perf_counter() - started
    if done.returncode:
        sys.exit(done.stderr)
    imported = json.loads(done.stdout)
    print(f"import-align: {imported['rows']:,} prompts, {imported['completions_added']:,} completions "
          f"in {import_s:.1f} s ({imported['completions_added'] / import_s:,.0f} completions/s)")

    store = Store(args.db, readonly=True)
    load_s, frame = _timed(lambda: store.judged("align:qwe235", {"kind": "attack"}), repeat=1)
    print(f"Store.judged: {len(frame):,} rows in {load_s:.2f} s")
    for by in GROUPINGS:
        seconds, (cells, dev) = _timed(lambda: (lambda r: (len(r.table), r.deviations()))(DefenseRates(frame, by)))
        with_disparity, _ = _timed(lambda: DefenseRates(frame, by).disparity())
        print(f"bootstrap CIs + deviations, {cells:>6,} cells ({', '.join(by)}): {seconds:.2f} s; "
              f"CIs + disparity: {with_disparity:.2f} s")

    one = frame.loc[frame["model"] == frame["model"].iloc[0]]
    cells = [(g == "refused").to_numpy(dtype=float) for _, g in one.groupby(["language", "group"])["label"]]
    naive_s, naive = _timed(lambda: naive_bootstrap(cells, 1000), repeat=1)
    fast_s, fast = _timed(lambda: DefenseRates(one, ["language", "group"]).table[["ci_low", "ci_high"]].to_numpy())
    print(f"one model, {len(cells)} cells, {len(one):,} prompts: per-prompt resampling {naive_s:.2f} s, "
          f"Binomial counts {fast_s:.3f} s, ratio {naive_s / fast_s:,.0f}x; "
          f"largest CI bound difference {np.abs(naive - fast).max():.4f}")

    dev = DefenseRates(frame, ["model", "language", "group"]).deviations()
    names = dict(zip(paper_models()["align_id"], paper_models()["model"]))
    for language in ("en", "pt"):
        ours = dev.loc[dev["language"] == language].assign(model=lambda f: f["model"].map(names))
        merged = ours.merge(paper_heatmap(language), on=["model", "group"], suffixes=("", "_paper"))
        worst = (merged["deviation"] - merged["deviation_paper"]).abs().max()
        width = (merged["dev_ci_high"] - merged["dev_ci_low"])
        print(f"{language}: {len(merged)} cells, max |deviation - published| = {worst:.4f} (limit 0.006); "
              f"deviation CI width mean {width.mean():.4f}, max {width.max():.4f}; "
              f"{(merged['dev_ci_low'] <= 0).mul(merged['dev_ci_high'] >= 0).mean():.0%} of CIs cross zero; "
              f"{int(merged['significant'].sum())} cells significant after Holm")


if __name__ == "__main__":
    main()
