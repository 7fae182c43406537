"""Target registry: a spec string from the CLI or the app becomes a Target.

Specs: `smollm2` (the embedded default, instruction-tuned), `gemma3-270m` (the second embedded model, a
base model without instruction or safety tuning, prompted as a plain transcript), `local:PATH_OR_HUB_ID`
(any transformers model this machine has), `openai:MODEL@BASE_URL` (any OpenAI-compatible server; `openai:MODEL` for api.openai.com), and
the name of a target saved in the store (`python -m core targets add`), which needs `store=`.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from core.targets.base import Generation, Target, TargetInfo
from core.targets.local import LocalTarget, TargetUnavailable, gemma3_gguf, smollm2_gguf

DEFAULT_TARGET = "smollm2"
# The models that ship with the app (pip packages, installed by `make run`/`make test`): spec -> stored target id.
BUILTIN_TARGETS = {"smollm2": "smollm2-135m-instruct", "gemma3-270m": "gemma3-270m"}
# Backends a saved target can be rebuilt from; others (e.g. `imported` results of core/align.py) only hold results.
RUNNABLE_BACKENDS: tuple[str, ...] = ("local", "openai")
_API_ONLY = ("max_concurrency",)  # settings a run may pass for API targets that local models do not take


class UnknownTarget(ValueError):
    """A target spec nobody registered; the message lists what is known."""


def resolve_target(spec: str, store: Any = None, **settings: Any) -> Target:
    """Build the target a spec names; settings (max_new_tokens, batch_size, seed...) pass through.

    With a store, a saved target's name works too: its stored settings apply, then these override them.
    """
    local = {k: v for k, v in settings.items() if k not in _API_ONLY}
    if spec == "smollm2":
        return LocalTarget(str(smollm2_gguf()), target_id="smollm2-135m-instruct", family="smollm2",
                           size_b=0.135, **local)
    if spec == "gemma3-270m":
        return LocalTarget(str(gemma3_gguf()), target_id="gemma3-270m", family="gemma3", size_b=0.27,
                           prompt_format="plain", **local)
    if spec.startswith("local:"):
        path = spec.removeprefix("local:")
        if not path:
            raise UnknownTarget("local: needs a model directory or hub id, e.g. local:/models/my-model")
        return LocalTarget(path, **local)
    if spec.startswith("openai:"):
        from core.targets.openai import parse_spec

        try:
            model, base_url = parse_spec(spec)
        except ValueError as exc:
            raise UnknownTarget(str(exc)) from None
        return _openai_target(model, base_url, {}, settings)
    saved = store.target(spec) if store is not None else None
    if saved is not None:
        return _saved_target(saved, settings)
    known = f"; saved targets: {', '.join(store.targets().target_id)}" if store is not None else ""
    raise UnknownTarget(f"unknown target {spec!r}; use smollm2, gemma3-270m, local:PATH, openai:MODEL@BASE_URL or the "
                        f"name of a saved target{known}")


def _openai_target(model: str, base_url: str | None, stored: dict[str, Any], settings: dict[str, Any],
                   **identity: Any) -> Target:
    from core.targets.openai import OpenAIConfig, OpenAITarget

    settings = {k: v for k, v in settings.items() if k != "batch_size"}  # concurrency sets API batches
    try:  # stored settings a newer version wrote are skipped; a caller's unknown setting is an error
        config = dataclasses.replace(OpenAIConfig.from_settings(model, base_url, stored), **settings)
    except (TypeError, ValueError) as exc:
        raise UnknownTarget(f"openai target {model!r}: {exc}") from None
    return OpenAITarget(config, **identity)


def _saved_target(saved: dict[str, Any], settings: dict[str, Any]) -> Target:
    """A target rebuilt from its row in the store's `targets` table."""
    identity = {"target_id": saved["target_id"], "family": saved["family"], "size_b": saved["size_b"]}
    if saved["backend"] == "openai":
        return _openai_target(saved["model"], saved["base_url"], saved["settings"], settings, **identity)
    if saved["backend"] == "local":
        stored = {k: v for k, v in saved["settings"].items()
                  if k in ("max_new_tokens", "temperature", "seed", "batch_size", "prompt_format")}
        return LocalTarget(saved["model"], **identity,
                           **{**stored, **{k: v for k, v in settings.items() if k not in _API_ONLY}})
    raise UnknownTarget(f"saved target {saved['target_id']!r} has unknown backend {saved['backend']!r}")


__all__ = ["BUILTIN_TARGETS", "DEFAULT_TARGET",
           "RUNNABLE_BACKENDS", "Generation", "LocalTarget", "Target", "TargetInfo", "TargetUnavailable",
           "UnknownTarget", "resolve_target"]
