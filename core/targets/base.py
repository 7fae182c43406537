"""What a target is: a model under audit that turns prompts into completions.

Backends (local transformers, OpenAI-compatible HTTP) are small classes behind the registry in
core/targets/__init__.py, in the spirit of garak's generators; the runner knows only this interface.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence


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


class Target(Protocol):
    info: TargetInfo
    seed: int

    def generate(self, prompts: Sequence[str]) -> list[Generation]:
        """Answer every prompt (each as a single user turn), in order."""
        ...
