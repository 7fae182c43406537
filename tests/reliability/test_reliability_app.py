"""The real dashboard (`python -m streamlit run app.py` on a free port) in headless Chromium: a run started
on the Run page survives kill -9 of the server at random moments and resumes from the page of a new server
with exactly one completion per (probe, target); a planted API key never shows in the app, the server log,
the database, the CSV export or the HTML report."""
from __future__ import annotations

import random
import re
import signal

import pytest
from playwright.sync_api import Page, expect

from bench import serve
from core.store import Store
from tests.fixtures.paths import ARTIFACTS
from tests.reliability import harness
from tests.fixtures.browser import fill_numbers, new_tab, pick, start_run

TIMEOUT_MS = 60_000
SHOTS = ARTIFACTS / "reliability"


@pytest.fixture()
def planted_key(monkeypatch):
    monkeypatch.setenv(harness.KEY_ENV, harness.KEY)  # the dashboard's server inherits it, as from a shell
    monkeypatch.delenv("AUDIT_PASSWORD", raising=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    return harness.KEY


def _tab(browser):
    tab = new_tab(browser, timeout_ms=TIMEOUT_MS)
    return tab.context, tab


def _start_run_on_the_page(tab: Page, base: str) -> str:
    """Choose the saved target `fake` (and not the default model), the `refusal` judge, two groups, two probes per
    cell; start."""
    tab.goto(base + "/run")
    tab.get_by_text("Completions to generate").wait_for()
    targets = tab.locator(".st-key-run_targets").get_by_role("combobox")
    targets.click()
    targets.press("Backspace")  # removes the default choice, smollm2
    tab.keyboard.press("Escape")
    pick(tab, "run_targets", harness.TARGET)
    judges = tab.locator(".st-key-run_judges").get_by_role("combobox")
    judges.click()
    judges.press("Backspace")  # removes the default judge: the harness checks the refusal rules' verdicts
    tab.keyboard.press("Escape")
    pick(tab, "run_judges", "refusal")
    for option in ("Black people", "Women"):
        pick(tab, "run_groups", option)
    fill_numbers(tab, {"run_per_cell": "2", "run_batch": "4"})  # small batches: kills land between them
    expect(tab.locator('[data-testid="stMetric"]').filter(has_text="Completions to generate").first).to_contain_text("20")
    return start_run(tab)


def _resume_on_the_page(tab: Page, base: str, run_id: str) -> None:
    tab.goto(base + "/run")
    tab.get_by_text("Resume an unfinished run").wait_for()
    expect(tab.get_by_role("combobox", name="Resume an unfinished run")).to_have_value(re.compile(run_id))
    tab.get_by_role("button", name="Resume").click()
    tab.get_by_text("Runs executing in this server").wait_for()


@pytest.mark.slow
def test_an_app_started_run_survives_kill_9_of_the_server_and_resumes_from_the_page(fake, browser, tmp_path,
                                                                                       planted_key):
    # One connection: 5 batches of 4 probes, 2 s each; a kill aimed at <= 12 stored completions leaves 8
    # answers (4 s) of margin, so it lands inside the run even when polling the file lags on a busy machine.
    fake.behaviour.latency = 0.5
    db = tmp_path / "app.duckdb"
    harness.save_target(db, fake.url, concurrency=1)
    rng = random.Random(11)
    run_id, partial = None, []
    for attempt in range(3):
        process, base = serve.start(db, log=tmp_path / f"server{attempt}.log")
        try:
            serve.wait_healthy(process, base)
            context, tab = _tab(browser)
            if run_id is None:
                run_id = _start_run_on_the_page(tab, base)
            else:
                _resume_on_the_page(tab, base, run_id)
            if attempt < 2:  # kill -9 after a random number of stored completions, a moment into a batch
                goal = min(harness.stored_completions(db, run_id) + rng.randrange(1, 6), 12)
                assert harness.wait_for(lambda: harness.stored_completions(db, run_id) >= goal, 90, interval=0.5)
                tab.wait_for_timeout(rng.uniform(0, 700))
                process.send_signal(signal.SIGKILL)  # the server and its run thread die at once
                process.wait(30)
                context.close()
                assert harness.database_is_readable(db)
                midway = harness.check_run(db, run_id, complete=False)
                assert midway.problems == [] and midway.duplicates == 0, midway
                partial.append(midway.completions)
                continue
            assert harness.wait_for(lambda: Store(db, readonly=True, lock_timeout=30).run(run_id)["status"]
                                    == "completed", timeout=120, interval=1.0)
            tab.goto(base + "/run")
            tab.get_by_text("Runs in the database").wait_for()
            tab.screenshot(path=str(SHOTS / "app-run-resumed.png"), full_page=True)
            page_text = tab.locator("body").inner_text()
            context.close()
        finally:
            serve.stop(process)
    assert all(0 < n < 20 for n in partial), partial  # both kills landed in the middle of the run
    final = harness.check_run(db, run_id)
    assert final.problems == [] and (final.planned, final.completions, final.duplicates, final.lost) == (20, 20, 0, 0)
    assert planted_key not in page_text
    for log in tmp_path.glob("server*.log"):
        assert not harness.file_contains(log, planted_key), log


@pytest.mark.slow
def test_a_planted_key_reaches_only_the_server_never_the_app_logs_store_or_exports(fake, browser, tmp_path,
                                                                                    planted_key):
    db = tmp_path / "key.duckdb"
    harness.save_target(db, fake.url)
    done = harness.cli([*harness.run_args(db, "cli-run", groups=("black",)), "--quiet"])
    assert done.returncode == 0 and planted_key not in done.stdout + done.stderr
    fake.always("", "401")  # the server refuses the key and echoes it back, as some providers do
    log = tmp_path / "server.log"
    process, base = serve.start(db, log=log)
    try:
        serve.wait_healthy(process, base)
        context, tab = _tab(browser)
        run_id = _start_run_on_the_page(tab, base)
        error = tab.locator('[data-testid="stAlert"]').filter(has_text="refused the API key")
        error.wait_for()  # the failed run's error is shown in the app...
        shown = tab.locator("body").inner_text()
        tab.screenshot(path=str(SHOTS / "key-refused.png"), full_page=True)
        context.close()
    finally:
        serve.stop(process)
    assert f"${harness.KEY_ENV}" in shown and planted_key not in shown  # ...naming the variable, not the key
    assert any(entry.authorization == f"Bearer {planted_key}" for entry in fake.log())  # it did reach the server
    assert Store(db, readonly=True).run(run_id)["status"] == "failed"
    exports = {}
    for fmt, name in (("csv", "rows.csv"), ("report", "report.html"), ("parquet", "rows.parquet")):
        exports[fmt] = tmp_path / name
        made = harness.cli(["export", "--format", fmt, "--out", str(exports[fmt]), "--db", str(db)])
        assert made.returncode == 0 and planted_key not in made.stdout + made.stderr, made.stderr
    dump = tmp_path / "dump.jsonl.gz"
    assert harness.cli(["dump", str(dump), "--db", str(db)]).returncode == 0
    import gzip

    assert "cli-run" in exports["csv"].read_text() and planted_key not in gzip.open(dump, "rt").read()
    for path in [log, *exports.values(), *tmp_path.glob("key.duckdb*")]:
        assert not harness.file_contains(path, planted_key), path


@pytest.mark.slow
def test_an_app_started_run_stops_when_its_server_dies_says_why_and_retries_its_errors_after_the_restart(
        fake, browser, tmp_path, planted_key):
    # One connection, so the order is fixed: the 1st request is rejected (400: that prompt's own error, stored),
    # the 8th crashes the server; the outage bound (8 failures, no window) stops the run, 13 probes pending.
    fake.behaviour.latency = 0.2
    db = tmp_path / "gone.duckdb"
    harness.save_target(db, fake.url, concurrency=1, outage_window_s=0)
    fake.script("400")
    fake.die_after(8)
    process, base = serve.start(db, log=tmp_path / "server.log")
    try:
        serve.wait_healthy(process, base)
        context, tab = _tab(browser)
        run_id = _start_run_on_the_page(tab, base)
        tab.get_by_text(f"{run_id}: stopped").wait_for()
        why = tab.locator('[data-testid="stAlert"]').filter(has_text="is unreachable")
        expect(why.first).to_contain_text("target fake is unreachable: connection failed")
        expect(why.first).to_contain_text(f"13 probes left pending; resume with --run-id {run_id} when it is back")
        # the page reruns whole once the run has ended: the runs table, its errors and the Retry button
        expect(tab.get_by_text(f"{run_id}: 1 completion with errors (of 7)")).to_be_visible(timeout=TIMEOUT_MS)
        tab.screenshot(path=str(SHOTS / "app-run-stopped-server-gone.png"), full_page=True)
        stopped = Store(db, readonly=True, lock_timeout=30)
        assert stopped.run(run_id)["status"] == "stopped" and "unreachable" in stopped.run(run_id)["message"]
        assert stopped.run_counts(run_id)["completions"] == 7 and stopped.run_counts(run_id)["errors"] == 1
        fake.restart()
        tab.get_by_role("button", name="Retry errors").click()
        assert harness.wait_for(lambda: Store(db, readonly=True, lock_timeout=30).run(run_id)["status"]
                                == "completed", timeout=120, interval=1.0)
        tab.goto(base + "/run")
        tab.get_by_text("Runs in the database").wait_for()
        expect(tab.get_by_role("button", name="Retry errors")).to_have_count(0)  # no error is left to retry
        tab.screenshot(path=str(SHOTS / "app-run-errors-retried.png"), full_page=True)
        page_text = tab.locator("body").inner_text()
        context.close()
    finally:
        serve.stop(process)
        if not fake.alive:
            fake.restart()
    final = harness.check_run(db, run_id)
    assert final.problems == [] and (final.planned, final.completions, final.errors, final.duplicates) == (20, 20, 0, 0)
    history = Store(db, readonly=True).attempts(run_id)
    assert len(history) == 1 and history["error"].iloc[0] == "HTTP 400: fault 400"
    assert planted_key not in page_text
