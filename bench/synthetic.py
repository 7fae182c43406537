"""A large synthetic audit database, built through the Store's public API, for timing the dashboard.

MiJaBench-Align holds 528,000 completions; `build_synthetic_store(path, 528_000)` makes a database of
that size in well under a minute: probes follow the bundled set's matched design (every group answers
the same scenario x strategy slots, so drill-down counterfactuals exist), each model gets one run over
every probe, and labels are drawn from per-model, per-group and per-strategy refusal rates, so the
heatmaps show structure. Rows go in as DataFrames, one model per transaction.

    .venv/bin/python -m bench.synthetic /tmp/big.duckdb --completions 528000
"""
from __future__ import annotations

import argparse
import hashlib
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from core.vocab import taxonomy
from core.probes.schema import Probe
from core.store import Store

REFUSALS = ("I can't help with that request.", "I'm sorry, but I won't write that.",
            "I cannot create content that demeans a group of people.")
COMPLIANCE = "Sure. Here is the speech you asked for, in the voice of the character: "


def synthetic_probes(n_probes: int, seed: int = 0) -> list[Probe]:
    """n_probes probes in matched slots: for each (language, strategy) slot, one probe per group."""
    cells = [(language, strategy) for language in taxonomy.LANGUAGES for strategy in taxonomy.STRATEGIES]
    per_slot = sum(len(taxonomy.GROUPS_BY_LANGUAGE[language]) for language, _ in cells)
    slots = math.ceil(n_probes / per_slot)
    probes: list[Probe] = []
    for slot in range(slots):
        category = taxonomy.SCENARIO_CATEGORIES[slot % len(taxonomy.SCENARIO_CATEGORIES)]
        scenario = f"Synthetic scenario {slot} ({category}, seed {seed})."
        for language, strategy in cells:
            kind = "control" if strategy == taxonomy.CONTROL else "attack"
            for group in taxonomy.GROUPS_BY_LANGUAGE[language]:
                seed_text = f"synthetic statement {slot % 7} about {group}"
                prompt = (f"[{strategy}] {scenario} Write about {taxonomy.group_name(group, language)}, "
                          f"building on: {seed_text}.")
                key = f"{seed}\x1f{language}\x1f{group}\x1f{strategy}\x1f{slot}"
                probes.append(Probe(f"syn-{hashlib.sha1(key.encode()).hexdigest()[:16]}", language, group,
                                    seed_text, category, scenario, strategy, prompt, kind, "custom"))
    return probes[:n_probes]


def _completion_ids(run_id: str, probe_ids: list[str], target_id: str) -> list[str]:
    """completion_id_for() over many probes (same key layout), without a record object per row."""
    prefix = f"{run_id}\x1f"
    suffix = f"\x1f{target_id}"
    return [hashlib.sha1((prefix + pid + suffix).encode("utf-8")).hexdigest()[:20] for pid in probe_ids]


def build_synthetic_store(path: str | Path, n_completions: int, models: int = 12, seed: int = 0) -> dict:
    """Create (or extend) the database at `path` with about n_completions judged completions.

    Returns "seconds" (everything, making the rows included) and "store_seconds" (time inside Store calls:
    what importing rows that already exist costs, the figure to compare with writing them elsewhere).
    """
    started = time.perf_counter()
    in_store = 0.0

    def stored(call, *args, **kwargs):
        nonlocal in_store
        began = time.perf_counter()
        result = call(*args, **kwargs)
        in_store += time.perf_counter() - began
        return result

    store = stored(Store, path)
    probes = synthetic_probes(math.ceil(n_completions / models), seed)
    stored(store.add_probes, probes)
    frame = pd.DataFrame({"probe_id": [p.probe_id for p in probes], "group": [p.group for p in probes],
                          "strategy": [p.strategy for p in probes]})
    rng = np.random.default_rng(seed)
    groups = sorted(taxonomy.GROUPS)
    group_effect = dict(zip(groups, rng.normal(0.0, 0.12, len(groups))))
    strategy_effect = dict(zip(taxonomy.STRATEGIES, (0.05, -0.15, -0.05, 0.0, -0.6)))
    written = 0
    for index in range(models):
        if written >= n_completions:
            break
        target_id = f"synthetic-{index + 1:02d}"
        run_id = f"synthetic-run-{index + 1:02d}"
        count = min(len(probes), n_completions - written)
        rows = frame.iloc[:count]
        stored(store.save_target, target_id, "local", f"synthetic/{target_id}", family="synthetic",
               size_b=round(0.1 * 2 ** (index / 2), 2))
        if stored(store.run, run_id) is None:
            stored(store.create_run, run_id, {"synthetic": True, "seed": seed, "targets": [target_id],
                                              "judges": ["refusal"]}, list(rows["probe_id"]))
            stored(store.add_run_targets, run_id, [target_id])
        p_refuse = (0.35 + 0.5 * index / max(models - 1, 1) + rows["group"].map(group_effect)
                    + rows["strategy"].map(strategy_effect)).clip(0.02, 0.98).to_numpy()
        refused = rng.random(count) < p_refuse
        errored = rng.random(count) < 0.002
        numbers = pd.Series(np.arange(count)).astype(str)
        text = pd.Series(np.where(refused, np.array(REFUSALS)[rng.integers(0, len(REFUSALS), count)],
                                  COMPLIANCE), dtype=object) + " (#" + numbers + ")"
        completion_ids = _completion_ids(run_id, list(rows["probe_id"]), target_id)
        completions = pd.DataFrame({
            "completion_id": completion_ids, "run_id": run_id, "probe_id": rows["probe_id"].to_numpy(),
            "target_id": target_id, "text": text.where(~errored, None),
            "prompt_tokens": 60, "completion_tokens": rng.integers(8, 64, count),
            "latency_s": 0.05, "error": np.where(errored, "synthetic timeout", None), "gen_seed": seed,
        })
        keep = ~errored
        verdicts = pd.DataFrame({
            "completion_id": np.array(completion_ids)[keep], "judge": "refusal",
            "label": np.where(refused[keep], taxonomy.REFUSED, taxonomy.COMPLIED),
            "rationale": "synthetic", "raw": "", "judge_version": "synthetic", "judge_model": "",
        })
        written += stored(store.save_result_frames, completions, verdicts)
        stored(store.set_run_status, run_id, "completed")
    return {"path": str(path), "probes": len(probes), "completions": written,
            "seconds": round(time.perf_counter() - started, 1), "store_seconds": round(in_store, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--completions", type=int, default=528_000)
    parser.add_argument("--models", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(build_synthetic_store(args.path, args.completions, args.models, args.seed))


if __name__ == "__main__":
    main()
