"""Text from outside is never Markdown (issue 27): every page in a real browser, on a database whose every
user-controlled text is hostile markup (tests/fixtures/hostile_db.py), with hostile URL parameters too, and the HTML report.

A loopback "leak server" records every request it gets; each planted Markdown image, HTML image, link and autolink
points at it under a path naming the field it sits in. Chromium opens every page of app.py's navigation (a deep
link with the hostile names as filters, the hostile judge and a completion, then every URL parameter set to hostile
markup), waits until the script has finished, opens the select boxes and expanders and hovers the charts, and the
leak server must have received nothing and the page must hold no link or image pointing at it. The same sweep runs
in a read-only demo session (AUDIT_READONLY=1), on a twin database whose taxonomy is named `mijabench` (so the
Reproduction page draws its model mapping instead of naming the population). The toolbar's "Download as CSV" of the
drill-down table writes formula cells escaped as the Export page does, and the HTML report made from the database
fetches nothing either. A first check proves the leak server is reachable from the page, so a silent 0 means
something.
"""
from __future__ import annotations

import ast
import csv
import http.server
import io
import json
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import Page

from core.vocab import dimensions
from tests.fixtures import hostile_db
from tests.fixtures.browser import NO_WARMUP, dashboards, new_tab, settle, shots
from tests.fixtures.paths import ROOT
from tests.fixtures.cli import run_cli

SHOTS = shots("browser-inert")


class Leak(http.server.BaseHTTPRequestHandler):
    """Records every request: a rendered image or a followed link from the hostile texts calls here."""

    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        Leak.requests.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def leak():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Leak)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def pages() -> list[tuple[str, bool]]:
    """(URL path, writes) of every page app.py's navigation offers: the Overview and each entry of app.PAGES, read
    from the source (importing app.py would run it)."""
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    listed = next(node.value for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                  and getattr(node.target, "id", "") == "PAGES")
    return [("", False)] + [(Path(file).stem, writes) for file, _, _, writes in ast.literal_eval(listed)
                            if (ROOT / file).exists()]


# Every query parameter a page reads (ui/filters.py, the pages' select_option/number_option/toggle_option names).
URL_PARAMETERS = (*dimensions.filterable(), "verdict", "judge", "completion", "page", "metric", "sort", "estimate",
                  "min_human", "breakdowns", "breakdown", "base", "candidate", "mitigation", "language")


@pytest.fixture(scope="module")
def servers(tmp_path_factory, leak):
    """A normal server on the hostile database and a read-only one on its twin (taxonomy named mijabench)."""
    folder = tmp_path_factory.mktemp("inert")
    facts = hostile_db.build(folder / "audit.duckdb", leak, folder / "mitigation")
    twin = hostile_db.build(folder / "demo.duckdb", leak, folder / "mitigation-demo", default_name=True)
    with dashboards({"rw": (folder / "audit.duckdb", False), "ro": (folder / "demo.duckdb", True)}, NO_WARMUP) as bases:
        yield {**bases, "facts": facts, "twin": twin, "folder": folder}


# A stand-in for the browser's save dialog: the table toolbar's "Download as CSV" writes through
# showSaveFilePicker, which headless Chromium cannot answer; this one keeps what is written in window.__csv.
SAVE_PICKER = """window.showSaveFilePicker = async () => ({createWritable: async () => {
  const parts = [];
  return {write: async (chunk) => parts.push(typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk)),
          close: async () => { window.__csv = parts.join(''); }};
}});"""


@pytest.fixture()
def page(browser):
    tab = new_tab(browser)
    tab.context.add_init_script(SAVE_PICKER)
    yield tab
    tab.context.close()


def reveal(page: Page) -> None:
    """Show what a visitor can open without changing anything: every select box's options, every expander's
    content, a hover over each chart."""
    for summary in page.locator('[data-testid="stExpander"] details:not([open]) > summary').all():
        summary.click()
    for box in page.locator('[data-testid="stSelectbox"] [role="combobox"], '
                            '[data-testid="stMultiSelect"] [role="combobox"]').all():
        if box.is_visible():
            box.click()
            page.wait_for_timeout(150)
            page.keyboard.press("Escape")
    for chart in page.locator('[data-testid="stVegaLiteChart"]').all():  # each heatmap's first cells
        for cell in chart.locator('.cells_marks path').all()[:3]:
            cell.hover(force=True)
            page.wait_for_timeout(150)
    for chart in page.locator('[data-testid="stPlotlyChart"] .nsewdrag').all()[:3]:  # the scatter plots
        chart.hover(force=True)
        page.wait_for_timeout(150)


# Images pointing at the leak server, and links to it whose visible text is not their own address: what Markdown
# or HTML made of a hostile text. (A URL shown literally is still made a link by Streamlit's GFM autolinking, whose
# text is the address itself: nothing is requested unless it is clicked, and nothing is disguised.)
RENDERED = """leak => [
  ...[...document.querySelectorAll('img')].filter(n => (n.getAttribute('src') || '').startsWith(leak))
     .map(n => `<img src=${n.getAttribute('src')}>`),
  ...[...document.querySelectorAll('a')].filter(n => (n.getAttribute('href') || '').startsWith(leak)
                                                && n.textContent.trim() !== n.getAttribute('href'))
     .map(n => `<a href=${n.getAttribute('href')}>${n.textContent.trim()}</a>`)]"""


def findings(page: Page, leak: str) -> list[str]:
    """What the page let through: requests the leak server got, images and disguised links pointing at it, and
    exceptions."""
    page.wait_for_timeout(1500)  # time for any image to load, were one rendered
    found = list(Leak.requests)
    Leak.requests.clear()
    found += page.evaluate(RENDERED, leak)
    found += [f"exception: {text[:200]}" for text in page.locator('[data-testid="stException"]').all_inner_texts()]
    return found


def views(base: str, facts: dict, leak: str, readonly: bool) -> list[tuple[str, str]]:
    """(name, URL) of every page, twice: a deep link with the hostile stored names, and hostile URL parameters."""
    model_a, model_b = facts["models"][:2]
    deep = {"judge": facts["judge"], "model": model_a, "completion": facts["counterfactual_completion_id"],
            "breakdowns": "on", "breakdown": model_a, "base": f"{model_a} @ {facts['runs'][0]}",
            "candidate": f"{model_b} @ {facts['runs'][0]}", "run_id": facts["runs"][0]}
    garbage = {name: hostile_db.payload(leak, f"url-{name}") for name in URL_PARAMETERS}
    out = []
    for path, writes in pages():
        if writes and readonly:
            continue  # not in a read-only session's navigation
        for kind, params in (("deep link", deep), ("hostile URL", garbage)):
            out.append((f"/{path} ({kind})", f"{base}/{path}?{urllib.parse.urlencode(params, doseq=True)}"))
    return out


def sweep(page: Page, base: str, facts: dict, leak: str, readonly: bool, shots: str) -> dict[str, list[str]]:
    """Open every view; what each let through (empty lists when nothing)."""
    seen = {}
    for index, (name, url) in enumerate(views(base, facts, leak, readonly)):
        Leak.requests.clear()
        page.goto(url)
        settle(page)
        reveal(page)
        settle(page)
        seen[name] = findings(page, leak)
        page.screenshot(path=str(SHOTS / f"{shots}-{index:02d}.png"), full_page=True)
    (SHOTS / f"findings-{shots}.json").write_text(json.dumps(seen, indent=1), encoding="utf-8")
    return seen


def report(seen: dict[str, list[str]]) -> str:
    leaky = {name: found for name, found in seen.items() if found}
    return "\n".join(f"{name}: {len(found)} -> {sorted(set(found))[:12]}" for name, found in leaky.items())


def test_the_leak_server_is_reachable_from_the_page(servers, page, leak):
    """The sweep's 0 means something: an image the page does load reaches the leak server."""
    page.goto(servers["rw"])
    settle(page)
    Leak.requests.clear()
    page.evaluate("url => { const image = new Image(); image.src = url; }", f"{leak}/sanity")
    deadline = time.monotonic() + 10
    while "/sanity" not in Leak.requests and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "/sanity" in Leak.requests
    Leak.requests.clear()


def test_no_page_renders_outside_text_as_markdown_or_html(servers, page, leak):
    seen = sweep(page, servers["rw"], servers["facts"], leak, readonly=False, shots="rw")
    assert len(seen) >= 2 * len(pages())
    assert not any(seen.values()), "outside text rendered:\n" + report(seen)


def test_nor_in_a_readonly_demo_session(servers, page, leak):
    seen = sweep(page, servers["ro"], servers["twin"], leak, readonly=True, shots="ro")
    assert not any(seen.values()), "outside text rendered:\n" + report(seen)


def test_outside_text_still_reads_as_itself(servers, page, leak):
    """Escaped, not mangled: a stopped run's message, a judge's name and a counterfactual id show character for
    character, markup included, as plain text."""
    facts = servers["facts"]
    page.goto(servers["rw"] + "/run")
    settle(page)
    message = hostile_db.payload(leak, "run-message")
    assert page.get_by_text(f"Why it stopped: {message}", exact=True).count() == 1
    page.goto(servers["rw"])
    settle(page)
    judges = page.get_by_text("Judges in this database: ", exact=False)
    assert facts["judge"] in judges.inner_text()
    link = urllib.parse.urlencode({"completion": facts["counterfactual_completion_id"]})
    page.goto(f"{servers['rw']}/drilldown?{link}")
    settle(page)
    caption = page.get_by_text("Counterfactual siblings (", exact=False)
    assert hostile_db.payload(leak, "counterfactual-id") in caption.inner_text()
    assert findings(page, leak) == []


def test_a_clicked_comparison_cell_stays_inert(servers, page, leak):
    """The Compare page's detail of a clicked cell: its group and strategy names, and each probe's id."""
    facts = servers["facts"]
    model_a, model_b = facts["models"][:2]
    params = {"base": f"{model_a} @ {facts['runs'][0]}", "candidate": f"{model_b} @ {facts['runs'][0]}"}
    page.goto(f"{servers['rw']}/compare?{urllib.parse.urlencode(params)}")
    settle(page)
    cells = page.locator('[data-testid="stVegaLiteChart"] .cells_marks path')
    cells.first.wait_for()
    cells.first.click(force=True)
    page.get_by_text("probes answered differently", exact=False).first.wait_for()
    settle(page)
    page.screenshot(path=str(SHOTS / "compare-cell.png"), full_page=True)
    assert findings(page, leak) == []
    heading = page.get_by_text("probes answered differently", exact=False).first.inner_text()
    assert hostile_db.payload(leak, "strategy-chaining") in heading or \
        hostile_db.payload(leak, "strategy-persona_assign") in heading  # shown as itself


def test_the_table_toolbar_download_escapes_formulas(servers, page, leak):
    """The drill-down table's own "Download as CSV" (st.dataframe's toolbar) escapes a cell a spreadsheet would run,
    as the Export page's file does (core.files.export.neutralise_formula), and keeps a carriage return inside its cell."""
    model_b = servers["facts"]["models"][1]
    page.goto(f"{servers['rw']}/drilldown?{urllib.parse.urlencode({'model': model_b})}")
    settle(page)
    table = page.locator('[data-testid="stDataFrame"]').first
    table.hover()
    page.get_by_role("button", name="Download as CSV").first.click()
    page.wait_for_function("() => window.__csv !== undefined")
    text = page.evaluate("() => window.__csv").lstrip("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    cells = {cell for row in rows[1:] for cell in row}
    for formula in hostile_db.FORMULAS:
        shown = formula.replace("\r", "\n")  # a CR inside a cell would end the row in a spreadsheet
        expected = "'" + shown if shown.startswith(("=", "+", "-", "@")) else shown
        assert expected in cells, (expected, rows[0], sorted(cells)[:40])
    assert not any(cell.startswith(("=", "+", "-", "@", "\t")) for cell in cells)
    assert "\r" not in text.replace("\r\n", "")
    assert findings(page, leak) == []


def test_the_html_report_fetches_nothing(servers, page, leak, tmp_path):
    facts, folder = servers["facts"], servers["folder"]
    out = tmp_path / "report.html"
    model_a, model_b = facts["models"][:2]
    run_cli("export", "--format", "report", "--db", str(folder / "audit.duckdb"), "--out", str(out), "--judge", facts["judge"], "--compare", model_a, model_b, "--runs", facts["runs"][0], "--mitigation", str(folder / "mitigation"), "--quiet", check=True, timeout=300)
    Leak.requests.clear()
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    assert "group-women" in page.content() and "model-a" in page.content()  # the hostile names are in it, as text
    page.screenshot(path=str(SHOTS / "report.png"), full_page=True)
    assert findings(page, leak) == []
