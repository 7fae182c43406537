"""Every benchmark in one run: local generation, the store at scale, the dashboard in a browser, the API path.

Prints one JSON object (--json) of figures and ratios, each benchmark measured side by side with its
alternative in its own process; the machine (cores, CPU model, load average before and after each part)
is recorded with it, since other work on a shared machine moves every figure. --quick uses sizes that
finish within about 3 minutes for CI-sized checks; the full run takes about 20 minutes on 2 cores.

    .venv/bin/python bench/run.py [--quick] [--json] [--llama-url URL] [--skip dashboard,api]
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

# name -> (full command, quick command); every command prints one JSON object on its last line.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "local_generation": (["-m", "bench.local_gen", "--json"],
                         ["-m", "bench.local_gen", "--probes", "16", "--tokens", "16", "--batch-size", "16", "--json"]),
    "store": (["-m", "bench.store_bench", "--json"],
              ["-m", "bench.store_bench", "--completions", "52800", "--repeats", "3", "--json"]),
    "dashboard": (["-m", "bench.dashboard_render", "--sizes", "528000", "--heatmap-only", "--json"],
                  ["-m", "bench.dashboard_render", "--sizes", "5280", "--heatmap-only", "--json"]),
    "ppi": (["-m", "bench.ppi_bench", "--json"],
            ["-m", "bench.ppi_bench", "--completions", "52800", "--fraction", "0.1", "--repeats", "3", "--json"]),
    "api": (["bench/bench_api.py", "--latency", "0.1", "--waves", "8", "--json"],
            ["bench/bench_api.py", "--latency", "0.1", "--waves", "2", "--json"]),
}


def machine() -> dict:
    """What the figures were measured on."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}


def run_one(name: str, argv: list[str], folder: Path) -> dict:
    """One benchmark in its own interpreter; its JSON, wall time and the load average around it."""
    load_before = os.getloadavg()
    started = time.perf_counter()
    out = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(folder)})
    result: dict = {"wall_s": round(time.perf_counter() - started, 1),
                    "load_before": [round(v, 2) for v in load_before],
                    "load_after": [round(v, 2) for v in os.getloadavg()]}
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        result["error"] = f"exit {out.returncode}: {(out.stderr or out.stdout).strip()[-2000:]}"
        return result
    try:
        result["figures"] = json.loads(lines[-1])
    except json.JSONDecodeError:
        result["error"] = f"{name} printed no JSON on its last line: {lines[-1][:300]!r}"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about 3 minutes")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    parser.add_argument("--llama-url", default=None, help="a llama.cpp server for the local-generation baseline")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out: "
                                                   + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    skip = {name for name in args.skip.split(",") if name}
    unknown = skip - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}")
    report: dict = {"quick": args.quick, "machine": machine(),
                    "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="forwhom-bench-") as folder:
        for name, (full, quick) in BENCHMARKS.items():
            if name in skip:
                continue
            argv = list(quick if args.quick else full)
            if name == "local_generation" and args.llama_url:
                argv += ["--llama-url", args.llama_url]
            if not args.json:
                print(f"running {name}...", file=sys.stderr, flush=True)
            report[name] = run_one(name, argv, Path(folder))
    report["total_s"] = round(sum(part.get("wall_s", 0) for part in report.values() if isinstance(part, dict)), 1)
    print(json.dumps(report, indent=None if args.json else 2))
    if any("error" in part for part in report.values() if isinstance(part, dict)):
        sys.exit(1)


if __name__ == "__main__":
    main()
