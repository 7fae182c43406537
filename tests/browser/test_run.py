"""The Run page tells the truth about time and about a cancel (issue 29), in Chromium: the dashboard (`python -m
ui.launch`) on a fresh database, an OpenAI-compatible target served by tests/fixtures/fake_openai_server.py with a slow answer
(so the run is still in flight when Cancel is pressed). The run's progress shows at once; Cancel turns into
"Cancelling…" within 2 s; the stopped run says "cancelled by the user after N of M completions", on the page and in
the runs table. Screenshots go to tests/artifacts/readable/.
"""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from core.store import Store
from tests.fixtures.browser import TIMEOUT_MS, dashboard, new_tab, pick, shots
from tests.fixtures.fake_openai_server import FakeOpenAIServer

SHOTS = shots("readable")


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAIServer(latency=4.0) as server:  # every answer takes 4 s: a run of 20 probes is still going
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("browser_run") / "audit.duckdb"
    with dashboard(db, extra_env={"FORWHOM_WARMUP": "off", "OPENAI_API_KEY": "test-key"}) as base:
        yield {"base": base, "db": db}


def test_cancel_says_cancelling_at_once_and_the_stopped_run_says_why(server, fake, browser):
    page = new_tab(browser, 1400, height=1600)
    page.goto(server["base"] + "/run")
    page.get_by_text("Completions to generate").first.wait_for()
    box = page.locator(".st-key-run_targets").get_by_role("combobox")  # the default target (a local model): off
    box.click()
    box.press("Backspace")
    page.keyboard.press("Escape")
    expect(page.locator(".st-key-run_targets")).not_to_contain_text("smollm2")
    other = page.locator(".st-key-run_other input")
    other.fill(f"openai:fake-model@{fake.url}")
    other.press("Enter")
    pick(page, "run_groups", "Black people")
    pick(page, "run_strategies", "Chain-of-thought decomposition")
    field = page.locator(".st-key-run_per_cell input")
    field.fill("20")
    field.press("Enter")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Completions to generate")).to_contain_text("20")
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Completions to generate")).not_to_contain_text("40")
    page.get_by_role("button", name="Start the run").click()
    page.get_by_text("Runs executing in this server").wait_for()
    expect(page.get_by_text(re.compile(r"\d+ / 20 probes|loading the target"))).to_be_visible()  # at once
    page.screenshot(path=str(SHOTS / "run-in-progress-1400.png"))
    page.get_by_role("button", name="Cancel").click()
    pressed = time.monotonic()
    page.get_by_text("Cancelling…", exact=False).first.wait_for(timeout=2_000)  # within 2 s of the click
    assert time.monotonic() - pressed <= 2.0
    page.screenshot(path=str(SHOTS / "run-cancelling-1400.png"))
    stopped = page.get_by_text(re.compile(r"cancelled by the user after \d+ of 20 completions")).first
    stopped.wait_for(timeout=TIMEOUT_MS)
    page.screenshot(path=str(SHOTS / "run-cancelled-1400.png"))
    runs = Store(server["db"], readonly=True).runs()
    assert list(runs["status"]) == ["stopped"]
    assert re.fullmatch(r"cancelled by the user after \d+ of 20 completions; resume it to send the rest",
                        runs["message"].iloc[0])
