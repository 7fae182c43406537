"""Judge registry: a name from the CLI or the app becomes a Judge.

Names are what the judge modules register (JUDGES in core/judges/base.py): `refusal` (the offline heuristic,
core/judges/refusal.py); `llm:<target spec>` (the rubric judge, core/judges/rubric.py, on any target:
`llm:smollm2`, `llm:openai:MODEL@URL`, `llm:<saved target>`); `ensemble:<judge>+<judge>+...` (majority vote,
core/judges/ensemble.py), or a bare `ensemble` in a list of judges, which votes over the other judges of that
list (resolve_judges); `learned:PATH` (a classifier fitted by `python -m core judge-train`,
core/judges/learned.py; the project ships `learned:data/judges/learned-gptfuzz.json`); `encoder:PATH` (a fine-tuned
all-MiniLM-L6-v2, core/judges/encoder.py) and `average:PATH` (its mean with the n-gram model trained with it; the
project ships `data/judges/encoder-minilm.safetensors`). Every judge answers the question in
core/judges/base.py QUESTIONS (did the answer deliver the requested hateful content / refuse the benign request).
`human` verdicts are
written by the dashboard, never computed. To add a judge: a function decorated with
`@register_judge("name", "one line of help")` in its module, and the module named in JUDGES' providers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.judges.base import JUDGES, Judge, JudgeContext, JudgeItem, UnknownJudge, Verdict, register_judge, version_of

# The default is the shipped `average:` judge (the fine-tuned encoder's probability averaged with the n-gram judge's):
# it is the candidate that beats `refusal` on the project's held-out labels (judge_eval_fresh.csv and
# judge_eval_third.csv, scored out of fold; the rules' development sets do not count) in both languages, on accuracy
# and kappa (the encoder file's "decision" and its "choice"; `judge-train` prints them, and tests/judges/test_learned.py
# and tests/judges/test_encoder.py keep this line and that decision in step).
DEFAULT_JUDGE = "average:data/judges/encoder-minilm.safetensors"
DEFAULT_JUDGES: tuple[str, ...] = (DEFAULT_JUDGE,)


def relies_on_rules(judge: str) -> bool:
    """Whether a judge's verdicts come from the `refusal` judge's phrase tables: `refusal` itself, a `learned:`
    judge (its inputs are those rules' signals), an `average:` judge (half of it is such a judge) or an ensemble with
    such a member. For a language without a rules
    file (core.judges.refusal.unsupported) such figures deserve a warning; an `llm:` judge reads any language."""
    name = str(judge).strip()
    if name.startswith("ensemble:"):
        return any(relies_on_rules(member) for member in name.removeprefix("ensemble:").split("+"))
    return name == "refusal" or name.startswith(("learned:", "average:"))


def known_judges() -> str:
    """How every registered judge is written, for help and error messages."""
    return JUDGES.known()


def _find(name: str):
    found = JUDGES.find(name)
    if found is None:
        raise UnknownJudge(f"unknown judge {name!r}; known judges: {known_judges()}")
    return found[0], found[1].strip()


def _context(store: Any, max_new_tokens: int | None, listed: Sequence[str] | None) -> JudgeContext:
    """A context whose members are shared: a member named twice is one object that remembers its last batch,
    so no batch is judged twice by a model."""
    from core.judges.ensemble import MemoJudge

    shared: dict[str, Judge] = {}

    def member(name: str) -> Judge:
        if name not in shared:
            shared[name] = MemoJudge(resolve_judge(name, store, max_new_tokens))
        return shared[name]

    return JudgeContext(store, max_new_tokens, None if listed is None else tuple(listed), member)


def resolve_judge(name: str, store: Any = None, max_new_tokens: int | None = None) -> Judge:
    """The judge a name stands for; `store` lets `llm:` use a target saved in the store by name, and
    `max_new_tokens` bounds an `llm:` judge's answer (default: rubric.PREFILL_MAX_NEW_TOKENS for a target that
    can prefill the answer, else rubric.DEFAULT_MAX_NEW_TOKENS)."""
    entry, rest = _find(name.strip())
    return entry.build(rest, _context(store, max_new_tokens, None))


def resolve_judges(names: Sequence[str], store: Any = None, max_new_tokens: int | None = None) -> list[Judge]:
    """Judges for a list of names, in order. Ensembles share their members with the list: a member that is
    also listed is one object that remembers its last batch, so no batch is judged twice by a model."""
    names = [n.strip() for n in names if n.strip()]
    found = {name: JUDGES.find(name) for name in names}
    combined = any(f is not None and f[0].traits.get("combines") for f in found.values())
    context = _context(store, max_new_tokens, names)
    judges: list[Judge] = []
    for name in names:
        entry, rest = _find(name)
        if entry.traits.get("combines"):
            judges.append(entry.build(rest, context))
        else:
            judges.append(context.member(name) if combined else resolve_judge(name, store, max_new_tokens))
    return judges


__all__ = ["DEFAULT_JUDGE", "DEFAULT_JUDGES", "JUDGES", "Judge", "JudgeContext", "JudgeItem", "UnknownJudge", "Verdict",
           "known_judges", "register_judge", "relies_on_rules", "resolve_judge", "resolve_judges", "version_of"]
