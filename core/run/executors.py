"""Executors: where a run's generations are computed. The runner and the store are the same for all.

`local` (the default) generates in this process. `ray` spreads each batch over the workers of a Ray
cluster (a local one started on demand, or an existing one by address): every worker holds its own copy
of the target (a local model loaded on that worker's CPU or GPU, or an API client with its own
connections), answers its shard, and sends the generations back. Only the driver writes to the store,
each batch with its verdicts in one transaction as always, so a run executed through Ray resumes,
deduplicates and reports exactly like a local one.

For many GPUs serving one big model, a vLLM deployment behind its OpenAI-compatible server is the
better path (point an `openai:` target at it); Ray is for spreading many models or replicas of a small
one over a cluster's machines.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.targets import Capabilities, Generation, Target

EXECUTORS = ("local", "ray")


class ExecutorUnavailable(RuntimeError):
    """The executor cannot start here; the message says what to install or where to look."""


class _Worker:
    """A Ray actor holding one copy of a target."""

    def __init__(self, target: Target) -> None:
        import ray

        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
        if cpus and target.capabilities.device == "cpu":
            import torch

            torch.set_num_threads(max(1, int(cpus)))  # share the node's cores with the other workers
        self.target = target

    def ready(self) -> bool:
        return True

    def generate(self, prompts: Sequence[str]) -> tuple[list[Generation | None], str | None]:
        """The answers (None: left pending because the target went away) and why it did, if it did."""
        return self.target.generate(prompts), self.target.unreachable


_started_here = False  # whether this process started (or connected) Ray, and so should shut it down


def start_ray(address: str | None = None) -> None:
    """Connect to a Ray cluster (`address`, e.g. `auto` or `ray://host:10001`) or start a local one."""
    global _started_here
    try:
        import ray
    except ImportError:
        raise ExecutorUnavailable("--executor ray needs Ray: pip install ray (see requirements.txt)") from None
    if ray.is_initialized():
        return
    local = {} if address else {"object_store_memory": 256 * 1024 ** 2}
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, **local)
    _started_here = True


def shutdown() -> None:
    """Stop the workers and disconnect from (or stop) the Ray cluster this process started; else nothing."""
    global _started_here
    if RayTarget._active is not None:
        RayTarget._active.close()
    if _started_here:
        import ray

        ray.shutdown()
        _started_here = False


class RayTarget(Target):
    """A target whose batches are answered by Ray workers; to the runner it is the wrapped target.

    The runner works through its targets one after another, so only one RayTarget holds workers at a
    time: a target starts its workers on its first batch and stops those of the target before it,
    which lets several targets share a cluster whose CPUs fit one set of workers.
    """

    _active: RayTarget | None = None

    def __init__(self, target: Target, workers: int | None = None, address: str | None = None,
                 cpus_per_worker: float = 1.0, timeout_s: float = 3600.0, start_timeout_s: float = 300.0) -> None:
        self.target = target
        self.info = target.info
        self.seed = target.seed
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self._count = workers
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.workers: list[Any] = []
        self._unreachable: str | None = None  # set when a worker's target judged its server gone

    @property
    def unreachable(self) -> str | None:
        return self._unreachable

    def clear_outage(self) -> None:
        """A new execution tries the server again, with fresh workers (a worker's target stays down)."""
        if self._unreachable is not None:
            self.close()
        self._unreachable = None

    @property
    def count(self) -> int:
        """Workers to start: as asked, else as many as the cluster's CPUs hold (which connects to Ray)."""
        if self._count is None:
            import ray

            start_ray(self.address)
            self._count = max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_worker))
        return self._count

    @property
    def capabilities(self) -> Capabilities:
        """One batch gives every worker a batch of the size the wrapped target works best with; the workers
        answer it at once, so one batch is in flight at a time and the wrapped target prefills nothing here."""
        inner = self.target.capabilities
        batch = self.count * (inner.run_batch_size or inner.batch_size)
        return Capabilities(run_batch_size=batch, batch_size=batch)

    def _start(self) -> None:
        import ray

        start_ray(self.address)  # Ray starts only once a batch needs it: a finished run never starts it
        if RayTarget._active is not None and RayTarget._active is not self:
            RayTarget._active.close()
        RayTarget._active = self
        actor = ray.remote(num_cpus=self.cpus_per_worker, max_restarts=1, max_task_retries=1)(_Worker)
        self.workers = [actor.remote(self.target) for _ in range(self.count)]
        try:  # bounded: workers the cluster cannot place are an error, not a silent wait
            ray.get([worker.ready.remote() for worker in self.workers], timeout=self.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise ExecutorUnavailable(
                f"Ray could not start {self.count} workers of {self.cpus_per_worker:g} CPU each within "
                f"{self.start_timeout_s:.0f} s (cluster: {ray.cluster_resources().get('CPU', 0):g} CPUs); "
                f"use fewer --ray-workers") from None

    def generate(self, prompts: Sequence[str]) -> list[Generation]:
        """Split the batch into one contiguous shard per worker and put the answers back in order."""
        import ray

        if not self.workers:
            self._start()
        size = -(-len(prompts) // len(self.workers))
        shards = [list(prompts[i:i + size]) for i in range(0, len(prompts), size)]
        refs = [worker.generate.remote(shard) for worker, shard in zip(self.workers, shards)]
        try:
            answered = ray.get(refs, timeout=self.timeout_s)  # bounded: a lost worker cannot hang the run
        except BaseException:
            for ref in refs:
                ray.cancel(ref, force=True)
            raise
        self._unreachable = next((gone for _, gone in answered if gone is not None), self._unreachable)
        return [generation for shard, _ in answered for generation in shard]

    def close(self) -> None:
        import ray

        for worker in self.workers:
            ray.kill(worker)
        self.workers = []
        if RayTarget._active is self:
            RayTarget._active = None


def wrap(targets: Sequence[Target], executor: str, workers: int | None = None,
         address: str | None = None) -> list[Any]:
    """Targets as the chosen executor runs them; call shutdown() when the run is over."""
    if executor == "local":
        return list(targets)
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use one of {', '.join(EXECUTORS)}")
    return [RayTarget(t, workers=workers, address=address) for t in targets]
