"""Background runs for the dashboard: a run started from a page executes in a thread of the server process.

A Streamlit script run ends when its browser tab closes, but the server process lives on, so a run
executed in a thread of it keeps going; the page only watches it. The job manager holds, per run, the
thread, a cancel event and the latest Progress (count, rate, ETA, live DR) that core.run.runner reports.
Cancelling sets the event: the runner stops before its next batch and marks the run stopped. Any run
that is not complete (stopped, failed, or interrupted by a server restart) resumes from the store,
with the configuration it was planned with, exactly as `python -m core run --run-id` does.

This module never imports Streamlit; the page keeps nothing but the run id.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.options import check_id
from core.redact import redact
from core.run.eta import Prior, prior
from core.run.request import RunRequest, candidate_probes
from core.run.runner import Progress, build_run, execute_run, generation_of, plan_run
from core.store import Store

FINISHED = ("completed", "stopped", "failed")


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
    priors: dict[str, Prior] = field(default_factory=dict)  # per target id: its speed in earlier runs (core.run.eta)

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
