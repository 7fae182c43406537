"""Answers judged per second by the offline judges, side by side in one run: `refusal` (rules), the n-gram
`learned:` judge, the fine-tuned `encoder:` judge and their `average:` (issue 28).

The answers are real ones: the demo database's completions (SmolLM2-135M and Gemma 3 270M answers to the
bundled probes, data/demo/results.jsonl.gz) and, for long jailbreak-style answers, the shipped GPTFuzz training
answers. Each judge gets the same items, in batches of `--batch-size` (the runner's batching), one untimed warm-up
batch first (the encoder loads its base weights then: that load is timed separately). Prints one JSON object.

    OMP_NUM_THREADS=2 .venv/bin/python -m bench.judge_bench [--n 512] [--batch-size 64]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
    args = parser.parse_args(argv)
    from core.judges import resolve_judge
    from core.judges.encoder import read_encoder

    started = time.perf_counter()
    judges = {"refusal": resolve_judge("refusal")}
    partner = read_encoder(ROOT / ENCODER)[0]["partner"]["spec"]
    judges["n-gram"] = resolve_judge(f"learned:{partner}")
    load = time.perf_counter()
    judges["encoder"] = resolve_judge(f"encoder:{ENCODER}")
    encoder_load = time.perf_counter() - load
    judges["average"] = resolve_judge(f"average:{ENCODER}")
    sets = {"demo answers": demo_items(args.n), "GPTFuzz answers": gptfuzz_items(args.n)}
    out = {"threads": int(os.environ.get("OMP_NUM_THREADS", "0") or 0), "cores": os.cpu_count(),
           "load_before": os.getloadavg(), "encoder_load_s": round(encoder_load, 2), "batch_size": args.batch_size,
           "sets": {}}
    for set_name, items in sets.items():
        rows = {}
        for name, judge in judges.items():
            judge.judge(items[:args.batch_size])  # warm-up
            begin = time.perf_counter()
            for start in range(0, len(items), args.batch_size):
                judge.judge(items[start:start + args.batch_size])
            seconds = time.perf_counter() - begin
            rows[name] = {"answers": len(items), "seconds": round(seconds, 3),
                          "answers_per_s": round(len(items) / seconds, 1)}
        out["sets"][set_name] = rows
    out["load_after"] = os.getloadavg()
    out["total_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
