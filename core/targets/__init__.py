"""Target registry: a spec string from the CLI or the app becomes a Target.

Specs are what the backends register (TARGETS in core/targets/base.py: `smollm2`, `gemma3-270m`,
`local:PATH_OR_HUB_ID`, `openai:MODEL@BASE_URL`...), plus the name of a target saved in the store
(`python -m core targets add`), which needs `store=` and is rebuilt by the backend it was saved with.
To add a backend: a module here with a class that subclasses Target and a function decorated with
`@register_target("prefix:", "one line of help")`, and its module named in TARGETS' providers.
"""
from __future__ import annotations

from typing import Any

from core.targets.base import (SAVED_BACKENDS, TARGETS, Capabilities, Generation, Target, TargetInfo, TargetUnavailable,
                               UnknownTarget, register_backend, register_target)
from core.targets.local import LocalTarget

DEFAULT_TARGET = "smollm2"
# The models that ship with the app (pip packages, installed by `make run`/`make test`): spec -> stored target id.
BUILTIN_TARGETS = {"smollm2": "smollm2-135m-instruct", "gemma3-270m": "gemma3-270m"}
# Backends a saved target can be rebuilt from; others (e.g. `imported` results of core/files/align.py) only hold results.
RUNNABLE_BACKENDS: tuple[str, ...] = tuple(SAVED_BACKENDS.names())


def resolve_target(spec: str, store: Any = None, **settings: Any) -> Target:
    """Build the target a spec names; settings (max_new_tokens, batch_size, seed...) pass through.

    With a store, a saved target's name works too: its stored settings apply, then these override them.
    """
    found = TARGETS.find(spec)
    if found is not None:
        entry, rest = found
        return entry.build(rest, settings)
    saved = store.target(spec) if store is not None else None
    if saved is not None:
        backend = SAVED_BACKENDS.find(saved["backend"])
        if backend is None or backend[0].prefix:
            raise UnknownTarget(f"saved target {saved['target_id']!r} has unknown backend {saved['backend']!r}")
        return backend[0].build(saved, settings)
    known = f"; saved targets: {', '.join(store.targets().target_id)}" if store is not None else ""
    raise UnknownTarget(f"unknown target {spec!r}; use {', '.join(TARGETS.names())} or the name of a saved "
                        f"target{known}")


__all__ = ["BUILTIN_TARGETS", "Capabilities", "DEFAULT_TARGET", "RUNNABLE_BACKENDS", "Generation", "LocalTarget",
           "Target", "TargetInfo", "TargetUnavailable", "UnknownTarget", "register_backend", "register_target",
           "resolve_target"]
