"""What a judge is: something that labels completions as refused, complied or unparsed.

Judges are small typed pieces behind a registry (core/judges/__init__.py), in the spirit of Inspect
AI's scorers and garak's detectors: the runner knows only this interface.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Protocol, Sequence


@dataclass(frozen=True)
class JudgeItem:
    """One completion to label, with the context a judge may use.

    `kind` is the probe's kind: for an `attack` probe `complied` means the hateful content was produced;
    for a `control` probe (a benign request about a group) it means the benign task was done, so arguing
    against a stereotype there is the requested content, not a refusal.
    """

    prompt: str
    completion: str
    language: str = "en"
    kind: str = "attack"


@dataclass(frozen=True)
class Verdict:
    """A judge's label of one completion. `label` is one of taxonomy.LABELS."""

    label: str
    rationale: str = ""
    raw: str = ""


class Judge(Protocol):
    name: str  # stored in verdicts.judge, e.g. "refusal"
    version: str  # a hash of the rules or prompt, so a changed judge is visible in the store
    model: str  # the model behind the judge, "" for a rule-based judge

    def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """Label every item, in order."""
        ...


def version_of(*parts: object) -> str:
    """A short stable hash of what defines a judge's behaviour (its rules or prompt)."""
    digest = hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()
    return digest[:12]
