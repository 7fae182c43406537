"""Throughput of the `openai` target against a loopback server that takes 100 ms per request.

Sequential requests, then concurrency 32 and 64, measured side by side in one run. The ideal for a
concurrency c is c / latency requests per second (c requests always in flight); the goal is at least
80% of it. The target is driven the way the runner drives it (batches of its `capabilities.run_batch_size`, the next
batch submitted before the previous one is collected), and a last row runs the whole runner at the highest concurrency (store writes and the refusal judge between
batches included), so the cost of storing shows too.

    .venv/bin/python bench/bench_api.py [--latency 0.1] [--waves 8] [--json]

The server runs in its own process so that it does not share the client's interpreter lock.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from core.targets import resolve_target

GOAL = 0.80


def start_server(latency: float) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai_server.py"), "--latency", str(latency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"the fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{int(line.split()[1])}/v1"


def measure(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process, all threads) for `requests` prompts, in the runner's batch size."""
    target = resolve_target(f"openai:bench@{url}", max_concurrency=concurrency, max_new_tokens=16)
    try:
        target.generate([f"warm-up {i}" for i in range(concurrency)])  # open the connections first
        prompts = [f"prompt {concurrency}-{i}" for i in range(requests)]
        size = target.capabilities.run_batch_size
        began, cpu = time.perf_counter(), time.process_time()
        in_flight = []  # like the runner: the next batch is submitted before the previous one is collected
        for start in range(0, requests + size, size):
            if start < requests:
                in_flight.append(target.submit(prompts[start:start + size]))
            if len(in_flight) == 2 or (start >= requests and in_flight):
                answers = in_flight.pop(0).result()
                if any(a.error for a in answers):
                    raise RuntimeError(f"errors at concurrency {concurrency}: {[a.error for a in answers if a.error][:3]}")
        return time.perf_counter() - began, time.process_time() - cpu
    finally:
        target.close()


def measure_runner(url: str, concurrency: int, requests: int) -> tuple[float, float]:
    """Wall and CPU seconds of the whole runner (plan aside): generate, judge, store each batch in one transaction."""
    from core.judges import JudgeItem, resolve_judge
    from core.probes.schema import Probe
    from core.run.runner import execute_run, plan_run
    from core.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        probes = [Probe(f"bench-{i:05d}", "en", "women", "seed", "History", "scenario", "persona_assign",
                        f"bench prompt {i}", "attack", "custom") for i in range(requests)]
        spec = f"openai:bench@{url}"
        run_id = plan_run(store, probes, [spec], ["refusal"], {})
        target = resolve_target(spec, max_concurrency=concurrency, max_new_tokens=16)
        target.generate([f"warm-up {i}" for i in range(concurrency)])
        judge = resolve_judge("refusal")
        judge.judge([JudgeItem("warm-up", "Sure.", "en")])  # its patterns compile once, outside the timing
        began, cpu = time.perf_counter(), time.process_time()
        result = execute_run(store, run_id, [target], [judge])
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        target.close()
        if result.counts["completions"] != requests or result.counts["errors"]:
            raise RuntimeError(f"runner stored {result.counts}")
        return elapsed, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the server takes per request")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--waves", type=int, default=8, help="requests per concurrency level = waves x concurrency")
    parser.add_argument("--sequential", type=int, default=20, help="requests sent one at a time")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    proc, url = start_server(args.latency)
    rows = []
    try:
        levels = [(1, args.sequential, "target")] + [(c, c * args.waves, "target") for c in args.concurrency]
        levels.append((max(args.concurrency), max(args.concurrency) * args.waves, "runner"))
        for concurrency, requests, mode in levels:
            seconds, cpu = (measure if mode == "target" else measure_runner)(url, concurrency, requests)
            rows.append({"mode": mode, "concurrency": concurrency, "requests": requests, "seconds": round(seconds, 3),
                         "req_per_s": round(requests / seconds, 1),
                         "client_cpu_ms_per_request": round(1000 * cpu / requests, 2)})
    finally:
        proc.stdin.close()
        proc.wait(10)
    sequential = rows[0]["req_per_s"]
    for row in rows:
        ideal = row["concurrency"] / args.latency
        row["x_sequential"] = round(row["req_per_s"] / sequential, 2)
        row["ideal_req_per_s"] = round(ideal, 1)
        row["pct_of_ideal"] = round(100 * row["req_per_s"] / ideal, 1)
    goal_met = all(r["pct_of_ideal"] >= 100 * GOAL for r in rows if r["mode"] == "target" and r["concurrency"] > 1)
    load = os.getloadavg()[0]  # other work on this machine competes for its cores: say how much there was
    if args.json:
        print(json.dumps({"latency_s": args.latency, "goal_pct_of_ideal": 100 * GOAL, "goal_met": goal_met,
                          "load_average_1min": round(load, 2), "cpus": os.cpu_count(), "rows": rows}))
    else:
        print(f"openai target vs a loopback server with {args.latency * 1000:.0f} ms per request")
        print(f"(load average {load:.1f} on {os.cpu_count()} CPUs while it ran)")
        print(f"{'mode':8}{'conc':>6}{'requests':>10}{'seconds':>9}{'req/s':>9}{'x seq':>8}{'ideal':>9}{'% ideal':>9}"
              f"{'cpu ms/req':>12}")
        for r in rows:
            print(f"{r['mode']:8}{r['concurrency']:>6}{r['requests']:>10}{r['seconds']:>9.2f}{r['req_per_s']:>9.1f}"
                  f"{r['x_sequential']:>8.1f}{r['ideal_req_per_s']:>9.0f}{r['pct_of_ideal']:>8.1f}%"
                  f"{r['client_cpu_ms_per_request']:>12.2f}")
        print(f"goal: >= {100 * GOAL:.0f}% of ideal at concurrency {', '.join(map(str, args.concurrency))}: "
              f"{'met' if goal_met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
