"""Target registry: a spec string from the CLI or the app becomes a Target.

Specs: `smollm2` (the embedded default), `local:PATH_OR_HUB_ID` (any transformers model this machine
has). The OpenAI-compatible backend registers `openai:MODEL@BASE_URL` and saved names.
"""
from __future__ import annotations

from typing import Any

from core.targets.base import Generation, Target, TargetInfo
from core.targets.local import LocalTarget, TargetUnavailable, smollm2_gguf

DEFAULT_TARGET = "smollm2"


class UnknownTarget(ValueError):
    """A target spec nobody registered; the message lists what is known."""


def resolve_target(spec: str, **settings: Any) -> Target:
    """Build the target a spec names; settings (max_new_tokens, batch_size, seed...) pass through."""
    if spec == "smollm2":
        return LocalTarget(str(smollm2_gguf()), target_id="smollm2-135m-instruct", family="smollm2",
                           size_b=0.135, **settings)
    if spec.startswith("local:"):
        path = spec.removeprefix("local:")
        if not path:
            raise UnknownTarget("local: needs a model directory or hub id, e.g. local:/models/my-model")
        return LocalTarget(path, **settings)
    raise UnknownTarget(f"unknown target {spec!r}; use smollm2 or local:PATH")


__all__ = ["DEFAULT_TARGET", "Generation", "LocalTarget", "Target", "TargetInfo", "TargetUnavailable",
           "UnknownTarget", "resolve_target"]
