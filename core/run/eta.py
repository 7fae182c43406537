"""How long a run still takes, measured from its target as it goes, and said with its basis.

The runner records each stored batch (core.run.runner.Progress.batches): how many completions, how many tokens
they generated, the wall-clock seconds since the previous batch was stored, the requests' mean latency and
how many requests the target keeps in flight. From the last few batches:

- a local model: tokens per second of generation; the ETA is the remaining completions at the measured
  tokens per completion and tokens per second ("ETA 3 min at 41 tok/s over the last 5 batches");
- an API target: its requests' latency and concurrency give completions per second (concurrency / latency);
  where the measured throughput is lower (rate limits, retries, time spent judging and storing) the measured
  one is used and said.

The first batch of an execution is left out once a later one exists: it includes loading the model.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WINDOW = 5  # batches an estimate looks back over


@dataclass(frozen=True)
class Batch:
    """One stored batch, as measured by the runner."""

    completions: int
    tokens: int  # completion tokens generated
    seconds: float  # wall-clock time since the previous batch was stored (or the target started)
    latency_s: float = 0.0  # mean seconds one request took (API targets)
    concurrency: int = 1  # requests in flight at once (API targets; 1 for a local model)


@dataclass(frozen=True)
class Estimate:
    eta_s: float | None  # None: nothing measured yet
    basis: str  # what the ETA rests on, in words
    rate: float | None = None  # tokens per second (local) or completions per second (API)
    unit: str = "tok/s"

    def text(self) -> str:
        if self.eta_s is None:
            return f"ETA unknown ({self.basis})"
        return f"ETA {duration(self.eta_s)} at {self.basis}"


def duration(seconds: float) -> str:
    """A short duration: '40 s', '3 min', '1 h 05 min'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{int(round(seconds))} s"
    minutes = int(round(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def recent(batches: Sequence[Batch], count: int, window: int = WINDOW) -> list[Batch]:
    """The batches an estimate uses: the last `window`, without the execution's first batch (model loading)
    while a later one exists. `count` is how many batches the execution stored in all (batches may be only
    the last few of them)."""
    items = list(batches)
    if count == len(items) and len(items) > 1:
        items = items[1:]
    return items[-window:]


def _batches(n: int) -> str:
    return "the last batch" if n == 1 else f"the last {n} batches"


def estimate(batches: Sequence[Batch], remaining: int, api: bool = False, count: int | None = None,
             window: int = WINDOW) -> Estimate:
    """The ETA of `remaining` completions from the recent batches of this target (see the module's doc)."""
    if remaining <= 0:
        return Estimate(0.0, "nothing left to send", None)
    used = recent(batches, len(batches) if count is None else count, window)
    seconds = sum(b.seconds for b in used)
    completions = sum(b.completions for b in used)
    if not used or seconds <= 0 or completions <= 0:
        return Estimate(None, "no batch measured yet")
    measured = completions / seconds  # completions per second, wall clock
    if not api:
        tokens = sum(b.tokens for b in used)
        if tokens <= 0:
            return Estimate(remaining / measured, f"{measured:.2f} completions/s over {_batches(len(used))}",
                            measured, "completions/s")
        tok_s = tokens / seconds
        per_completion = tokens / completions
        return Estimate(remaining * per_completion / tok_s, f"{tok_s:.0f} tok/s over {_batches(len(used))}", tok_s)
    latency = sum(b.latency_s * b.completions for b in used) / completions
    concurrency = used[-1].concurrency
    if latency <= 0:
        return Estimate(remaining / measured, f"{measured:.2f} completions/s over {_batches(len(used))}",
                        measured, "completions/s")
    modelled = concurrency / latency
    basis = f"{latency:.1f} s per request x {concurrency} in flight"
    if measured < 0.9 * modelled:  # rate limits, retries, judging and storing between batches
        return Estimate(remaining / measured, f"{measured:.2f} completions/s measured ({basis}) over "
                        f"{_batches(len(used))}", measured, "completions/s")
    return Estimate(remaining / modelled, f"{basis} ({modelled:.2f} completions/s) over {_batches(len(used))}",
                    modelled, "completions/s")


@dataclass(frozen=True)
class Prior:
    """A target's speed measured in an earlier run (Store.target_speed): what an ETA rests on before this run's first
    batch is measured, said so."""

    seconds_per_answer: float
    run_id: str

    def estimate(self, remaining: int) -> Estimate:
        if remaining <= 0:
            return Estimate(0.0, "nothing left to send", None)
        return Estimate(remaining * self.seconds_per_answer,
                        f"{self.seconds_per_answer:.2f} s per answer, this model's speed in its run {self.run_id} "
                        "(until this run's first batch is measured)", 1 / self.seconds_per_answer, "completions/s")


def prior(speed: dict | None) -> Prior | None:
    """A Prior from Store.target_speed's row: the span from the first stored batch to the last covers every answer
    but the first batch's, so seconds per answer = span / (answers - one batch's answers)."""
    if not speed or speed.get("seconds", 0) <= 0 or speed.get("batches", 0) < 2:
        return None
    answers = speed["completions"] * (1 - 1 / speed["batches"])
    return Prior(speed["seconds"] / answers, speed["run_id"]) if answers > 0 else None


def current(measured: Estimate, earlier: Prior | None, remaining: int) -> Estimate:
    """What the page shows: the ETA measured from this run's batches once there is one, else the target's earlier
    speed (said so), else unknown with why."""
    if measured.eta_s is not None or earlier is None:
        return measured
    return earlier.estimate(remaining)
