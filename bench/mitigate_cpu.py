"""The default mitigation on CPU, timed end to end: pairs from the demo run -> trained DPO adapter.

Issue 17's acceptance: `python -m core mitigate --from-run demo-smollm2 --out DIR` with every training option
at its default (SmolLM2-135M-Instruct, LoRA r=8, the default pairs per group, held-out groups, epochs,
max length) finishes in under 30 minutes on 2 CPU cores. This restores the committed demo results into a
temporary database, runs the command itself (a fresh interpreter, as a user would), and prints the machine
(cores, CPU, load average before and after), the minutes, the steps and the seconds per step.

    OMP_NUM_THREADS=2 nice .venv/bin/python -m bench.mitigate_cpu [--json] [--keep DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_MINUTES = 30.0


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    return {"cores": os.cpu_count(), "cpu": model, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", default=None, help="write the adapter here (default: a temporary directory)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mitigate-bench-"))
    db, out = work / "demo.duckdb", Path(args.keep or work / "adapter")
    python = sys.executable
    subprocess.run([python, "-m", "core", "restore", str(ROOT / "data/demo/results.jsonl.gz"), "--db", str(db)],
                   check=True, cwd=ROOT, capture_output=True)
    before = machine()
    began = time.perf_counter()
    done = subprocess.run([python, "-m", "core", "mitigate", "--from-run", "demo-smollm2", "--out", str(out),
                           "--db", str(db), "--json"], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    after = machine()
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    result = json.loads(done.stdout)
    figures = {"machine": before, "load_average_after": after["load_average"], "minutes": round(seconds / 60, 2),
               "goal_minutes": GOAL_MINUTES, "within_goal": seconds / 60 < GOAL_MINUTES, "steps": result["steps"],
               "pairs": result["pairs"], "train_seconds": result["train_seconds"],
               "seconds_per_step": round(result["train_seconds"] / max(result["steps"], 1), 2),
               "trained_groups": result["trained_groups"], "held_out_groups": result["held_out_groups"],
               "chosen_sources": result["chosen_sources"], "out": str(out)}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"machine: {before['cores']} cores ({before['cpu']}), OMP_NUM_THREADS={before['omp_num_threads']}, "
              f"load average {before['load_average']} before, {after['load_average']} after")
        print(f"default mitigation (pairs -> adapter): {figures['minutes']:.1f} min end to end "
              f"(goal < {GOAL_MINUTES:.0f}): {figures['pairs']} pairs, {figures['steps']} steps, "
              f"{figures['seconds_per_step']:.1f} s/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
