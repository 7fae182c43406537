"""How long the dashboard's pages take to render in a real browser, for a small and a MiJaBench-Align-size store.

Each size gets a synthetic database (bench/synthetic.py) and its own fresh `streamlit run app.py`;
headless Chromium then opens the pages and times, from navigation to the element that shows the page
is drawn: the model x group heatmap (cold: first visit on a fresh server, nothing cached; warm: the
page loaded again, its tables served from st.cache_data), re-sorting its groups by name, a click on a
heatmap cell until its drill-down lists the cell, the drill-down with a completion's detail, the overview and the export. Printed side by side with
the ratio large / small, with the Streamlit process's memory when idle and its peak (VmHWM) after the views.

--analyses times instead the pages drawn from core.views (the overview and the over-refusal, cross-lingual,
scaling and reproduction pages), each cold (first visit on the fresh server) and warm (loaded again), to the
last element each page draws.

--compare-warmup times the Heatmaps page without the server's start-up run of the landing pages (FORWHOM_WARMUP=off)
and with it (ui.warmup), each on its own fresh server and browser, one after the other for each size, printed side
by side with the JavaScript the cold browser fetched.
A cold visit opens the page the moment the server answers its health check, while the start-up run may still be
going (the worst case for a first visitor); --settle waits for the server to log that its start-up run ended
("pages run at start", at most 60 s) first, as a visitor arriving a few seconds after `make run` would.

    .venv/bin/python -m bench.dashboard_render                 # 5,280 vs 528,000 completions
    .venv/bin/python -m bench.dashboard_render --compare-warmup --heatmap-only --repeat 5   # without vs with ui.warmup
    .venv/bin/python -m bench.dashboard_render --sizes 528000 --keep /tmp/bench
    .venv/bin/python -m bench.dashboard_render --sizes 528000 --heatmap-only --json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from bench import serve
from bench.synthetic import build_synthetic_store
from core.store import Store

TIMEOUT_MS = 600_000
SETTLE_WITHIN_S = 60.0  # --settle: the longest the cold visit waits for the server's start-up run to end
DRAWN = '[data-testid="stVegaLiteChart"] .cells_marks path'  # a heatmap's cells: the page is drawn
# Column labels of the first heatmap, left to right, as drawn.
COLUMNS_JS = ("() => { const seen = new Map(); for (const p of document"
              ".querySelector('[data-testid=\"stVegaLiteChart\"]').querySelectorAll('.cells_marks path')) {"
              " const col = p.getAttribute('aria-label').split('; ')[0].split(' × ')[1];"
              " const x = p.getBoundingClientRect().x; if (!seen.has(col) || seen.get(col) > x)"
              " seen.set(col, x); } return [...seen].sort((a, b) => a[1] - b[1]).map(e => e[0]); }")


@dataclass(frozen=True)
class Variant:
    """One way of serving the dashboard that is timed: a column of the printed table."""

    name: str
    launcher: bool = True  # python -m ui.launch (False: a bare `streamlit run app.py`)
    warmup: bool = True  # the launcher runs the landing pages at start (ui.warmup; FORWHOM_WARMUP=off: not)

    def server_env(self) -> dict[str, str]:
        return {"FORWHOM_WARMUP": "on" if self.warmup else "off"}


def _timed(page: Page, url: str, selector: str) -> float:
    started = time.perf_counter()
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=TIMEOUT_MS)
    return time.perf_counter() - started


def _heatmap(page: Page, url: str) -> float:
    return _timed(page, url, DRAWN)


# The pages drawn from core.views, and the last element each draws (what says it is done).
ANALYSES_PAGES: tuple[tuple[str, str, str], ...] = (
    ("overview", "", "text=Defense Rate per group"),
    ("over-refusal", "/over_refusal", "text=Each point is one group for one model"),
    ("cross-lingual", "/cross_lingual", "text=Deviation from the model mean, per language"),
    ("scaling", "/scaling", "text=Per model"),
    ("reproduction", "/reproduction", "text=The paper's figures as published"),
)


def _analyses_views(page: Page, base: str, timings: dict[str, float]) -> None:
    """Each page of ANALYSES_PAGES cold, then each warm (its cached result served again)."""
    for state in ("cold", "warm"):
        for name, path, ready in ANALYSES_PAGES:
            timings[f"{name}, {state}"] = _timed(page, base + path, ready)


def _click_first_cell(page: Page) -> float:
    """Click the top-left cell of the model x group heatmap (the first cell drawn: rows in order, then columns);
    time until the drill-down shows its count."""
    box = page.locator(DRAWN).first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    started = time.perf_counter()
    page.mouse.click(x, y)
    page.wait_for_url("**/drilldown?**", timeout=TIMEOUT_MS)
    page.get_by_text("Matching completions").first.wait_for(timeout=TIMEOUT_MS)
    return time.perf_counter() - started


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def measure(db: Path, variant: Variant = Variant("now"), heatmap_only: bool = False, analyses: bool = False,
            settle: bool = False) -> dict[str, float]:
    """Seconds per view on a fresh server over `db` served as `variant`, and the server's peak memory (MiB) after
    them. settle: the cold visit waits for the server's start-up run to end (see --settle)."""
    completion = Store(db, readonly=True).completion_page("refusal", {"group": "black"}, limit=1)[0]
    completion_id = str(completion["completion_id"][0])
    timings: dict[str, float] = {"load average (1 min), start": os.getloadavg()[0]}
    log = db.with_suffix(".streamlit.log")
    process, base = serve.start(db, log=log, launcher=variant.launcher, extra_env=variant.server_env())
    try:
        serve.wait_healthy(process, base)
        if settle:
            started = time.perf_counter()
            if variant.launcher and variant.warmup:
                serve.wait_started_pages(log, process, SETTLE_WITHIN_S)
            timings["waited for the start-up run (s)"] = time.perf_counter() - started
        timings["server idle RSS (MiB)"] = peak_rss_mb(process.pid)
        _views(base, completion_id, timings, heatmap_only, analyses)
        timings["server peak RSS (MiB)"] = peak_rss_mb(process.pid)
        timings["load average (1 min), end"] = os.getloadavg()[0]
    finally:
        serve.stop(process)
    return timings


def _views(base: str, completion_id: str, timings: dict[str, float], heatmap_only: bool,
           analyses: bool = False) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        if analyses:
            _analyses_views(page, base, timings)
            browser.close()
            return
        fetched: list[tuple[str, int]] = []
        page.on("requestfinished", lambda request: fetched.append(
            (request.url, request.sizes()["responseBodySize"])) if request.url.endswith(".js") else None)
        timings["heatmap, cold"] = _heatmap(page, base + "/heatmaps")
        timings["JavaScript fetched, cold (MB)"] = sum(size for _, size in fetched) / 1e6
        timings["heatmap, warm (reload)"] = _heatmap(page, base + "/heatmaps")
        if heatmap_only:
            browser.close()
            return
        started = time.perf_counter()
        page.locator(".st-key-heatmaps_option_sort").get_by_role("combobox").click()
        page.get_by_role("option", name="by name").click()
        page.wait_for_url("**sort=name**", timeout=TIMEOUT_MS)
        page.wait_for_function(f"() => {{ const x = ({COLUMNS_JS})();"
                               " return x.join() === [...x].sort().join(); }", timeout=TIMEOUT_MS)
        timings["heatmap, re-sort by name"] = time.perf_counter() - started
        timings["heatmap cell -> drill-down"] = _click_first_cell(page)
        timings["drill-down with detail"] = _timed(page, f"{base}/drilldown?completion={completion_id}",
                                                   "text=Counterfactuals")
        timings["overview"] = _timed(page, base, "text=Defense Rate per group")
        timings["export (one group)"] = _timed(page, f"{base}/export?group=black", "text=Rows in the file")
        browser.close()


def variants(size: int, compare_launch: bool = False, compare_warmup: bool = False) -> list[Variant]:
    """The columns timed for one store size; the first is the baseline the others' ratios are taken against."""
    if compare_warmup:
        return [Variant(f"{size:,} no start-up run", warmup=False), Variant(f"{size:,} start-up run")]
    if compare_launch:
        return [Variant(str(size)), Variant(f"{size} bare", launcher=False)]
    return [Variant(str(size))]


def run(sizes: list[int], keep: Path | None = None, heatmap_only: bool = False,
        compare_launch: bool = False, repeat: int = 1,
        analyses: bool = False, compare_warmup: bool = False,
        settle: bool = False) -> dict[str, dict[str, float]]:
    """measure() per store size and variant (see variants()), building each synthetic database unless `keep`
    already holds it, each on a fresh server and browser. repeat: every measurement that many times (the variants
    taking turns, so a busy spell hits both), reporting each figure's median."""
    folder = keep or Path(tempfile.mkdtemp(prefix="forwhom-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    samples: dict[str, dict[str, list[float]]] = {}
    for size in sizes:
        db = folder / f"synthetic-{size}.duckdb"
        if not db.exists():
            print(f"building {db}: {build_synthetic_store(db, size)}", file=sys.stderr, flush=True)
        for _ in range(repeat):
            for variant in variants(size, compare_launch, compare_warmup):
                for view, value in measure(db, variant, heatmap_only, analyses, settle).items():
                    samples.setdefault(variant.name, {}).setdefault(view, []).append(value)
    return {key: {view: round(statistics.median(values), 2) for view, values in views.items()}
            for key, views in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[5_280, 528_000])
    parser.add_argument("--keep", type=Path, default=None, help="folder for the databases (reused if present)")
    parser.add_argument("--heatmap-only", action="store_true", help="time only the heatmap, cold and warm")
    parser.add_argument("--compare-launch", action="store_true",
                        help="also time each size on a bare `streamlit run app.py` (no imports at start)")
    parser.add_argument("--compare-warmup", action="store_true",
                        help="each size without and with the server's start-up run of the landing pages (ui.warmup)")
    parser.add_argument("--settle", action="store_true",
                        help="the cold visit waits for the server's start-up run to end (at most 60 s)")
    parser.add_argument("--repeat", type=int, default=1, help="measure each that many times; print the medians")
    parser.add_argument("--analyses", action="store_true",
                        help="time only the pages drawn from core.views (overview, over-refusal, cross-lingual, "
                             "scaling, reproduction), cold and warm")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = run(args.sizes, args.keep, args.heatmap_only, args.compare_launch, args.repeat,
                  args.analyses, args.compare_warmup, args.settle)
    if args.json:
        print(json.dumps(results))
        return
    columns = list(results)
    views = list(next(iter(results.values())))
    width = max(16, *(len(column) + 2 for column in columns))
    # Each column gets its ratio against a baseline: the first column of its size when variants are compared,
    # else the first (smallest) size.
    grouped = args.compare_warmup or args.compare_launch
    baseline = {column: next(c for c in columns if not grouped or c.split()[0] == column.split()[0])
                for column in columns}
    print(f"\n{'view (seconds)':<32}" + "".join(
        f"{column:>{width}}" + ("   ratio" if baseline[column] != column else "") for column in columns))
    for view in views:
        cells = []
        for column in columns:
            v = results[column][view]
            cells.append(f"{v:{width}.2f}")
            if baseline[column] != column:
                base = results[baseline[column]][view]
                cells.append(f"{v / base:7.2f}x" if base > 0 else "        ")
        print(f"{view:<32}" + "".join(cells))


if __name__ == "__main__":
    main()
