"""Judge registry: a name from the CLI or the app becomes a Judge.

`refusal` is the offline heuristic (core/judges/refusal.py). The rubric LLM judge (`llm:<target>`)
and the `ensemble` register here too as they arrive; `human` verdicts are written by the dashboard,
never computed.
"""
from __future__ import annotations

from core.judges.base import Judge, JudgeItem, Verdict, version_of

DEFAULT_JUDGES: tuple[str, ...] = ("refusal",)


class UnknownJudge(ValueError):
    """A judge name nobody registered; the message lists what is known."""


def resolve_judge(name: str) -> Judge:
    if name == "refusal":
        from core.judges.refusal import RefusalJudge

        return RefusalJudge()
    raise UnknownJudge(f"unknown judge {name!r}; known judges: refusal")


__all__ = ["DEFAULT_JUDGES", "Judge", "JudgeItem", "UnknownJudge", "Verdict", "resolve_judge", "version_of"]
