"""Keeping API keys out of everything the product stores, logs or prints.

A server that refuses a key often echoes it back, and not always as sent: upper-cased, lower-cased, or cut to
its first characters. `redact(text)` masks, in any case, every stretch of the text made of 8-character
fragments of a key, so neither the whole key nor any 8 characters of it survive in a completion's error, a
run's message, a log file or a line on stderr. Keys shorter than 8 characters are masked where they appear
exactly.

Which keys: the values of the environment variables that API targets read their key from (OPENAI_API_KEY and
every variable a target names, registered by `watch_env` when the target is made) and any value registered with
`watch`. Values are read at the moment of redaction, so a key set after a target was made is covered too.
Callers: core.targets.openai (every message of a failed request), the store (every error and run message it
writes), core.run.runner and ui.jobs (messages of failed runs), the CLI (every error it prints, and its crash log).
"""
from __future__ import annotations

import functools
import os
import string
import threading
from collections.abc import Iterable

__all__ = ["MASK", "MIN_FRAGMENT", "redact", "watch", "watch_env"]

MASK = "***"
MIN_FRAGMENT = 8  # no run of this many characters of a key may survive
DEFAULT_KEY_ENV = "OPENAI_API_KEY"

_lock = threading.Lock()
_env_names: set[str] = {DEFAULT_KEY_ENV}
_values: set[str] = set()
# Lower-cases ASCII letters only, so the text keeps its length (str.lower() can lengthen some characters).
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def watch_env(name: str | None) -> None:
    """Treat the value of this environment variable (now or later) as a secret."""
    if name:
        with _lock:
            _env_names.add(name)


def watch(value: str | None) -> None:
    """Treat this value as a secret for the rest of the process."""
    if value:
        with _lock:
            _values.add(value)


def _secrets(extra: Iterable[str | None]) -> set[str]:
    with _lock:
        found = set(_values) | {os.environ.get(name, "") for name in _env_names}
    found.update(value for value in extra if value)
    found.discard("")
    return found


@functools.lru_cache(maxsize=64)
def _fragments(key: str) -> frozenset[str]:
    folded = key.translate(_FOLD)
    return frozenset(folded[i:i + MIN_FRAGMENT] for i in range(len(folded) - MIN_FRAGMENT + 1))


def redact(text: str | None, extra: Iterable[str | None] = ()) -> str | None:
    """`text` with every trace of a known key (and of `extra` values) replaced by ***; None stays None."""
    if not text:
        return text
    keys = _secrets(extra)
    if not keys:
        return text
    folded = text.translate(_FOLD)
    spans: list[tuple[int, int]] = []
    for key in keys:
        if len(key) < MIN_FRAGMENT:
            start = text.find(key)
            while start >= 0:
                spans.append((start, start + len(key)))
                start = text.find(key, start + 1)
            continue
        fragments = _fragments(key)
        for i in range(len(folded) - MIN_FRAGMENT + 1):
            if folded[i:i + MIN_FRAGMENT] in fragments:
                spans.append((i, i + MIN_FRAGMENT))
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    kept = 0
    end = -1
    for start, stop in spans:
        if start > end:  # a new masked stretch
            if end >= 0:
                parts.append(MASK)
            parts.append(text[kept:start])
        end = max(end, stop)
        kept = end
    parts.append(MASK)
    parts.append(text[kept:])
    return "".join(parts)
