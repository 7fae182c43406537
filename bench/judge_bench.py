"""Answers judged per second by the offline judges, side by side in one run: `refusal` (rules), the n-gram
`learned:` judge, the fine-tuned `encoder:` judge and their `average:`, and the encoder and average judges once
more through the training's own (unfused) forward pass, the reference their inference path must reproduce.

The answers are real ones: the demo database's completions (SmolLM2-135M and Gemma 3 270M answers to the
bundled probes, data/demo/results.jsonl.gz; the Portuguese ones fall back to the rules in the shipped encoder)
and, for long jailbreak-style answers, the shipped GPTFuzz training answers. Each judge gets the same items, in
batches of `--batch-size` (the runner's batching), one untimed warm-up batch first (the encoder loads its base
weights then: that load is timed separately). The judges take turns, `--repeats` passes over each set, and each
judge's best pass counts, so load from other work on a shared machine falls on all of them alike. Besides the
speeds, it prints the inference path's speed-up over the reference and how far their predictions are apart on
the same items (largest difference of calibrated P(refused), share of equal verdicts). Prints one JSON object.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.judge_bench [--n 512] [--batch-size 64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ENCODER = "data/judges/encoder-minilm.safetensors"


def demo_items(n: int):
    from core.judges.base import JudgeItem

    probes, items = {}, []
    with gzip.open(ROOT / "data" / "demo" / "results.jsonl.gz", "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            table, row = record.get("table"), record.get("row") or record
            if table == "probes":
                probes[row["probe_id"]] = row
            elif table == "completions" and row.get("text") is not None and row.get("probe_id") in probes:
                probe = probes[row["probe_id"]]
                items.append(JudgeItem(probe.get("prompt", ""), row["text"], probe.get("language", "en"),
                                       probe.get("kind", "attack")))
            if len(items) >= n:
                break
    return items


def gptfuzz_items(n: int):
    from core.judges.training import TRAINING_SET, load_source

    return [i.judge_item() for i in load_source(TRAINING_SET).items[:n]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="answers per set (default 512)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per judge and set; the best counts")
    args = parser.parse_args(argv)
    import numpy as np

    from core.judges import resolve_judge
    from core.judges.encoder import EncoderJudge, read_encoder

    started = time.perf_counter()
    judges = {"refusal": resolve_judge("refusal")}
    partner = read_encoder(ROOT / ENCODER)[0]["partner"]["spec"]
    judges["n-gram"] = resolve_judge(f"learned:{partner}")
    load = time.perf_counter()
    judges["encoder"] = resolve_judge(f"encoder:{ENCODER}")
    encoder_load = time.perf_counter() - load
    judges["average"] = resolve_judge(f"average:{ENCODER}")
    judges["encoder, reference path"] = EncoderJudge(ROOT / ENCODER, fast=False)
    judges["average, reference path"] = EncoderJudge(ROOT / ENCODER, mode="average", fast=False)
    sets = {"demo answers": demo_items(args.n), "GPTFuzz answers": gptfuzz_items(args.n)}
    out = {"threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "cores": os.cpu_count(),
           "load_before": os.getloadavg(), "encoder_load_s": round(encoder_load, 2), "batch_size": args.batch_size,
           "repeats": args.repeats, "sets": {}}
    for set_name, items in sets.items():
        batches = [items[start:start + args.batch_size] for start in range(0, len(items), args.batch_size)]
        best = {name: math.inf for name in judges}
        verdicts: dict[str, list] = {}
        for name, judge in judges.items():
            judge.judge(batches[0])  # warm-up
        for _ in range(max(1, args.repeats)):
            for name, judge in judges.items():
                begin = time.perf_counter()
                verdicts[name] = [v for batch in batches for v in judge.judge(batch)]
                best[name] = min(best[name], time.perf_counter() - begin)
        rows = {name: {"answers": len(items), "seconds": round(seconds, 3),
                       "answers_per_s": round(len(items) / seconds, 1)} for name, seconds in best.items()}
        for key in ("encoder", "average"):
            fast, reference = judges[key], judges[f"{key}, reference path"]
            p_fast = np.concatenate([fast.probabilities(b) for b in batches])
            p_reference = np.concatenate([reference.probabilities(b) for b in batches])
            same = [a.label == b.label for a, b in zip(verdicts[key], verdicts[f"{key}, reference path"])]
            rows[key]["speedup_over_reference"] = round(best[f"{key}, reference path"] / best[key], 2)
            rows[key]["max_abs_diff_p_refused"] = float(f"{np.max(np.abs(p_fast - p_reference)):.2e}")
            rows[key]["same_verdict_share"] = round(sum(same) / len(same), 4)
        out["sets"][set_name] = rows
    out["load_after"] = os.getloadavg()
    out["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
