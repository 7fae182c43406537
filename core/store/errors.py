"""The store's errors: problems a user can act on, each message saying what and where."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.vocab.taxonomy import VocabularyError


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


class ProbeChanged(StoreError):
    """Probes whose ids are stored already with other content (`probes import`): nothing was written. `changed`
    holds (stored, given) per probe; `differences()` names the fields that differ in each."""

    def __init__(self, changed: Sequence[tuple[Any, Any]]) -> None:
        self.changed = list(changed)
        first = self.differences()[0]
        super().__init__(f"probe {first[0]!r} is stored with other content ({', '.join(first[1])} differ); "
                         "nothing was written")

    @staticmethod
    def fields(stored: Any, given: Any) -> list[str]:
        """The names of the fields in which two versions of a probe differ (a NULL equals an empty text)."""
        return [name for name, value in vars(given).items() if (getattr(stored, name) or "") != (value or "")]

    def differences(self) -> list[tuple[str, list[str]]]:
        """(probe_id, names of the fields that differ) per changed probe."""
        return [(given.probe_id, self.fields(stored, given)) for stored, given in self.changed]


class DumpFileError(StoreError):
    """A dump that cannot be restored, `FILE:LINE: reason`; nothing was written. The CLI exits 2 (bad input)."""
