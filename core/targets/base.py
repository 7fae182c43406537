"""What a target is: a model under audit that turns prompts into completions.

Backends (local transformers, OpenAI-compatible HTTP) are small classes that register themselves in
TARGETS (`@register_target`, next to their code), in the spirit of garak's generators; the runner knows
only this interface. What a backend can do beyond `generate` (prefill the answer, keep a batch in flight,
close its connections, say it is unreachable) is declared here with a default, so callers call it instead
of probing for it: a backend subclasses Target and overrides what it does differently.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from core.registry import Registry


class UnknownTarget(ValueError):
    """A target spec nobody registered; the message lists what is known."""


class TargetUnavailable(RuntimeError):
    """The model cannot be loaded or reached here; the message says what to install or where to look."""


@dataclass(frozen=True)
class Generation:
    """A target's answer to one prompt. `error` is set (and `text` None) when no answer could be had."""

    text: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    error: str | None = None
    retries: int = 0  # extra attempts an API target needed (429, 5xx, timeouts...); 0 for local models


@dataclass
class TargetInfo:
    """What the store records about a target; never holds a secret."""

    target_id: str
    backend: str
    model: str
    base_url: str | None = None
    family: str | None = None
    size_b: float | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What a target can do beyond answering a batch, with the defaults of a plain in-process model."""

    prefill: bool = False  # generate(prompts, prefill=...) starts the assistant's turn with given text
    concurrent: bool = False  # answers a batch's requests at once; submit() keeps a batch in flight
    concurrency: int = 1  # requests answered at once (the ETA's basis for a concurrent target)
    run_batch_size: int = 0  # the least the runner should hand over at once (0: the runner's own batch size)
    batch_size: int = 16  # prompts it computes together (what a Ray worker's shard is sized by)
    device: str | None = None  # "cpu"/"cuda..." for a model in this process, None for a remote one


class Answers(Protocol):
    """A batch being answered: what Target.submit returns."""

    def result(self) -> Sequence[Generation | None]:
        """The answers in order; None for a prompt left pending (the target went away before sending it)."""
        ...

    def stop_queued(self) -> None:
        """Send nothing more of this batch; what was sent is still answered."""
        ...

    def cancel(self) -> None:
        """Drop the batch: nothing of it is returned."""
        ...


@dataclass
class Ready:
    """Answers generated on the spot (a target without a batch in flight): nothing to stop or cancel."""

    generations: Sequence[Generation]

    def result(self) -> Sequence[Generation]:
        return self.generations

    def stop_queued(self) -> None:
        pass

    def cancel(self) -> None:
        pass


class Target(Protocol):
    """A model under audit. Backends subclass it explicitly to inherit the defaults of what they lack."""

    info: TargetInfo
    seed: int

    def generate(self, prompts: Sequence[str]) -> list[Generation]:
        """Answer every prompt (each as a single user turn), in order."""
        ...

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities()

    def submit(self, prompts: Sequence[str]) -> Answers:
        """Start answering a batch; a concurrent target returns before the answers are in."""
        return Ready(self.generate(prompts))

    @property
    def unreachable(self) -> str | None:
        """Why the target is judged gone (its unanswered prompts stay pending), or None while it answers."""
        return None

    def clear_outage(self) -> None:
        """Forget an outage: a new execution of a run tries the target again."""

    def api_stats(self) -> dict[str, Any] | None:
        """Requests, retries and why, in this execution, for a target that makes requests; else None."""
        return None

    def close(self) -> None:
        """Release connections, threads or workers; a target that holds none does nothing."""


# Specs (`smollm2`, `local:PATH`, `openai:MODEL@URL`): build(rest of the spec, settings) -> Target.
TARGETS: Registry[Target] = Registry("target", providers=("core.targets.local", "core.targets.openai"))
# Backends a target saved in the store is rebuilt from: build(saved row, settings) -> Target. Others (e.g.
# `imported` results of core/files/align.py) only hold results.
SAVED_BACKENDS: Registry[Target] = Registry("saved-target backend",
                                            providers=("core.targets.local", "core.targets.openai"))


def register_target(key: str, help: str, usage: str | None = None, in_process: bool = False) -> Callable[[Any], Any]:
    """Register a target spec: an exact name, or a prefix ending in ":" whose rest the builder reads.
    `in_process`: a model computed on this machine (the Run page estimates its duration before it starts)."""
    return TARGETS.register(key, help, usage, in_process=in_process)


def register_backend(backend: str, help: str) -> Callable[[Any], Any]:
    """Register how a target saved in the store with this `backend` is rebuilt."""
    return SAVED_BACKENDS.register(backend, help)
