"""Faulty servers: a storm of every fault (429 with Retry-After, 5xx, malformed and empty bodies, cut
connections, slow-drip answers, silence) through the real CLI. Retries are bounded, every wait has a limit,
each failure is stored as an error on its completion, and no error is ever counted as a refusal."""
from __future__ import annotations

import json

import pytest

from core.stats.rates import DefenseRates
from core.store import Store
from tests.reliability import harness


@pytest.mark.slow
def test_a_fault_storm_ends_with_one_completion_or_one_error_per_probe_and_errors_never_count(fake, tmp_path):
    fake.behaviour.retry_after = 0.2
    fake.behaviour.drip_chunk_delay = 0.3  # a 200-byte answer dripping for seconds: past the 1 s timeout
    fake.mix({**{fault: 3 * p for fault, p in harness.FAULT_MIX.items()}}, seed=3)  # about 90% faults
    db = tmp_path / "storm.duckdb"
    harness.save_target(db, fake.url, timeout_s=1.0, max_retries=2, concurrency=8)
    done = harness.cli([*harness.run_args(db, "storm", per_cell=2), "--json", "--quiet"])  # bounded: 180 s
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    served = {entry.fault for entry in fake.log()}
    assert {"429", "500", "503", "malformed", "empty", "drop", "drip", "hang", "400", "ok"} <= served

    found = harness.check_run(db, "storm")
    assert found.problems == [], found.problems  # errored completions carry no verdict
    assert (found.completions, found.duplicates) == (30, 0) and 0 < found.errors < 30
    assert report["errors"] == found.errors and report["usage"][0]["api"]["retries"] > 0
    # bounded retries: no prompt was sent more than 1 + max_retries times
    per_prompt = {}
    for entry in fake.log():
        per_prompt[entry.prompt] = per_prompt.get(entry.prompt, 0) + 1
    assert max(per_prompt.values()) <= 3

    rows = Store(db, readonly=True).completion_rows({"run_id": "storm"})
    errors = rows[rows["error"].notna()]
    assert errors["error"].str.contains(r"gave up after|HTTP 400|no complete answer|unreadable|connection").all()
    assert errors["completion"].isna().all()
    # the Defense Rate counts answered, judged completions only: errors are neither refusals nor compliances
    judged = Store(db, readonly=True).judged("refusal", {"run_id": "storm"})
    table = DefenseRates(judged, ["model"], ci=False).table.iloc[0]
    answered = judged[judged["error"].isna()]
    assert table["errors"] == found.errors and table["n"] == len(answered)
    assert table["dr"] == (answered["label"] == "refused").sum() / len(answered)


def test_a_429_storm_gives_up_within_bounds_and_records_errors_not_refusals(fake, tmp_path):
    fake.behaviour.retry_after = 0.1
    fake.mix({"429": 1.0})
    db = tmp_path / "429.duckdb"
    harness.save_target(db, fake.url, timeout_s=1.0, max_retries=2, concurrency=4)
    done = harness.cli([*harness.run_args(db, "storm429", groups=("black",)), "--json", "--quiet"])
    report = json.loads(done.stdout)
    assert done.returncode == 1 and "Traceback" not in done.stderr  # every completion failed: not a success
    assert (report["completions"], report["errors"], report["verdicts"]) == (5, 5, 0)
    assert len(fake.log()) == 5 * 3  # each prompt: 1 attempt + 2 retries, then it gives up
    stats = harness.cli(["stats", "--db", str(db), "--json", "--kinds", "attack,control"])
    assert stats.returncode == 0
    cells = json.loads(stats.stdout)
    assert all(cell["refused"] == 0 and cell["dr"] is None or cell["dr"] != cell["dr"] for cell in cells)
