"""Judge registry: a name from the CLI or the app becomes a Judge.

Names: `refusal` (the offline heuristic, core/judges/refusal.py); `llm:<target spec>` (the rubric judge,
core/judges/rubric.py, on any target: `llm:smollm2`, `llm:openai:MODEL@URL`, `llm:<saved target>`);
`ensemble:<judge>+<judge>+...` (majority vote, core/judges/ensemble.py), or a bare `ensemble` in a list
of judges, which votes over the other judges of that list (resolve_judges); `learned:PATH` (a classifier
fitted by `python -m core judge-train`, core/judges/learned.py; the project ships
`learned:data/judges/learned-gptfuzz.json`). `human` verdicts are written by the dashboard, never computed.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.judges.base import Judge, JudgeItem, Verdict, version_of

# `refusal` stays the default: the shipped learned judge does not beat it on the project's held-out labels in
# both languages (its file's "decision"; `judge-train` prints it, and tests/test_judge_learned.py keeps this
# line and that decision in step).
DEFAULT_JUDGES: tuple[str, ...] = ("refusal",)


class UnknownJudge(ValueError):
    """A judge name nobody registered; the message lists what is known."""


KNOWN_JUDGES = ("refusal, llm:<target spec> (e.g. llm:smollm2), ensemble:<judge>+<judge>+..., "
                "learned:PATH (e.g. learned:data/judges/learned-gptfuzz.json)")


def resolve_judge(name: str, store: Any = None, max_new_tokens: int | None = None) -> Judge:
    """The judge a name stands for; `store` lets `llm:` use a target saved in the store by name, and
    `max_new_tokens` bounds an `llm:` judge's answer (default: rubric.PREFILL_MAX_NEW_TOKENS for a target that
    can prefill the answer, else rubric.DEFAULT_MAX_NEW_TOKENS)."""
    name = name.strip()
    if name == "refusal":
        from core.judges.refusal import RefusalJudge

        return RefusalJudge()
    if name.startswith("llm:"):
        spec = name.removeprefix("llm:").strip()
        if not spec:
            raise UnknownJudge("llm: needs a target spec, e.g. llm:smollm2 or llm:openai:MODEL@BASE_URL")
        from core.judges.rubric import RubricJudge
        from core.targets import UnknownTarget

        try:
            return RubricJudge(spec, store=store, max_new_tokens=max_new_tokens)
        except UnknownTarget as exc:
            raise UnknownJudge(f"judge {name!r}: {exc}") from None
    if name.startswith("learned:"):
        spec = name.removeprefix("learned:").strip()
        if not spec:
            raise UnknownJudge("learned: needs a model file, e.g. learned:data/judges/learned-gptfuzz.json "
                               "(fit one with `python -m core judge-train`)")
        from core.judges.learned import LearnedJudgeError, resolve

        try:
            return resolve(spec)
        except LearnedJudgeError as exc:
            raise UnknownJudge(str(exc)) from None
    if name.startswith("ensemble:"):
        return resolve_judges([name], store, max_new_tokens)[0]
    if name == "ensemble":
        raise UnknownJudge("a bare `ensemble` votes over the other judges listed with it (e.g. "
                           "refusal,llm:smollm2,ensemble); alone, name its members: ensemble:refusal+llm:smollm2")
    raise UnknownJudge(f"unknown judge {name!r}; known judges: {KNOWN_JUDGES}")


def resolve_judges(names: Sequence[str], store: Any = None, max_new_tokens: int | None = None) -> list[Judge]:
    """Judges for a list of names, in order. Ensembles share their members with the list: a member that is
    also listed is one object that remembers its last batch, so no batch is judged twice by a model."""
    from core.judges.ensemble import EnsembleJudge, MemoJudge

    names = [n.strip() for n in names if n.strip()]
    shared: dict[str, Judge] = {}

    def member(name: str) -> Judge:
        if name not in shared:
            shared[name] = MemoJudge(resolve_judge(name, store, max_new_tokens))
        return shared[name]

    judges: list[Judge] = []
    for name in names:
        if name == "ensemble":
            others = [n for n in names if n != "ensemble" and not n.startswith("ensemble:")]
            if len(others) < 2:
                raise UnknownJudge("`ensemble` votes over the other judges listed with it and needs at least "
                                   f"two of them (got {others or 'none'}); e.g. refusal,llm:smollm2,ensemble")
            judges.append(EnsembleJudge([member(n) for n in others], name="ensemble"))
        elif name.startswith("ensemble:"):
            parts = [p.strip() for p in name.removeprefix("ensemble:").split("+") if p.strip()]
            if len(parts) < 2 or any(p == "ensemble" or p.startswith("ensemble:") for p in parts):
                raise UnknownJudge(f"{name!r}: an ensemble needs at least two member judges, none of them an "
                                   "ensemble, e.g. ensemble:refusal+llm:smollm2")
            judges.append(EnsembleJudge([member(p) for p in parts], name=name))
        else:
            judges.append(member(name) if "ensemble" in names or any(
                n.startswith("ensemble:") for n in names) else resolve_judge(name, store, max_new_tokens))
    return judges


__all__ = ["DEFAULT_JUDGES", "KNOWN_JUDGES", "Judge", "JudgeItem", "UnknownJudge", "Verdict", "resolve_judge",
           "resolve_judges", "version_of"]
