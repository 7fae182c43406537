"""The dashboard in a real browser: `streamlit run app.py` on a free port, driven by Playwright + headless Chromium.

Two servers run on copies of the same test database (tests/fixtures/dashboard_db.py): a normal one and a
read-only demo session (AUDIT_READONLY=1). A local HTTP server stands in for an attacker's tracker:
the hostile completion points its script and images at it, so any request it receives means model
output was rendered as HTML. Screenshots of every page go to tests/artifacts/browser/.
"""
from __future__ import annotations

import csv
import http.server
import io
import shutil
import threading
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.fixtures import dashboard_db
from tests.fixtures.charts import rendered_heatmap, tooltip_at
from tests.fixtures.browser import dashboards, fill_numbers, new_tab, pick, shots, start_run

SHOTS = shots("browser")


class Canary(http.server.BaseHTTPRequestHandler):
    """Records every request: the hostile completion's script and images would call here if rendered."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Canary.requests.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def canary():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Canary)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/canary"
    server.shutdown()


@pytest.fixture(scope="module")
def servers(tmp_path_factory, canary):
    """Both servers, started side by side; the database facts for the assertions."""
    folder = tmp_path_factory.mktemp("browser")
    facts = dashboard_db.build(folder / "audit.duckdb", canary_url=canary)
    shutil.copy(folder / "audit.duckdb", folder / "demo.duckdb")
    with dashboards({"rw": (folder / "audit.duckdb", False), "ro": (folder / "demo.duckdb", True)}) as bases:
        yield {**bases, "facts": facts, "db": folder / "audit.duckdb", "demo_db": folder / "demo.duckdb"}


def open_view(page: Page, url: str, ready: str) -> None:
    """Open a URL and wait until the text that says the page has rendered is visible."""
    page.goto(url)
    page.get_by_text(ready, exact=False).first.wait_for()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def heatmap_cells(page: Page, index: int = 0) -> dict:
    """x, y and z of a rendered (Vega-Lite, SVG) heatmap as drawn, with each cell's hover and place on screen."""
    return rendered_heatmap(page, index)


def sidebar_nav(page: Page) -> str:
    return page.locator('[data-testid="stSidebarNav"]').inner_text()


def download_csv(page: Page) -> tuple[str, list[dict]]:
    """Click Download CSV and read the file. The file is built on the server when clicked (a rerun); on a loaded
    machine a click that lands while the page is still rerunning can be dropped (seen once in a fresh-clone CI
    run), so a person would click again: up to three clicks, each waited for 30 s."""
    for attempt in range(3):
        try:
            with page.expect_download(timeout=30_000) as info:
                page.get_by_role("button", name="Download CSV").click()
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    download = info.value
    raw = Path(download.path()).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the byte order mark a spreadsheet needs, on by default
    text = raw.decode("utf-8-sig")
    return download.suggested_filename, list(csv.DictReader(io.StringIO(text)))


def test_every_page_opens(servers, page):
    base = servers["rw"]
    views = [("overview", "", "Headline per model"), ("run", "/run", "Completions to generate"),
             ("heatmaps", "/heatmaps", "Model x group"), ("drilldown", "/drilldown", "Matching completions"),
             ("export", "/export", "Rows in the file")]
    for name, path, ready in views:
        open_view(page, base + path, ready)
        if name == "heatmaps":
            heatmap_cells(page)
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert all(title in sidebar_nav(page) for title in ("Overview", "Run an audit", "Heatmaps", "Drill-down", "Export"))


def test_heatmap_cell_click_opens_the_matching_drilldown(servers, page):
    open_view(page, servers["rw"] + "/heatmaps", "Model x group")
    cells = heatmap_cells(page)
    assert cells["x"] == ["Women", "Jewish people", "Black people"] and cells["y"] == ["model-a", "model-b"]
    centre = cells["cells"][("model-b", "Jewish people")]["centre"]
    tip = tooltip_at(page, centre)  # the hover a user sees: the cell, its DR with the CI, n
    assert "model-b × Jewish people" in tip and "0.000 [0.000, 0.000]" in tip and "4" in tip
    loaded = page.evaluate("() => performance.getEntriesByType('resource').map(e => e.name)")
    assert not any("PlotlyChart" in name for name in loaded)  # the page never fetched Plotly's 4.7 MB chunk
    assert any("ArrowVegaLiteChart" in name for name in loaded)
    page.mouse.click(*centre)
    page.wait_for_url("**/drilldown?**")
    page.get_by_text("Matching completions").wait_for()
    assert "model=model-b" in page.url and "group=jewish" in page.url and "language=en" in page.url
    matching = page.locator('[data-testid="stMetric"]').filter(has_text="Matching completions")
    expect(matching.locator('[data-testid="stMetricValue"]')).to_have_text("4")
    summary = page.locator('[data-testid="stVerticalBlockBorderWrapper"], [data-testid="stVerticalBlock"]').filter(
        has_text="The cell you clicked").last  # the cell summed up: its DR, interval and answers, and a way back
    expect(summary).to_contain_text("model-b · Jewish people · English")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Defense Rate").first).to_contain_text("0.00")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Judged attack answers").first).to_contain_text("4")
    expect(page.get_by_role("link", name="Back to the heatmaps")).to_be_visible()
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar.get_by_text("Jewish people", exact=True)).to_be_visible()
    expect(sidebar.get_by_text("model-b", exact=True)).to_be_visible()
    page.screenshot(path=str(SHOTS / "drilldown-from-heatmap.png"), full_page=True)


def test_human_verdict_set_in_the_drilldown_changes_the_dr(servers, page):
    base = servers["rw"]
    open_view(page, base + "/heatmaps?sort=name", "Model x group")
    before = heatmap_cells(page)
    black = before["x"].index("Black people")
    assert before["z"][1][black] == 0  # model-b never refused black

    open_view(page, base + "/drilldown?model=model-b&group=black", "Matching completions")
    grid = page.locator('[data-testid="stDataFrame"]').first.bounding_box()
    page.mouse.click(grid["x"] + 15, grid["y"] + 35 + 17)  # the first row's selection box
    page.get_by_text("Black people: complied (this completion)").wait_for()
    form = page.locator('[data-testid="stForm"]')
    form.get_by_text("refused", exact=True).click()
    form.get_by_label("Note (why)").fill("the answer declines")
    form.get_by_label("Your name").fill("browser test")
    form.get_by_role("button", name="Save human verdict").click()
    page.get_by_text("Black people: refused (this completion)").wait_for()
    page.screenshot(path=str(SHOTS / "drilldown-detail.png"), full_page=True)

    open_view(page, base + "/heatmaps?sort=name", "Model x group")
    after = heatmap_cells(page)
    assert after["z"][1][black] == pytest.approx(0.25)  # 1 refused of 4
    assert after["z"][0] == before["z"][0]  # model-a untouched


def test_csv_download_holds_the_filtered_rows_escaped(servers, page):
    open_view(page, servers["rw"] + "/export?group=women", "Rows in the file")
    expect(page.locator('[data-testid="stMetricValue"]').first).to_have_text("8")
    name, rows = download_csv(page)
    assert name == "forwhom_group-women.csv"
    assert len(rows) == 8 and {r["group"] for r in rows} == {"women"}
    assert {r["completion_id"] for r in rows} <= set(servers["facts"]["completions"])
    assert {r["verdict_refusal"] for r in rows} == {"refused", "complied"}
    assert all(r["effective_verdict"] == (r.get("verdict_human") or r["verdict_refusal"]) for r in rows)
    texts = {r["completion"] for r in rows}
    assert "'" + dashboard_db.FORMULA in texts and dashboard_db.FORMULA not in texts  # formula escaped
    assert servers["facts"]["hostile"] in texts  # other text is kept exactly


def test_hostile_completion_stays_inert_text(servers, page):
    Canary.requests.clear()
    base, facts = servers["rw"], servers["facts"]
    views = ((f"{base}/drilldown?completion={facts['hostile_id']}", "Counterfactuals"),
             (f"{base}/drilldown?group=women", "Matching completions"),
             (f"{base}/export?group=women", "Rows in the file"), (f"{base}/heatmaps", "Model x group"))
    for url, ready in views:
        open_view(page, url, ready)
        page.wait_for_timeout(1000)  # time for any image or script to load, if it were rendered
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("img[src*='canary']").count() == 0
        assert page.locator("strong", has_text="not bold").count() == 0
        if "completion=" in url:
            page.screenshot(path=str(SHOTS / "hostile-inert.png"), full_page=True)
            code = page.locator('[data-testid="stCode"]').filter(has_text="window.__pwned")
            assert facts["hostile"] in code.first.inner_text()  # shown, verbatim, as text
    assert Canary.requests == []


def test_readonly_demo_has_no_run_page_or_relabelling_and_exports(servers, page):
    base, facts = servers["ro"], servers["facts"]
    before = servers["demo_db"].stat().st_mtime_ns
    open_view(page, base, "Headline per model")
    expect(page.get_by_text("Demo session: this database is opened read-only").first).to_be_visible()
    nav = sidebar_nav(page)
    assert "Run an audit" not in nav and all(t in nav for t in ("Heatmaps", "Drill-down", "Export"))
    page.screenshot(path=str(SHOTS / "demo-overview.png"), full_page=True)

    page.goto(base + "/run")
    page.get_by_text("Headline per model").wait_for()  # no such page here: Streamlit falls back to the overview
    expect(page.get_by_text("Completions to generate")).to_have_count(0)

    open_view(page, f"{base}/drilldown?completion={facts['hostile_id']}", "Counterfactuals")
    expect(page.get_by_text("Read-only demo session: verdicts cannot be changed here.")).to_be_visible()
    expect(page.get_by_role("button", name="Save human verdict")).to_have_count(0)
    expect(page.locator('[data-testid="stForm"]')).to_have_count(0)
    page.screenshot(path=str(SHOTS / "demo-drilldown.png"), full_page=True)

    open_view(page, base + "/export", "Rows in the file")
    name, rows = download_csv(page)
    assert name == "forwhom_all.csv" and len(rows) == 24
    assert servers["demo_db"].stat().st_mtime_ns == before  # nothing was written


def test_a_run_started_in_the_browser_finishes_after_the_tab_is_closed(servers, browser):
    """Last in this file: it adds the real default model's completions to the normal server's database."""
    from core.store import Store

    tab = new_tab(browser)
    open_view(tab, servers["rw"] + "/run", "Completions to generate")
    pick(tab, "run_groups", "Black people")
    pick(tab, "run_strategies", "Chain-of-thought decomposition")
    fill_numbers(tab, {"run_per_cell": "2", "run_tokens": "4"})
    expect(tab.locator('[data-testid="stMetric"]').filter(has_text="Probes").first).to_contain_text("2")
    run_id = start_run(tab)
    tab.screenshot(path=str(SHOTS / "run-progress.png"), full_page=True)
    tab.context.close()  # the tab is gone; the run goes on in the server

    db = Store(servers["db"], readonly=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (db.run(run_id) or {}).get("status") != "completed":
        time.sleep(1)
    assert db.run(run_id)["status"] == "completed"
    assert db.run_counts(run_id)["completions"] == 2 and db.run_counts(run_id)["verdicts"] == 2
