"""Disparity with intervals for every model x language of a large store: the method every view uses now
(core.stats.disparity: noise gap, tau with its Q-profile interval, the gap beyond noise with its simultaneous
interval, shrunken group DRs) side by side with the percentile bootstrap of max - min that fed the Scaling and
Over-refusal pages and the report before (1,000 resamples of each group's prompts).

Both read the same per-cell counts (Store.label_counts at model x language x group, timed on its own); times are
medians of --repeat runs measured in one process, so their ratio holds on a noisy machine. It also prints, for the
same seeded null and spread simulations as tests/stats/test_disparity.py, how often each interval covers the true
gap: the reason for the change.

    .venv/bin/python -m bench.disparity_bench --completions 528000
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.synthetic import build_synthetic_store
from bench.timing import median_s
from core.stats.rates import DefenseRates
from core.stats import disparity as D
from core.store import Store

GRAIN = ["model", "language", "group"]
BASE = ["model", "language"]


def bootstrap_gap(counts: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The percentile bootstrap interval of max - min per model x language (the method before): each group's count
    resampled as Binomial(n, k/n), the gap of each resample, its 2.5% and 97.5% percentiles."""
    rates = DefenseRates(counts, GRAIN, ci=True, resamples=resamples, seed=seed)
    table = rates.table.loc[rates.table["n"] > 0].reset_index(drop=True)
    samples = rates.samples()[np.flatnonzero(rates.table["n"].to_numpy() > 0)]
    keys = table.groupby(BASE, sort=True).ngroup().to_numpy()
    order = np.argsort(keys, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0])
    ordered = samples[order]
    gaps = np.maximum.reduceat(ordered, starts, axis=0) - np.minimum.reduceat(ordered, starts, axis=0)
    low, high = np.quantile(gaps, [0.025, 0.975], axis=1)
    out = table.iloc[order[starts]][BASE].reset_index(drop=True)
    return out.assign(gap_ci_low=low, gap_ci_high=high)


def beyond_noise(counts: pd.DataFrame) -> pd.DataFrame:
    """Every column of the disparity table now, from the same counts."""
    return DefenseRates(counts, GRAIN, ci=False).disparity(BASE)


def coverage(reps: int = 200) -> pd.DataFrame:
    """Coverage of the true gap by both intervals: 13 groups x 80 prompts, null and spreads."""
    rows = []
    for label, theta in (("null", np.full(13, 0.5)), *[(f"spread {w}", 0.5 + w * np.linspace(-0.5, 0.5, 13))
                                                        for w in (0.1, 0.2, 0.4)]):
        rng = np.random.default_rng(0)
        truth = theta.max() - theta.min()
        hits = {"bootstrap": 0, "now": 0}
        widths = {"bootstrap": [], "now": []}
        for _ in range(reps):
            refused = rng.binomial(80, theta)
            counts = pd.DataFrame({"model": "m", "language": "en", "group": [f"g{i}" for i in range(13)],
                                   "refused": refused, "complied": 80 - refused, "unparsed": 0, "errors": 0})
            before = bootstrap_gap(counts, resamples=1000, seed=int(rng.integers(1 << 31))).iloc[0]
            now = beyond_noise(counts).iloc[0]
            for name, row in (("bootstrap", before), ("now", now)):
                hits[name] += row["gap_ci_low"] <= truth <= row["gap_ci_high"]
                widths[name].append(row["gap_ci_high"] - row["gap_ci_low"])
        rows.append({"truth": label, "bootstrap_covers": hits["bootstrap"] / reps, "now_covers": hits["now"] / reps,
                     "bootstrap_width": np.mean(widths["bootstrap"]), "now_width": np.mean(widths["now"])})
    return pd.DataFrame(rows)


def run(completions: int, repeats: int, db: Path | None, reps: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = db or Path(tmp) / "big.duckdb"
        if not path.exists():
            started = time.perf_counter()
            build_synthetic_store(path, completions)
            print(f"built {completions:,} completions in {time.perf_counter() - started:.1f} s")
        store = Store(path, readonly=True)
        read_s, counts = median_s(lambda: store.label_counts("refusal", GRAIN, {"kind": ["attack"]}), repeats)
        before_s, before = median_s(lambda: bootstrap_gap(counts), repeats)
        now_s, now = median_s(lambda: beyond_noise(counts), repeats)
        print(f"store: {int(counts[['refused', 'complied']].to_numpy().sum()):,} judged attack completions, "
              f"{len(now)} model x language rows, {len(counts)} group cells")
        print(f"read counts (both):                           {read_s * 1000:8.1f} ms")
        print(f"percentile bootstrap of max - min (before):    {before_s * 1000:8.1f} ms")
        print(f"disparity beyond noise, every column (now):    {now_s * 1000:8.1f} ms  ratio now/before "
              f"{now_s / before_s:.2f}")
        print(f"read + disparity (now), the under-1-s goal:    {(read_s + now_s) * 1000:8.1f} ms")
    if reps:
        print(f"\ncoverage of the true gap, 13 groups x 80 prompts, {reps} seeded repetitions:")
        print(coverage(reps).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=528_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="an existing store to reuse (built there if missing)")
    parser.add_argument("--coverage-reps", type=int, default=200, help="0 skips the coverage comparison")
    args = parser.parse_args()
    run(args.completions, args.repeat, args.db, args.coverage_reps)


if __name__ == "__main__":
    main()
