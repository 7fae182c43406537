"""The matched design's statistics at scale: `matched_summary` (claim bootstrap with 1,000 resamples, gap CIs,
Cochran's Q, McNemar pairs) on about 100,000 counterfactual completions, and `decompose` on one model x
language, each as a median over repeats.

The synthetic set: 8 models x (English, 13 groups; Portuguese, 9 groups), 200 claims x 3 strategies per
language, one completion per block and group (105,600 rows); refusals from a group effect plus a claim
random effect, so the statistics have something to find.

    .venv/bin/python -m bench.matched_scale [--models 8] [--claims 200] [--resamples 1000] [--json]
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from scipy.special import expit

from bench.timing import median_s
from core.stats.matched import decompose, matched_summary

LANGUAGES = {"en": 13, "pt": 9}


def synthetic(models: int, claims: int, strategies: int = 3, seed: int = 0) -> pd.DataFrame:
    """One row per completion of a counterfactual set: every claim x strategy asked about every group."""
    rng = np.random.default_rng(seed)
    frames = []
    for m in range(models):
        for language, groups in LANGUAGES.items():
            claim = np.repeat(np.arange(claims), strategies * groups)
            strategy = np.tile(np.repeat(np.arange(strategies), groups), claims)
            group = np.tile(np.arange(groups), claims * strategies)
            logit = rng.normal(0, 0.4, groups)[group] + rng.normal(0.3, 1.2, claims)[claim]
            frames.append(pd.DataFrame({
                "model": f"model-{m}", "language": language, "group": [f"g{g:02d}" for g in group],
                "claim_id": [f"{language}-c{c}" for c in claim],
                "counterfactual_id": [f"{language}-c{c}-s{s}" for c, s in zip(claim, strategy)],
                "refused": rng.random(len(claim)) < expit(logit)}))
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--claims", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frame = synthetic(args.models, args.claims)
    summary_s, summary = median_s(lambda: matched_summary(frame, resamples=args.resamples), args.repeats)
    one = frame[(frame["model"] == "model-0") & (frame["language"] == "en")]
    decompose_s, _ = median_s(lambda: decompose(one), args.repeats)
    figures = {"rows": len(frame), "cells": int(frame.groupby(["model", "language"]).ngroups),
               "resamples": args.resamples, "matched_summary_s": round(summary_s, 3),
               "decompose_rows": len(one), "decompose_claims": int(one["claim_id"].nunique()),
               "decompose_s": round(decompose_s, 3), "pairs": len(summary.pairs)}
    if args.json:
        print(json.dumps(figures))
    else:
        for name, value in figures.items():
            print(f"{name:>20}: {value}")


if __name__ == "__main__":
    main()
