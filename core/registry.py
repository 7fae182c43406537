"""A registry of named kinds (targets, judges): filled where each kind is defined, read by help and errors.

Why: the list of what a spec string may name lived in `if`/`startswith` chains and a hand-kept help string
that drifted from them. Here a kind registers itself next to its code with a one-line help, so adding one
is one decorated function in its own module, and every listing (CLI help, `UnknownTarget`, `UnknownJudge`)
is read from the same table.

A key is either an exact name (`smollm2`, `refusal`) or a prefix ending in `:` (`local:`, `llm:`) whose
remainder the builder reads. The modules that register are imported on first use (`providers`), so importing
the registry, or a package that holds one, loads no model library.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered kind: how its spec is written, what it is, and the function that builds it."""

    key: str  # an exact name, or a prefix ending in ":"
    usage: str  # how a user writes it, e.g. "local:PATH"
    help: str  # one line
    build: Callable[..., T]
    traits: Mapping[str, Any] = field(default_factory=dict)  # what the kind's own resolver needs to know
    module: str = ""  # where it was registered: listings follow the providers' order, whatever was imported first

    @property
    def prefix(self) -> bool:
        return self.key.endswith(":")


class Registry(Generic[T]):
    """Kinds of one sort (targets or judges), matched by exact name first, then by prefix."""

    def __init__(self, sort: str, providers: Sequence[str] = ()) -> None:
        self.sort = sort
        self._providers = tuple(providers)
        self._entries: dict[str, Entry[T]] = {}
        self._loaded = False

    def register(self, key: str, help: str, usage: str | None = None, **traits: Any) -> Callable[[F], F]:
        """Decorate the function that builds this kind; a key registered twice is a programming error."""
        def add(build: F) -> F:
            if key in self._entries:
                raise ValueError(f"{self.sort} {key!r} is registered twice")
            self._entries[key] = Entry(key, usage or key, help, build, dict(traits), build.__module__)
            return build
        return add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._providers:
                importlib.import_module(module)

    def entries(self) -> list[Entry[T]]:
        """Every registered kind in the providers' order (a kind registered elsewhere, e.g. by a test, last),
        then in registration order within a module, so listings do not depend on which module was imported first."""
        self._load()
        rank = {module: i for i, module in enumerate(self._providers)}
        ordered = sorted(enumerate(self._entries.values()), key=lambda e: (rank.get(e[1].module, len(rank)), e[0]))
        return [entry for _, entry in ordered]

    def find(self, spec: str) -> tuple[Entry[T], str] | None:
        """The entry a spec names and the rest of the spec after its prefix ("" for an exact name), or None."""
        self._load()
        exact = self._entries.get(spec)
        if exact is not None and not exact.prefix:
            return exact, ""
        for entry in self.entries():
            if entry.prefix and spec.startswith(entry.key):
                return entry, spec[len(entry.key):]
        return None

    def names(self) -> list[str]:
        """How each kind is written, for a one-line list in an error message."""
        return [entry.usage for entry in self.entries()]

    def known(self) -> str:
        return ", ".join(self.names())

    def describe(self) -> str:
        """`usage: help` of every kind, for CLI help text."""
        return "; ".join(f"{entry.usage}: {entry.help}" for entry in self.entries())
