"""The store's errors: problems a user can act on, each message saying what and where."""
from __future__ import annotations

from collections.abc import Sequence

from core.taxonomy import VocabularyError


class StoreError(RuntimeError):
    """A store problem a user can act on; the message says what and where."""


class StoreLocked(StoreError):
    """Another process holds the database file for writing."""


class VerdictImportError(StoreError):
    """Rows of a verdicts import that cannot be stored; `problems` are `SOURCE:LINE: reason`, and nothing was
    stored (the whole file lands or none of it)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"{self.problems[0]}{more}; nothing was stored")


class TaxonomyConflict(VocabularyError):
    """Probes of another population than the database holds (or of a taxonomy it has never stored): refused,
    nothing written. A VocabularyError, so the CLI exits 2 (bad input) with the message."""
