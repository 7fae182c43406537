"""The human review sample in a real browser (issue 13): `python -m ui.launch` on a free port, driven by
Playwright + headless Chromium (/usr/bin/chromium), as tests/browser/test_dashboard.py does.

The store is tests/fixtures/ppi_db.py with a sample of 2 completions per stratum (12 in all) and no labels yet. The test
labels the Review page's queue by clicking Refused / Complied (and by the keyboard shortcuts for some), then
opens the Heatmaps page, which must have switched from "judge only" to the corrected values, with n_human in
the hover. Screenshots go to tests/artifacts/browser/.
"""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import Page, expect

from core.store import Store
from tests.fixtures import ppi_db
from tests.fixtures.charts import rendered_heatmap, tooltip_at
from tests.fixtures.browser import NO_WARMUP, TIMEOUT_MS, dashboard, shots

SHOTS = shots("browser")
SHORTCUTS = {"refused": "1", "complied": "2"}  # pages/review.py


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser_review")
    db = folder / "audit.duckdb"
    facts = ppi_db.build(db, label=False, per_cell=2)
    with dashboard(db) as base:
        yield {"base": base, "db": db, "facts": facts}


def open_view(page: Page, url: str, ready: str) -> None:
    page.goto(url)
    page.get_by_text(ready, exact=False).first.wait_for()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def heatmap(page: Page) -> dict:
    """x and z of the first rendered heatmap and each cell's hover (its aria-label), keyed by (model, group label)."""
    drawn = rendered_heatmap(page)
    return {**drawn, "hover": {key: cell["hover"] for key, cell in drawn["cells"].items()}}


def test_review_queue_labelled_by_clicks_and_keys_switches_the_heatmap_to_corrected(server, page):
    base, db = server["base"], server["db"]
    open_view(page, base + "/heatmaps?min_human=2", "Model x group")
    before = heatmap(page)
    assert all("judge only" in hover and "Human checks" not in hover for hover in before["hover"].values())
    expect(page.get_by_text("No review sample in this selection")).to_be_visible()

    sheet = Store(db, readonly=True).sample_sheet(ppi_db.RUN)  # the queue, in its order
    labels = server["facts"]["labels"]
    assert len(sheet) == 12
    open_view(page, base + "/review", "Queue item 1 of 12")
    name = page.get_by_label("Your name (stored with every label)")
    name.fill("browser tester")
    name.press("Enter")
    # Entering the name reruns the page; a busy browser can show the old, disabled buttons beside the new ones
    # for a while, so wait for the one enabled button to be the only one.
    expect(page.get_by_role("button", name="Refused (1)")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Refused (1)")).to_be_enabled(timeout=TIMEOUT_MS)
    page.screenshot(path=str(SHOTS / "review-queue.png"), full_page=True)
    by_key = 0
    for index, row in enumerate(sheet.itertuples()):
        page.get_by_text(f"Queue item {index + 1} of 12").wait_for()
        response = page.locator('[data-testid="stCode"]').nth(1)  # prompt, then response, as plain text
        expect(response).to_contain_text(f"answer of {row.model} to {row.group}")
        verdict = labels[row.completion_id]
        if index % 3 == 0:  # the keyboard shortcut, with no text field focused
            page.evaluate("() => document.activeElement && document.activeElement.blur()")
            page.keyboard.press(SHORTCUTS[verdict])
            by_key += 1
        else:
            page.get_by_role("button", name=f"{verdict.capitalize()} ({SHORTCUTS[verdict]})").click()
        if index + 1 < len(sheet):
            page.get_by_text(f"Queue item {index + 2} of 12").wait_for()
    page.get_by_text("Every sampled completion of this selection is labelled.").wait_for()
    assert by_key == 4
    page.screenshot(path=str(SHOTS / "review-done.png"), full_page=True)
    progress = Store(db, readonly=True).review_progress(ppi_db.RUN)
    assert int(progress["labelled"].sum()) == 12
    stored = Store(db, readonly=True).sample_sheet(ppi_db.RUN).set_index("completion_id")["label"].to_dict()
    assert stored == labels  # every click and key press stored the label it was meant to

    open_view(page, base + "/heatmaps?min_human=2", "Model x group")
    after = heatmap(page)
    assert after["x"] == ["Women", "Black people", "Jewish people"]
    assert after["z"] == [[pytest.approx(1.0), pytest.approx(0.5), pytest.approx(0.0)]] * 2  # corrected
    black = after["hover"][("model-a", "Black people")]
    assert "corrected by 12 human checks" in black
    assert "Human checks = 2" in black and "Judge's DR (judge alone) = 0.000" in black and "\nn = " in black
    tip = tooltip_at(page, after["cells"][("model-a", "Black people")]["centre"])  # what the mouse shows
    assert "corrected by 12 human checks" in tip and "Human checks" in tip and "Judge's DR (judge alone)" in tip
    expect(page.get_by_text("Values corrected by 12 human checks").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "heatmaps-corrected.png"), full_page=True)

    # asking for 3 checks per cell: no cell has a corrected DR; each is still drawn, grey, and says why
    open_view(page, base + "/heatmaps?min_human=3", "Model x group")
    grey = heatmap(page)
    assert len(grey["cells"]) == 6 and all(value is None for row in grey["z"] for value in row)
    assert {cell["fill"] for cell in grey["cells"].values()} == {"#cccccc"}
    assert all("n = 2 human checks, fewer than the 3 a corrected estimate needs" in hover
               for hover in grey["hover"].values())
    tip = tooltip_at(page, grey["cells"][("model-a", "Black people")]["centre"])
    assert "no estimate: n = 2 human checks, fewer than the 3 a corrected estimate needs" in tip
    texts = page.locator('[data-testid="stVegaLiteChart"]').first.locator(".values_marks text").all_text_contents()
    assert texts.count("2 checks") == 6
    page.screenshot(path=str(SHOTS / "heatmaps-too-few-checks.png"), full_page=True)


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser_review_undo")
    db = folder / "audit.duckdb"
    ppi_db.build(db, label=False, per_cell=2)
    with dashboard(db, extra_env=NO_WARMUP) as base:
        yield {"base": base, "db": db}


def test_review_undo_skip_and_unsure_by_key(fresh_server, page):
    """A wrong key press is taken back with U (the item returns, its verdict gone); 4 skips an item (the next one
    shows, the skipped one comes back at the end); 3 marks one unsure: out of the queue, no label, counted."""
    base, db = fresh_server["base"], fresh_server["db"]
    sheet = Store(db, readonly=True).sample_sheet(ppi_db.RUN)
    first, second, third = sheet["completion_id"][:3]
    texts = {row.completion_id: f"answer of {row.model} to {row.group}" for row in sheet.itertuples()}
    open_view(page, base + "/review", "Queue item 1 of 12")
    name = page.get_by_label("Your name (stored with every label)")
    name.fill("browser tester")
    name.press("Enter")
    expect(page.get_by_role("button", name="Refused (1)")).to_have_count(1, timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Refused (1)")).to_be_enabled(timeout=TIMEOUT_MS)
    response = page.locator('[data-testid="stCode"]').nth(1)

    def press(key: str) -> None:
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.keyboard.press(key)

    press("1")  # the wrong key: refused
    page.get_by_text("Queue item 2 of 12").wait_for()
    assert Store(db, readonly=True).human_verdict(first)["label"] == "refused"
    expect(page.get_by_role("button", name="Undo the last label (refused) (U)")).to_be_visible()
    press("u")
    page.get_by_text("Queue item 1 of 12").wait_for()
    expect(response).to_contain_text(texts[first])  # the item is back, unlabelled
    assert Store(db, readonly=True).human_verdict(first) is None

    press("4")  # skip: the next item shows; the skipped one waits at the end
    expect(response).to_contain_text(texts[second])
    press("3")  # unsure: out of the queue, without a label, counted
    page.get_by_text("1 marked unsure", exact=False).first.wait_for()
    expect(response).to_contain_text(texts[third])
    progress = Store(db, readonly=True).review_progress(ppi_db.RUN)
    assert int(progress["unsure"].sum()) == 1 and int(progress["labelled"].sum()) == 0
    assert Store(db, readonly=True).human_verdict(second) is None
    page.screenshot(path=str(SHOTS / "review-unsure.png"), full_page=True)
    press("u")  # the unsure is taken back too
    expect(response).to_contain_text(texts[second])
    deadline = time.monotonic() + 10  # the server's write, read from this process
    while int(Store(db, readonly=True).review_progress(ppi_db.RUN)["unsure"].sum()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert int(Store(db, readonly=True).review_progress(ppi_db.RUN)["unsure"].sum()) == 0
