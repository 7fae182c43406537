"""The Run page's and the CLI's ETA (core.run.eta): measured from the target's recent batches, with its basis."""
from __future__ import annotations

import pytest

from core.run.eta import Batch, duration, estimate
from core.run.runner import Progress


def test_local_eta_is_remaining_tokens_over_measured_tokens_per_second():
    # The first batch (model loading: 30 s) is left out; the last 5 of the others: 5 x 16 completions of
    # 40 tokens in 5 x 16 s = 40 tok/s, 40 tokens per completion.
    batches = [Batch(16, 640, 30.0)] + [Batch(16, 640, 16.0)] * 5
    got = estimate(batches, remaining=288, count=len(batches))
    assert got.rate == pytest.approx(40.0)
    assert got.eta_s == pytest.approx(288 * 40 / 40.0)
    assert got.text() == "ETA 5 min at 40 tok/s over the last 5 batches"


def test_local_eta_follows_the_recent_speed_not_the_average():
    slow, fast = [Batch(10, 500, 10.0)] * 6, [Batch(10, 500, 5.0)] * 5  # 50 then 100 tok/s
    got = estimate(slow + fast, remaining=100, count=11)
    assert got.rate == pytest.approx(100.0) and got.eta_s == pytest.approx(100 * 50 / 100.0)
    # only the last 6 batches are kept by the runner: none of them is the first, so all count
    assert estimate((slow + fast)[-6:], remaining=100, count=11).rate == pytest.approx(500 * 6 / 30)


def test_a_single_batch_is_used_until_a_second_exists():
    got = estimate([Batch(8, 160, 4.0)], remaining=8, count=1)
    assert got.eta_s == pytest.approx(4.0) and got.basis == "40 tok/s over the last batch"


def test_api_eta_is_concurrency_over_latency():
    batches = [Batch(64, 3200, 8.0, latency_s=2.0, concurrency=16)] * 6  # 8 requests/s both ways
    got = estimate(batches, remaining=800, api=True, count=6)
    assert got.rate == pytest.approx(8.0) and got.eta_s == pytest.approx(100.0)
    assert got.text() == "ETA 2 min at 2.0 s per request x 16 in flight (8.00 completions/s) over the last 5 batches"


def test_api_eta_uses_the_measured_throughput_where_it_is_lower():
    batches = [Batch(64, 3200, 32.0, latency_s=2.0, concurrency=16)] * 3  # 2/s measured, 8/s possible
    got = estimate(batches, remaining=120, api=True, count=3)
    assert got.rate == pytest.approx(2.0) and got.eta_s == pytest.approx(60.0)
    assert got.basis.startswith("2.00 completions/s measured (2.0 s per request x 16 in flight)")


def test_nothing_measured_and_nothing_left():
    assert estimate([], remaining=10).eta_s is None
    assert estimate([], remaining=10).text() == "ETA unknown (no batch measured yet)"
    assert estimate([Batch(4, 0, 0.0)], remaining=10).eta_s is None
    assert estimate([Batch(4, 40, 2.0)], remaining=0).eta_s == 0


def test_progress_carries_the_estimate():
    progress = Progress("r", "t", done=50, total=100, elapsed_s=100.0, batches=(Batch(10, 200, 5.0),) * 3,
                        batch_count=9)
    assert progress.eta_s == pytest.approx(50 * 20 / 40.0)
    assert "40 tok/s over the last 3 batches" in progress.estimate.text()


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (42.4, "42 s"), (180, "3 min"), (3900, "1 h 05 min")])
def test_duration(seconds, text):
    assert duration(seconds) == text
