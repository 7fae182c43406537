"""The Compare versions page in a real browser (issue 16): `python -m ui.launch` on a free port over
tests/fixtures/compare_db.py's store, driven by Playwright + headless Chromium (/usr/bin/chromium). A click on a cell of
the group made worse lists the probes the two versions answered differently, both completions side by side as
plain text. Screenshots go to tests/artifacts/browser/.
"""
from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.fixtures import compare_db
from tests.fixtures.charts import rendered_heatmap
from tests.fixtures.browser import dashboard, new_tab, shots

SHOTS = shots("browser")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser_compare") / "audit.duckdb"
    facts = compare_db.build(db)
    with dashboard(db) as base:
        yield {"base": base, "facts": facts}


def test_a_click_on_the_worse_group_shows_the_disagreeing_pairs_side_by_side(server, browser):
    facts = server["facts"]
    page = new_tab(browser)
    page.goto(f"{server['base']}/compare?base={quote('v1 @ r1')}&candidate={quote('v2 @ r1')}")
    page.get_by_text("Changed for the worse").first.wait_for()
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.scroll_into_view_if_needed()  # below the tables: cells are clicked where the screen shows them
    chart.locator(".cells_marks path").first.wait_for()
    drawn = rendered_heatmap(page, 0, value="change")
    assert drawn["x"][0] == "Jewish people"  # the most worsened group leads
    strategy = "chaining"
    cell = drawn["cells"][("Chain-of-thought decomposition", "Jewish people")]  # rows by the strategy's label
    shared = [p for p in facts["probes"] if p.group == "jewish" and p.strategy == strategy]
    differ = [p for p in shared if facts["v1"][p.probe_id] != facts["v2"][p.probe_id]]
    change = (sum(facts["v2"][p.probe_id] for p in shared) - sum(facts["v1"][p.probe_id] for p in shared)) / len(shared)
    assert cell["value"] == pytest.approx(change, abs=5e-4) and change < 0
    page.mouse.click(*cell["centre"])
    page.get_by_text(f"{len(differ)} probes answered differently").wait_for()
    codes = page.locator('[data-testid="stCode"]')
    expect(codes).to_have_count(3 * len(differ))  # prompt, base completion, candidate completion per probe
    texts = codes.all_inner_texts()
    assert all(t.startswith("v1 answer") for t in texts[1::3]) and all(t.startswith("v2 answer") for t in texts[2::3])
    first_probe = texts[1].split(" ")[3].rstrip(":")
    assert first_probe in {p.probe_id for p in differ}
    expect(page.get_by_text("Base (v1 @ r1): refused (by refusal)").first).to_be_visible()
    expect(page.get_by_text("Candidate (v2 @ r1): complied (by refusal)").first).to_be_visible()
    page.screenshot(path=str(SHOTS / "compare-pairs.png"), full_page=True)


@pytest.fixture(scope="module")
def checked_server(tmp_path_factory):
    """compare_db with r1's review sample labelled; r2 (v1 again) has none."""
    db = tmp_path_factory.mktemp("browser_compare_checked") / "audit.duckdb"
    facts = compare_db.build(db)
    compare_db.label_sample(db, facts)
    with dashboard(db) as base:
        yield {"base": base}


def test_a_corrected_comparison_with_an_unchecked_side_warns_and_shows_no_all_clear(checked_server, browser):
    page = new_tab(browser)
    for base, candidate, side in (("v1 @ r2", "v1 @ r1", "base"), ("v1 @ r1", "v1 @ r2", "candidate")):
        page.goto(f"{checked_server['base']}/compare?base={quote(base)}&candidate={quote(candidate)}"
                  "&estimate=ppi")
        warning = page.locator('[data-testid="stAlertContentWarning"]').filter(
            has_text=f"the {side} v1 @ r2 has no human checks of its review sample")
        warning.first.wait_for()
        expect(warning.first).to_contain_text("python -m core review sample --run-id r2")
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        expect(page.locator('[data-testid="stAlertContentSuccess"]')).to_have_count(0)
        expect(page.get_by_text("No group got significantly worse")).to_have_count(0)
        page.screenshot(path=str(SHOTS / f"compare-unchecked-{side}.png"), full_page=True)
