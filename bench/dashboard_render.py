"""How long the dashboard's pages take to render in a real browser, for a small and a MiJaBench-Align-size store.

Each size gets a synthetic database (bench/synthetic.py) and its own fresh `streamlit run app.py`;
headless Chromium then opens the pages and times, from navigation to the element that shows the page
is drawn: the model x group heatmap (cold: first visit on a fresh server, nothing cached; warm: the
page loaded again, its tables served from st.cache_data), re-sorting its groups by name, a click on a
heatmap cell until its drill-down lists the cell, the drill-down with a completion's detail, the overview and the export. Printed side by side with
the ratio large / small, with the Streamlit process's memory when idle and its peak (VmHWM) after the views.

    .venv/bin/python -m bench.dashboard_render                 # 5,280 vs 528,000 completions
    .venv/bin/python -m bench.dashboard_render --sizes 528000 --keep /tmp/bench
    .venv/bin/python -m bench.dashboard_render --sizes 528000 --heatmap-only --json
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench import serve
from bench.synthetic import build_synthetic_store
from core.store import Store

TIMEOUT_MS = 600_000


def _timed(page: Page, url: str, selector: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=TIMEOUT_MS)
    return time.perf_counter() - started


def _heatmap(page: Page, url: str) -> float:
    return _timed(page, url, ".js-plotly-plot .nsewdrag")


def _click_first_cell(page: Page) -> float:
    """Click the top-left cell of the model x group heatmap; time until the drill-down shows its count."""
    box = page.locator(".js-plotly-plot").first.locator(".nsewdrag").first.bounding_box()
    rows, columns = page.evaluate("() => { const d = document.querySelector('.js-plotly-plot').data[0];"
                                  " return [d.y.length, d.x.length]; }")
    started = time.perf_counter()
    page.mouse.click(box["x"] + box["width"] / columns / 2, box["y"] + box["height"] / rows / 2)
    page.wait_for_url("**/drilldown?**", timeout=TIMEOUT_MS)
    page.get_by_text("Matching completions").first.wait_for(timeout=TIMEOUT_MS)
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def measure(db: Path, heatmap_only: bool = False, launcher: bool = True) -> dict[str, float]:
    """Seconds per view on a fresh server over `db`, and the server's peak memory (MiB) after them.

    launcher=False starts a bare `streamlit run app.py` instead of `python -m ui.launch` (imports at start).
    """
    completion = Store(db, readonly=True).completion_page("refusal", {"group": "black"}, limit=1)[0]
    completion_id = str(completion["completion_id"][0])
    timings: dict[str, float] = {}
    process, base = serve.start(db, launcher=launcher)
    try:
        serve.wait_healthy(process, base)
        timings["server idle RSS (MiB)"] = peak_rss_mb(process.pid)
        _views(base, completion_id, timings, heatmap_only)
        timings["server peak RSS (MiB)"] = peak_rss_mb(process.pid)
    finally:
        serve.stop(process)
    return timings


def _views(base: str, completion_id: str, timings: dict[str, float], heatmap_only: bool) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        timings["heatmap, cold"] = _heatmap(page, base + "/heatmaps")
        timings["heatmap, warm (reload)"] = _heatmap(page, base + "/heatmaps")
        if heatmap_only:
            browser.close()
            return
        started = time.perf_counter()
        page.locator(".st-key-heatmaps_option_sort").get_by_role("combobox").click()
        page.get_by_role("option", name="by name").click()
        page.wait_for_url("**sort=name**", timeout=TIMEOUT_MS)
        page.wait_for_function("() => { const d = document.querySelector('.js-plotly-plot').data[0];"
                               " return [...d.x].join() === [...d.x].sort().join(); }", timeout=TIMEOUT_MS)
        timings["heatmap, re-sort by name"] = time.perf_counter() - started
        timings["heatmap cell -> drill-down"] = _click_first_cell(page)
        timings["drill-down with detail"] = _timed(page, f"{base}/drilldown?completion={completion_id}",
                                                   "text=Counterfactuals")
        timings["overview"] = _timed(page, base, "text=Defense Rate per group")
        timings["export (one group)"] = _timed(page, f"{base}/export?group=black", "text=Rows in the file")
        browser.close()


def run(sizes: list[int], keep: Path | None = None, heatmap_only: bool = False,
        compare_launch: bool = False) -> dict[str, dict[str, float]]:
    """measure() per store size, building each synthetic database unless `keep` already holds it;
    with compare_launch, each size also on a bare `streamlit run` (keys "SIZE bare"), started right after."""
    folder = keep or Path(tempfile.mkdtemp(prefix="forwhom-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    for size in sizes:
        db = folder / f"synthetic-{size}.duckdb"
        if not db.exists():
            print(f"building {db}: {build_synthetic_store(db, size)}", file=sys.stderr, flush=True)
        for launcher in (True, False) if compare_launch else (True,):
            key = str(size) if launcher else f"{size} bare"
            results[key] = {view: round(value, 2) for view, value in measure(db, heatmap_only, launcher).items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[5_280, 528_000])
    parser.add_argument("--keep", type=Path, default=None, help="folder for the databases (reused if present)")
    parser.add_argument("--heatmap-only", action="store_true", help="time only the heatmap, cold and warm")
    parser.add_argument("--compare-launch", action="store_true",
                        help="also time each size on a bare `streamlit run app.py` (no imports at start)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.sizes, args.keep, args.heatmap_only, args.compare_launch)
    if args.json:
        print(json.dumps(results))
        return
    columns = list(results)
    views = list(next(iter(results.values())))
    print(f"\n{'view (seconds)':<28}" + "".join(f"{column:>16}" for column in columns)
          + ("   ratio" if len(columns) == 2 else ""))
    for view in views:
        row = [results[column][view] for column in columns]
        ratio = f"{row[1] / row[0]:8.1f}x" if len(row) == 2 and row[0] > 0 else ""
        print(f"{view:<28}" + "".join(f"{v:16.2f}" for v in row) + ratio)


if __name__ == "__main__":
    main()
