"""Background runs for the dashboard: a run started from a page executes in a thread of the server process.

A Streamlit script run ends when its browser tab closes, but the server process lives on, so a run
executed in a thread of it keeps going; the page only watches it. The job manager holds, per run, the
thread, a cancel event and the latest Progress (count, rate, ETA, live DR) that core.runner reports.
Cancelling sets the event: the runner stops before its next batch and marks the run stopped. Any run
that is not complete (stopped, failed, or interrupted by a server restart) resumes from the store,
with the configuration it was planned with, exactly as `python -m core run --run-id` does.

This module never imports Streamlit; the page keeps nothing but the run id.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from core import taxonomy
from core.options import check_id, check_numbers
from core.probes.builder import BUNDLED_PROBES
from core.probes.counterfactual import COUNTERFACTUAL_PROBES
from core.probes.loader import load_probes
from core.probes.schema import Probe
from core.probes.selection import Selection, select
from core.redact import redact
from core.runner import Progress, build_run, execute_run, generation_of, plan_run
from core.store import Store
from core.targets import TARGETS
from core.eta import Prior, prior

# Generation speed of the default local model on this project's 2-core machines (SmolLM2-135M, batched),
# used for the estimate shown before a run starts. API targets have no fixed speed: no estimate.
LOCAL_TOKENS_PER_S = 170.0
FINISHED = ("completed", "stopped", "failed")
# The probe sets a run draws from: a bundled set (with the stored probes of its kind) or the stored probes alone.
PROBE_SETS: dict[str, str] = {"builtin": "Matched seeds", "counterfactual": "Counterfactual", "stored": "Stored only"}
_BUNDLED_SETS: dict[str, Path] = {"builtin": BUNDLED_PROBES, "counterfactual": COUNTERFACTUAL_PROBES}


@dataclass(frozen=True)
class RunRequest:
    """What the Run page asks for; the stored config has the same shape as the CLI's, so either resumes it."""

    targets: tuple[str, ...]
    judges: tuple[str, ...] = ("refusal",)
    selection: Selection = field(default_factory=Selection)
    sources: tuple[str, ...] = ()
    max_new_tokens: int = 64
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0
    probe_set: str = "builtin"  # one of PROBE_SETS

    def __post_init__(self) -> None:
        if self.probe_set not in PROBE_SETS:
            raise ValueError(f"unknown probe set {self.probe_set!r}; known: {', '.join(PROBE_SETS)}")
        # the same rules, and messages, as the CLI's options (core.options): OptionError, a ValueError
        check_numbers(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, temperature=self.temperature,
                      seed=self.seed, per_cell=self.selection.per_cell)

    def config(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "sources": list(self.sources), "probe_set": self.probe_set,
                "generation": {"max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size,
                               "temperature": self.temperature, "seed": self.seed}}


def candidate_probes(store: Store | None, request: RunRequest, exclude: Collection[str] = ()) -> list[Probe]:
    """The probes a request would send: the request's probe set, filtered, then sampled per cell.

    `builtin` is the bundled matched-seed set with the stored probes that are not counterfactual, `counterfactual`
    the bundled counterfactual set with the stored counterfactual probes (so neither set draws in the other's
    probes once both have been run), `stored` the stored probes alone. A bundled set is pooled only when the
    store holds the default taxonomy's population: a store of another taxonomy has its groups, not MiJaBench's.
    Reads only, so the page can show the count before anything is written (store None: no database yet,
    the bundled probes alone). `exclude`: probe ids left out before the per-cell sample is drawn (a mitigation's
    training probes), so the cells stay full from the other probes.
    """
    sel = request.selection
    bundled_file = _BUNDLED_SETS.get(request.probe_set)
    default_population = store is None or store.taxonomy().name == taxonomy.DEFAULT_NAME
    bundled = load_probes(bundled_file, default_source=request.probe_set).probes \
        if bundled_file is not None and default_population else []
    stored = [] if store is None else store.probes({"language": sel.languages, "group": sel.groups,
                                                    "strategy": sel.strategies,
                                                    "scenario_category": sel.scenario_categories})
    if request.probe_set != "stored":
        counterfactual = request.probe_set == "counterfactual"
        stored = [p for p in stored if bool(p.counterfactual_id) == counterfactual]
    pool = {p.probe_id: p for p in [*bundled, *stored]}
    excluded = set(exclude)
    probes = [p for p in pool.values() if p.probe_id not in excluded]
    if request.sources:
        probes = [p for p in probes if p.source in request.sources]
    return select(probes, sel)


# What loading a local model costs before its first answer on these machines (reading and converting the weights),
# added to the guess: a guess of generation time alone said "15 s" for an audit that took four minutes.
LOCAL_LOAD_S = 30.0


def speed_of(store: Store | None, spec: str) -> Prior | None:
    """A target's speed measured in its latest earlier run in this store (core.eta.prior), found by its target id
    (a built-in name's id, a saved target's name), or None."""
    if store is None:
        return None
    from core.targets import BUILTIN_TARGETS

    return prior(store.target_speed(BUILTIN_TARGETS.get(spec, spec)))


def estimate_seconds(probes: int, targets: Sequence[str], max_new_tokens: int,
                     store: Store | None = None) -> tuple[float | None, str]:
    """(seconds, what the figure rests on) for a run of `probes` probes on `targets`. Each target's speed measured in
    its earlier runs in `store` where it has some ("measured"); else, for a model computed here, a guess: every
    answer at full length at LOCAL_TOKENS_PER_S plus loading the model; an API target without earlier runs has no
    fixed speed (None)."""
    if not probes or not targets:
        return None, "nothing to send"
    total, measured, guessed = 0.0, [], []
    for spec in targets:
        earlier = speed_of(store, spec)
        if earlier is not None:
            total += probes * earlier.seconds_per_answer
            measured.append(f"{spec}: {earlier.seconds_per_answer:.2f} s per answer in run {earlier.run_id}")
            continue
        kind = TARGETS.find(spec)
        if kind is None or not kind[0].traits.get("in_process"):
            return None, (f"{spec} has no earlier run here to measure its speed on (an API's speed varies); the "
                          "ETA below is measured from the first batch")
        total += probes * max_new_tokens / LOCAL_TOKENS_PER_S + LOCAL_LOAD_S
        guessed.append(spec)
    said = []
    if measured:
        said.append("measured in earlier runs (" + "; ".join(measured) + ")")
    if guessed:
        said.append(f"a guess for {', '.join(guessed)} (no earlier run here): every answer at its full length at "
                    f"{LOCAL_TOKENS_PER_S:.0f} tokens/s on 2 CPU cores plus {LOCAL_LOAD_S:.0f} s to load the model")
    return total, "; ".join(said) + ". Once the run starts, the ETA is measured from its own batches."


@dataclass
class Job:
    """One run executing (or executed) in this process."""

    run_id: str
    db_path: str
    cancel: threading.Event = field(default_factory=threading.Event)
    status: str = "starting"  # starting, running, completed, stopped, failed
    progress: Progress | None = None
    target_index: int = 0
    target_count: int = 0
    error: str | None = None
    message: str | None = None  # why the run stopped or failed without an exception (a target went away)
    retry_errors: bool = False
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    thread: threading.Thread | None = None
    cancel_requested_at: float | None = None  # when Cancel was pressed (the run stops after its batch in flight)
    priors: dict[str, Prior] = field(default_factory=dict)  # per target id: its speed in earlier runs (core.eta)

    @property
    def active(self) -> bool:
        return self.status not in FINISHED

    @property
    def cancelling(self) -> bool:
        """Cancel was pressed and the run has not stopped yet (it finishes and stores the batch in flight)."""
        return self.active and self.cancel.is_set()

    @property
    def state(self) -> str:
        """The status a person reads: "cancelling…" from the moment Cancel is pressed until the run has stopped."""
        return "cancelling…" if self.cancelling else self.status


class JobManager:
    """The runs of this process. One active run per database file: a second would compete for the cores
    and the file's write lock, so it is refused with a message instead."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def jobs(self, db_path: str | Path | None = None) -> list[Job]:
        """Jobs of this process (for one database when given), newest first."""
        with self._lock:
            found = [job for job in self._jobs.values() if db_path is None or job.db_path == str(db_path)]
        return sorted(found, key=lambda job: job.started_at, reverse=True)

    def job(self, run_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(run_id)

    def start(self, db_path: str | Path, request: RunRequest, run_id: str | None = None) -> Job:
        """Plan a new run over the request's probes and execute it in the background."""
        if not request.targets:
            raise ValueError("choose at least one target")
        if not request.judges:
            raise ValueError("choose at least one judge")
        if run_id is not None:
            check_id("--run-id", run_id)  # before the database is opened (plan_run checks again)
        self._check_idle(db_path)
        store = Store(db_path)
        probes = candidate_probes(store, request)
        if not probes:
            raise ValueError("the selection matches no probe; widen the languages, groups, strategies or categories")
        run_id = plan_run(store, probes, list(request.targets), list(request.judges), request.config(), run_id)
        return self._launch(db_path, run_id)

    def resume(self, db_path: str | Path, run_id: str, retry_errors: bool = False) -> Job:
        """Execute an unfinished run again; only its missing completions are generated (and, with
        retry_errors, those that hold an error are sent again and replaced in place)."""
        job = self.job(run_id)
        if job is not None and job.active:
            return job
        self._check_idle(db_path)
        if Store(db_path).run(run_id) is None:
            raise ValueError(f"no run {run_id!r} in {db_path}")
        return self._launch(db_path, run_id, retry_errors)

    def cancel(self, run_id: str) -> bool:
        """Ask a run to stop before its next batch; True if it was running."""
        job = self.job(run_id)
        if job is None or not job.active:
            return False
        job.cancel_requested_at = time.time()
        job.cancel.set()
        return True

    def wait(self, run_id: str, timeout: float | None = None) -> Job | None:
        """Block until a run's thread ends (tests and scripts; pages poll instead)."""
        job = self.job(run_id)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return job

    def _check_idle(self, db_path: str | Path) -> None:
        busy = [job.run_id for job in self.jobs(db_path) if job.active]
        if busy:
            raise ValueError(f"run {busy[0]} is still executing on {db_path}; wait for it or cancel it first")

    def _launch(self, db_path: str | Path, run_id: str, retry_errors: bool = False) -> Job:
        job = Job(run_id=run_id, db_path=str(db_path), retry_errors=retry_errors)
        job.thread = threading.Thread(target=self._execute, args=(job,), name=f"run-{run_id}", daemon=True)
        with self._lock:
            self._jobs[run_id] = job
        job.thread.start()
        return job

    def _execute(self, job: Job) -> None:
        targets: list = []
        try:
            store = Store(job.db_path)
            config = store.run(job.run_id)["config"]
            generation = generation_of(config)
            targets, judges = build_run(store, config)
            job.target_count = len(targets)
            for target in targets:
                earlier = prior(store.target_speed(target.info.target_id))
                if earlier is not None:
                    job.priors[target.info.target_id] = earlier
            job.status = "running"
            seen: set[str] = set()

            def on_progress(progress: Progress) -> None:
                if progress.target_id not in seen:
                    seen.add(progress.target_id)
                    job.target_index = len(seen)
                job.progress = replace(progress)

            result = execute_run(store, job.run_id, targets, judges, batch_size=generation["batch_size"],
                                 on_progress=on_progress, cancel=job.cancel, retry_errors=job.retry_errors)
            job.message = result.message
            job.status = result.status
        except Exception as exc:  # the page shows it; the store already marked the run failed where it began
            job.status = "failed"
            job.error = redact(f"{type(exc).__name__}: {exc}")
        finally:
            for target in targets:
                target.close()
            job.finished_at = time.time()


# One manager per process: every session of the Streamlit server sees the same runs.
MANAGER = JobManager()
