"""The runner: send a run's planned probes to its targets in batches, judge, store as it goes.

A run is planned once (its probe ids and targets are stored with its config), then executed. Each
batch of completions is written together with its verdicts in one transaction, so stopping the process
at any moment (Ctrl-C, kill -9, power loss) loses at most the batch in flight, and executing the same
run again picks up exactly the probes that have no completion yet.

A target that goes away mid-run (an API target reports itself `unreachable`, see OutageWatch in
core/targets/openai.py) is stopped: what it answered is stored, its unanswered probes stay pending, and
the run ends `stopped` with a message saying how to resume. `retry_errors=True` also re-sends the probes
whose completion holds an error, and each answer replaces its error row in place (Store.save_results).
A run whose completions are all errors ends `failed`, never `completed`.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from core.judges import Judge, JudgeItem, resolve_judges
from core.options import check_id
from core.probes.schema import Probe
from core.redact import redact
from core.run.eta import WINDOW, Batch, Estimate, estimate
from core.store import CompletionRecord, Store, VerdictRecord, completion_id_for
from core.targets import Target, resolve_target
from core.targets.base import Answers, Generation
from core.vocab import taxonomy


@dataclass
class Progress:
    """What a progress bar shows: counts for this execution, rate, ETA and the live Defense Rate."""

    run_id: str
    target_id: str
    done: int
    total: int
    elapsed_s: float
    refused: int = 0
    judged: int = 0
    errors: int = 0
    done_at_start: int = 0
    batches: tuple[Batch, ...] = ()  # the last few stored batches, measured (core.run.eta)
    batch_count: int = 0  # batches stored in this execution
    api: bool = False  # the target answers requests concurrently (its ETA rests on latency and concurrency)

    @property
    def rate(self) -> float:
        """Completions per second in this execution."""
        new = self.done - self.done_at_start
        return new / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def estimate(self) -> Estimate:
        """The ETA measured from the target's recent batches, with its basis (core.run.eta)."""
        return estimate(self.batches, self.total - self.done, api=self.api, count=self.batch_count)

    @property
    def eta_s(self) -> float | None:
        return self.estimate.eta_s

    @property
    def dr(self) -> float | None:
        return self.refused / self.judged if self.judged else None


@dataclass
class RunResult:
    run_id: str
    status: str  # completed, stopped, failed
    counts: dict[str, int] = field(default_factory=dict)
    added: int = 0
    message: str | None = None  # why it stopped or failed, in plain words (also stored on the run)
    retried: int = 0  # completions with an error that were sent again (retry_errors)
    repaired: int = 0  # of those, how many now hold an answer


class TargetGone(Exception):
    """A target judged unreachable mid-run; the message is what the user reads."""


class Cancelled(Exception):
    """Raised inside the runner when the cancel event is set; the run is marked stopped."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("run-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def plan_run(store: Store, probes: Sequence[Probe], target_specs: Sequence[str], judges: Sequence[str],
             config: dict, run_id: str | None = None) -> str:
    """Store the probes and a new run over them; returns the run id. A given run id must follow the id rule
    (core.options; OptionError, before anything is stored)."""
    run_id = check_id("--run-id", run_id) if run_id is not None else new_run_id()
    store.add_probes(probes)
    full_config = {**config, "targets": list(target_specs), "judges": list(judges)}
    store.create_run(run_id, full_config, [p.probe_id for p in probes])
    return run_id


# A run's `generation` settings when its stored config lacks one (the Run page's and the CLI's defaults).
GENERATION_DEFAULTS: dict[str, Any] = {"max_new_tokens": 64, "batch_size": 16, "temperature": 0.0, "seed": 0}


def generation_of(config: dict) -> dict[str, Any]:
    """A run config's generation settings, the defaults filling what it lacks."""
    return {**GENERATION_DEFAULTS, **config.get("generation", {})}


def build_run(store: Store, config: dict, max_concurrency: int | None = None) -> tuple[list[Target], list[Judge]]:
    """The targets and judges a run's config names, built the one way every caller uses (the CLI planning or
    resuming a run, the Run page resuming one): judges as a list with the store (a bare `ensemble` votes over
    the others, `llm:<saved target>` is found), targets with the store and the run's generation settings.
    `max_concurrency` overrides an API target's (the CLI's --max-concurrency)."""
    generation = generation_of(config)
    judges = resolve_judges(config["judges"], store)
    api = {"max_concurrency": max_concurrency} if max_concurrency else {}
    targets = [resolve_target(spec, store=store, max_new_tokens=generation["max_new_tokens"],
                              batch_size=generation["batch_size"], temperature=generation["temperature"],
                              seed=generation["seed"], **api) for spec in config["targets"]]
    return targets, judges


def _judge_batch(judges: Sequence[Judge], completion_ids: Sequence[str], items: Sequence[JudgeItem]) -> list[VerdictRecord]:
    records: list[VerdictRecord] = []
    for judge in judges:
        for cid, verdict in zip(completion_ids, judge.judge(items), strict=True):
            records.append(VerdictRecord(cid, judge.name, verdict.label, verdict.rationale, verdict.raw,
                                         judge.version, judge.model))
    return records


def execute_run(store: Store, run_id: str, targets: Sequence[Target], judges: Sequence[Judge],
                batch_size: int = 16, on_progress: Callable[[Progress], None] | None = None,
                cancel: threading.Event | None = None, retry_errors: bool = False) -> RunResult:
    """Complete a planned run: every (probe, target) without a completion gets one, then verdicts.

    Safe to call again after any interruption; nothing already stored is generated twice. With
    `retry_errors`, completions that hold an error are sent again and replaced in place by the answer.
    """
    run = store.run(run_id)
    if run is None:
        raise KeyError(f"no run {run_id!r} in {store.path}")
    for target in targets:
        info = target.info
        store.save_target(info.target_id, info.backend, info.model, info.base_url, info.family, info.size_b,
                          info.settings)
    store.add_run_targets(run_id, [t.info.target_id for t in targets])
    store.set_run_status(run_id, "running", message=None)
    added = 0
    errors_before = store.run_counts(run_id)["errors"]
    retried = 0
    gone: list[str] = []
    try:
        judge_run(store, run_id, judges)
        for target in targets:
            try:
                added_here, retried_here = _run_target(store, run_id, target, judges, batch_size, on_progress,
                                                       cancel, retry_errors)
            except TargetGone as exc:  # the other targets still run; the run ends stopped
                gone.append(exc.args[0])
                added_here, retried_here = exc.args[1], exc.args[2]
            added += added_here
            retried += retried_here
    except (Cancelled, KeyboardInterrupt) as exc:
        counts = store.run_counts(run_id)
        planned = counts["planned"] or counts["probes"] * len(targets)
        who = "cancelled by the user" if isinstance(exc, Cancelled) else "interrupted"
        message = (f"{who} after {counts['completions']:,} of {planned:,} completions; resume it to send the rest")
        store.set_run_status(run_id, "stopped", message=message)
        return RunResult(run_id, "stopped", counts, added, message)
    except BaseException as exc:  # a target refused (401, a missing key...): the run says why it failed
        store.set_run_status(run_id, "failed", message=(str(exc) or type(exc).__name__)[:500])
        raise
    counts = store.run_counts(run_id)
    repaired = max(errors_before - counts["errors"], 0) if retry_errors else 0
    if gone:
        message = redact("; ".join(gone))
        store.set_run_status(run_id, "stopped", message=message)
        return RunResult(run_id, "stopped", counts, added, message, retried, repaired)
    if counts["completions"] and counts["errors"] == counts["completions"]:
        message = (f"every completion is an error ({counts['errors']:,}), so this run measured nothing; the first: "
                   f"{store.first_error(run_id)}; fix the cause, then retry them with --retry-errors")
        store.set_run_status(run_id, "failed", message=message)
        return RunResult(run_id, "failed", counts, added, message, retried, repaired)
    store.set_run_status(run_id, "completed", message=None)
    return RunResult(run_id, "completed", counts, added, None, retried, repaired)


JUDGE_CHUNK = 512  # completions judged and stored together by judge_run (a stop keeps what was stored)


def judge_run(store: Store, run_id: str, judges: Sequence[Judge],
              on_progress: Callable[[int, int], None] | None = None) -> int:
    """Give every completion of a run that lacks a verdict from these judges one; returns verdicts added.

    Used when a run resumes (a batch stored by an older judge set) and to add a judge to a finished run.
    Judged in chunks of JUDGE_CHUNK, each stored in one transaction; `on_progress(done, total)` after each,
    counting (completion, judge) pairs over all judges.
    """
    before = store.run_counts(run_id)["verdicts"]
    work = [(judge, store.unjudged(run_id, judge.name)) for judge in judges]
    total, done = sum(len(rows) for _, rows in work), 0
    if on_progress:
        on_progress(done, total)
    for judge, rows in work:
        for start in range(0, len(rows), JUDGE_CHUNK):
            chunk = rows.iloc[start:start + JUDGE_CHUNK]
            items = [JudgeItem(r.prompt, r.completion or "", r.language, r.kind) for r in chunk.itertuples()]
            store.save_results([], _judge_batch([judge], list(chunk.completion_id), items))
            done += len(chunk)
            if on_progress:
                on_progress(done, total)
    return store.run_counts(run_id)["verdicts"] - before


def _run_target(store: Store, run_id: str, target: Target, judges: Sequence[Judge], batch_size: int,
                on_progress: Callable[[Progress], None] | None, cancel: threading.Event | None,
                retry_errors: bool = False) -> tuple[int, int]:
    """Send a target its pending probes (and, with retry_errors, those whose completion is an error);
    returns (completions added, errors sent again). Raises TargetGone when the target is judged unreachable."""
    target_id = target.info.target_id
    target.clear_outage()  # a new execution tries the server again
    pending = store.pending_probes(run_id, target_id)
    errored = store.errored_probes(run_id, target_id) if retry_errors else []
    pending = pending + errored
    total = store.run_counts(run_id)["probes"]
    so_far = store.judged(judges[0].name if judges else "refusal",
                          {"run_id": run_id, "model": target_id, "kind": "attack"}) if judges else None
    capabilities = target.capabilities
    api = capabilities.concurrent
    concurrency = capabilities.concurrency if api else 1
    progress = Progress(run_id, target_id, done=total - len(pending), total=total, elapsed_s=0.0,
                        done_at_start=total - len(pending), api=api)
    if so_far is not None and len(so_far):
        progress.judged = int(so_far.label.isin([taxonomy.REFUSED, taxonomy.COMPLIED]).sum())
        progress.refused = int((so_far.label == taxonomy.REFUSED).sum())
    started = time.perf_counter()
    if on_progress:
        on_progress(replace(progress))  # a snapshot: callers may keep it
    # An API target answers a batch concurrently: it asks for batches large enough to keep its connections busy,
    # and keeps the next batch in flight (submit) while this one is judged and stored.
    batch_size = max(batch_size, capabilities.run_batch_size)
    depth = 2 if api else 1
    in_flight: deque[tuple[Sequence[Probe], Answers]] = deque()
    added = 0
    last_stored = started

    def store_oldest() -> None:
        nonlocal added, last_stored
        batch, answers = in_flight[0]  # left in flight while it is awaited, so a cancel can stop its queued prompts
        results = answers.result()
        in_flight.popleft()
        sent = [(p, g) for p, g in zip(batch, results, strict=True) if g is not None]
        added += _store_batch(store, run_id, target, judges, sent, progress, replace_errors=bool(errored))
        now = time.perf_counter()
        if sent:  # measured for the ETA: tokens, wall time since the previous batch, latency, concurrency
            generations = [g for _, g in sent]
            measured = Batch(len(sent), sum(g.completion_tokens or 0 for g in generations), now - last_stored,
                             sum(g.latency_s or 0.0 for g in generations) / len(generations), concurrency)
            progress.batches = (*progress.batches, measured)[-(WINDOW + 1):]
            progress.batch_count += 1
        last_stored = now
        progress.elapsed_s = now - started
        if on_progress:
            on_progress(replace(progress))  # a snapshot: callers may keep it

    def gone() -> str | None:
        """Why the target is unreachable, once it says so: what was sent is stored, nothing more is sent."""
        reason = target.unreachable
        if reason is None:
            return None
        for _, answers in in_flight:
            answers.stop_queued()
        while in_flight:
            store_oldest()
        left = len(store.pending_probes(run_id, target_id))
        return (f"{reason}; {left:,} probe{'s' if left != 1 else ''} left pending; resume with --run-id {run_id} "
                "when it is back")

    # A cancel takes effect at once for what is not yet sent: a watcher stops the queued prompts of the batches in
    # flight the moment the event is set (those already sent are answered and stored), rather than the runner
    # noticing only after the batch it waits on has been answered in full (a minute on a slow API).
    finished = threading.Event()

    def watch() -> None:
        while not finished.is_set():
            if cancel.wait(0.1):
                for _ in range(3):  # the deque may change under us: copy it again
                    try:
                        flying = list(in_flight)
                        break
                    except RuntimeError:
                        flying = []
                for _, answers in flying:
                    answers.stop_queued()
                return

    if cancel is not None and api:
        threading.Thread(target=watch, name=f"cancel-{run_id}", daemon=True).start()
    try:
        for start in range(0, len(pending), batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            batch = pending[start:start + batch_size]
            in_flight.append((batch, target.submit([p.prompt for p in batch])))
            if len(in_flight) >= depth:
                store_oldest()
            if (why := gone()) is not None:
                raise TargetGone(why, added, len(errored))
        while in_flight:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            store_oldest()
            if (why := gone()) is not None:
                raise TargetGone(why, added, len(errored))
        if cancel is not None and cancel.is_set() and store.pending_probes(run_id, target_id):
            raise Cancelled()  # the watcher stopped prompts of the last batch: the run is not complete
    except Cancelled:
        # Answers already being paid for are kept: prompts sent are answered and stored; queued ones are not sent.
        for _, answers in in_flight:
            answers.stop_queued()
        while in_flight:
            store_oldest()
        raise
    except TargetGone:
        raise
    except BaseException:  # Ctrl-C, a fatal target error: nothing keeps running in the background
        for _, answers in in_flight:
            answers.cancel()
        raise
    finally:
        finished.set()
    return added, len(errored)


def _store_batch(store: Store, run_id: str, target: Target, judges: Sequence[Judge],
                 answered: Sequence[tuple[Probe, Generation]], progress: Progress, replace_errors: bool = False) -> int:
    """Judge and store one batch's answers in one transaction; count them into `progress`. Returns completions
    added. With replace_errors, an answer to a probe whose stored completion is an error replaces that row."""
    target_id = target.info.target_id
    records = [CompletionRecord(run_id, p.probe_id, target_id, g.text, g.prompt_tokens, g.completion_tokens,
                                g.latency_s, g.error, target.seed, g.retries) for p, g in answered]
    ok = [(r, p) for r, (p, _) in zip(records, answered) if r.error is None]
    verdicts = _judge_batch(judges, [r.completion_id for r, _ in ok],
                            [JudgeItem(p.prompt, r.text or "", p.language, p.kind) for r, p in ok])
    added = store.save_results(records, verdicts, replace_errors=replace_errors)
    progress.done += len(records)
    progress.errors += len(records) - len(ok)
    first = judges[0].name if judges else None
    attack_ids = {r.completion_id for r, (p, _) in zip(records, answered) if p.kind == "attack"}
    for v in verdicts:
        if v.judge == first and v.completion_id in attack_ids and v.label != taxonomy.UNPARSED:
            progress.judged += 1
            progress.refused += v.label == taxonomy.REFUSED
    return added
