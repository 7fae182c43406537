"""Counterfactual probes: one claim template, scenario, strategy and strategy template, filled for every group.

Why: the matched-seed builder (core/probes/builder.py) gives every group the same scenarios and templates, but
each group keeps its own seed statements, so a group's Defense Rate still mixes who it is with what it was
accused of. Here the claim itself is shared: a template such as "{Plural} cannot be trusted" is filled with each
group's word forms (data/taxonomies/*.toml), so the probes of one `counterfactual_id` differ only in the group's
words, and a difference in refusals between them is the model's reaction to the group alone.

Claims live in a JSONL file (data/counterfactual/claims.jsonl for the bundled set, written by
scripts/derive_counterfactual_claims.py), one object a line:
    {"claim_id": "en-001", "language": "en", "polarity": "hate"|"neutral", "template": "... {plural} ...",
     "source": {...}}
Slots: {plural} {Plural} {singular} {Singular} {adjective} (a capitalised slot upper-cases its first character)
and {g:A|B} for a word that agrees with the group's grammatical gender, alternatives in the order of the
language's `genders`. Hate claims are crossed with every attack strategy, neutral claims with `control`.
"""
from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.files.reading import json_objects, read_utf8
from core.probes.builder import DATA_DIR, DEFAULT_SEED, Scenario, Template, load_scenarios, load_templates
from core.probes.schema import Probe, probe_id_for
from core.vocab import taxonomy

BUNDLED_CLAIMS = DATA_DIR / "counterfactual" / "claims.jsonl"
COUNTERFACTUAL_PROBES = DATA_DIR / "probes" / "counterfactual.jsonl"
POLARITIES: tuple[str, ...] = ("hate", "neutral")
FORM_SLOTS: dict[str, str] = {"plural": "plural", "Plural": "plural", "singular": "singular",
                              "Singular": "singular", "adjective": "adjective"}
_SLOT = re.compile(r"\{([^{}]*)\}")


class CounterfactualError(ValueError):
    """A claims file (or the inputs of a counterfactual build) that cannot be used: `FILE:LINE: reason` lines."""


@dataclass(frozen=True)
class Claim:
    """One claim template of a language; `source` records the seed it was derived from (free-form)."""

    claim_id: str
    language: str
    polarity: str  # "hate" (crossed with the attack strategies) or "neutral" (with control)
    template: str
    source: Mapping[str, Any] = field(default_factory=dict, compare=False)


# -- slots ---------------------------------------------------------------------------------------------------
def _slots(template: str) -> list[re.Match[str]]:
    return list(_SLOT.finditer(template))


def _render(template: str, value: Callable[[str], str]) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The template with each slot replaced by value(slot), and the (start, end) span of every filled slot."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = length = 0
    for match in _slots(template):
        literal = template[position:match.start()]
        parts.append(literal)
        length += len(literal)
        filled = value(match.group(1))
        parts.append(filled)
        spans.append((length, length + len(filled)))
        length += len(filled)
        position = match.end()
    parts.append(template[position:])
    return "".join(parts), tuple(spans)


def fill_spans(template: str, forms: taxonomy.Forms, language: taxonomy.Language
               ) -> tuple[str, tuple[tuple[int, int], ...]]:
    """The claim filled for one group, with the spans of the group's words in it (what siblings may differ in:
    the tests mask them, a page can highlight them)."""
    def value(slot: str) -> str:
        if slot in FORM_SLOTS:
            text = getattr(forms, FORM_SLOTS[slot])
            if not text:
                raise CounterfactualError(f"{forms.name!r} has no {FORM_SLOTS[slot]} form in {language.code!r}")
            return text[:1].upper() + text[1:] if slot[:1].isupper() else text
        if slot.startswith("g:"):
            alternatives = slot[2:].split("|")
            if forms.gender not in language.genders or len(alternatives) != len(language.genders):
                raise CounterfactualError(f"slot {{{slot}}} cannot agree with {forms.name!r} in {language.code!r} "
                                          f"(gender {forms.gender or 'none'}, genders {language.genders})")
            return alternatives[language.genders.index(forms.gender)]
        raise CounterfactualError(f"unknown slot {{{slot}}}")
    return _render(template, value)


def fill(template: str, forms: taxonomy.Forms, language: taxonomy.Language) -> str:
    """The claim template filled with one group's word forms in `language`."""
    return fill_spans(template, forms, language)[0]


def _template_problems(template: str, language: taxonomy.Language, vocabulary: taxonomy.Taxonomy) -> list[str]:
    """Why a template cannot be filled for every group of its language (empty: it can)."""
    problems = []
    rest = _SLOT.sub("", template)
    if "{" in rest or "}" in rest:
        problems.append("unbalanced brace: write slots as {plural}, {g:A|B}, ...")
    for match in _slots(template):
        slot = match.group(1)
        if slot in FORM_SLOTS:
            form = FORM_SLOTS[slot]
            missing = [group for group in language.groups
                       if not getattr(vocabulary.groups[group].forms.get(language.code), form, "")]
            if missing:
                problems.append(f"slot {{{slot}}} cannot be filled for {', '.join(missing)} in {language.code!r}: "
                                f"no {form} form in taxonomy {vocabulary.name!r}")
        elif slot.startswith("g:"):
            count = len(slot[2:].split("|"))
            if not language.genders:
                problems.append(f"slot {{{slot}}}: language {language.code!r} has no genders in taxonomy "
                                f"{vocabulary.name!r}; write the word without a gender slot")
            elif count != len(language.genders):
                problems.append(f"slot {{{slot}}} has {count} alternative(s); {language.code!r} has "
                                f"{len(language.genders)} genders ({', '.join(language.genders)}), one each, in that "
                                "order")
        else:
            problems.append(f"unknown slot {{{slot}}}; known slots: "
                            f"{', '.join('{' + s + '}' for s in FORM_SLOTS)}, {{g:A|B}}")
    return problems


# -- reading a claims file -----------------------------------------------------------------------------------
def load_claims(path: str | Path, vocabulary: taxonomy.Taxonomy = taxonomy.DEFAULT) -> list[Claim]:
    """Read and check a claims file against a taxonomy; every bad row is reported at once (CounterfactualError,
    one `FILE:LINE: reason` a line), so a claims file is fixed in one pass rather than one error at a time."""
    path = Path(path)
    text = read_utf8(path, "claims file", CounterfactualError)
    claims: list[Claim] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, row in json_objects(text, path):
        if isinstance(row, str):
            problems.append(row)
            continue
        where = f"{path}:{number}"
        reasons: list[str] = []
        claim_id, template, polarity = row.get("claim_id"), row.get("template"), row.get("polarity")
        if not isinstance(claim_id, str) or not claim_id.strip():
            reasons.append("missing claim_id")
            claim_id = ""
        elif claim_id.strip() in seen:
            reasons.append(f"duplicate claim_id {claim_id.strip()!r} (first on line {seen[claim_id.strip()]})")
        else:
            seen[claim_id.strip()] = number
        language = None
        try:
            language = vocabulary.languages[vocabulary.canonical_language(str(row.get("language", "")))]
        except taxonomy.VocabularyError:
            reasons.append(f"unknown language {row.get('language')!r}; taxonomy {vocabulary.name!r} "
                           f"({vocabulary.path or 'built in'}) has {', '.join(vocabulary.languages)}")
        if polarity not in POLARITIES:
            reasons.append(f"unknown polarity {polarity!r}; use {' or '.join(POLARITIES)}")
        if not isinstance(template, str) or not template.strip():
            reasons.append("empty template")
        elif language is not None:
            reasons.extend(_template_problems(template, language, vocabulary))
        source = row.get("source", {})
        if not isinstance(source, dict):
            reasons.append("source must be a JSON object")
        problems.extend(f"{where}: {reason}" for reason in reasons)
        if not reasons:
            claims.append(Claim(claim_id.strip(), language.code, polarity, template.strip(), source))
    if not problems and not claims:
        problems.append(f"{path}:1: no claims in the file")
    if problems:
        raise CounterfactualError("\n".join(problems))
    return claims


def first_claims(claims: Sequence[Claim], per_language_polarity: int | None) -> list[Claim]:
    """The first N claims of each (language, polarity), in file order: a short run's set (--max-claims)."""
    if per_language_polarity is None:
        return list(claims)
    kept: dict[tuple[str, str], int] = {}
    chosen = []
    for claim in claims:
        key = (claim.language, claim.polarity)
        if kept.get(key, 0) < per_language_polarity:
            kept[key] = kept.get(key, 0) + 1
            chosen.append(claim)
    return chosen


# -- building probes -----------------------------------------------------------------------------------------
def counterfactual_id_for(language: str, claim_id: str, strategy: str, template_id: str, scenario: str) -> str:
    """A stable id of what the sibling probes share, so rebuilding gives the same ids on any machine."""
    key = "\x1f".join((language, claim_id, strategy, template_id, scenario))
    return f"cf-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:12]}"


def build_counterfactual(vocabulary: taxonomy.Taxonomy, claims: Sequence[Claim], scenarios: Sequence[Scenario],
                         templates: Sequence[Template], seed: int = DEFAULT_SEED) -> list[Probe]:
    """One probe per group of the claim's language for every (hate claim x attack strategy) and (neutral claim x
    control) of each language.

    The scenario and strategy template are drawn once per (claim, strategy), by a generator seeded with (seed,
    language, claim_id, strategy), and shared by all groups: that is what makes the siblings counterfactual. The
    scenario's category is drawn first, uniformly over the categories the language has scenarios in, so claims
    spread over categories rather than over however many scenarios each category happens to hold. Seeding by the
    claim (not its position) keeps every other claim's probes as they were when a claim is added or removed.
    """
    probes: list[Probe] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for code, language in vocabulary.languages.items():
        lang_claims = [claim for claim in claims if claim.language == code]
        if not lang_claims:
            continue
        by_category: dict[str, list[Scenario]] = {}
        for scenario in scenarios:
            if scenario.language == code:
                by_category.setdefault(scenario.scenario_category, []).append(scenario)
        categories = [category for category in vocabulary.categories if category in by_category]
        if not categories:
            raise CounterfactualError(f"no scenarios for language {code!r}: the scenarios file needs some")
        for claim in lang_claims:
            strategies = vocabulary.attack_strategies if claim.polarity == "hate" else (taxonomy.CONTROL,)
            for strategy in strategies:
                choices = [t for t in templates if t.language == code and t.strategy == strategy]
                if not choices:
                    problems.append(f"no {strategy} template for language {code!r} (claim {claim.claim_id})")
                    continue
                rng = random.Random(f"{seed}:{code}:{claim.claim_id}:{strategy}")
                scenario = rng.choice(by_category[rng.choice(categories)])
                template = rng.choice(choices)
                cf_id = counterfactual_id_for(code, claim.claim_id, strategy, template.template_id, scenario.scenario)
                for group in language.groups:
                    forms = vocabulary.forms(group, code)
                    text = fill(claim.template, forms, language)
                    try:
                        prompt = template.template.format(scenario=scenario.scenario, seed=text,
                                                          group_name=forms.plural)
                    except (KeyError, IndexError, ValueError) as exc:
                        raise CounterfactualError(f"template {template.template_id!r} does not fill with {{scenario}}, "
                                                  f"{{seed}} and {{group_name}} alone: {exc}") from None
                    kind = "control" if strategy == taxonomy.CONTROL else "attack"
                    probe_id = probe_id_for(code, group, strategy, prompt, "counterfactual")
                    if probe_id in seen:
                        problems.append(f"claims {seen[probe_id]} and {claim.claim_id} give the same probe for "
                                        f"({code}, {group}, {strategy}): make their templates differ")
                        continue
                    seen[probe_id] = claim.claim_id
                    probes.append(Probe(probe_id=probe_id, language=code, group=group, seed_text=text,
                                        scenario_category=scenario.scenario_category, scenario=scenario.scenario,
                                        strategy=strategy, prompt=prompt, kind=kind, source="counterfactual",
                                        counterfactual_id=cf_id, claim_id=claim.claim_id, taxonomy=vocabulary.name))
    if problems:
        raise CounterfactualError("\n".join(problems))
    if not probes:
        raise CounterfactualError(f"no claim is in a language of taxonomy {vocabulary.name!r} "
                                  f"({', '.join(vocabulary.languages)}): nothing to build")
    return probes


def build_from_files(taxonomy_file: str | Path | None = None, claims_file: str | Path | None = None,
                     scenarios_file: str | Path | None = None, templates_file: str | Path | None = None,
                     seed: int = DEFAULT_SEED, max_claims: int | None = None) -> list[Probe]:
    """A counterfactual set from files, each defaulting to the bundled one (taxonomy: the default; claims:
    data/counterfactual/claims.jsonl; scenarios and templates: data/). Any unusable file raises
    CounterfactualError (or taxonomy.TaxonomyError) with its located message, before anything is built."""
    vocabulary = taxonomy.resolve(taxonomy_file)
    claims = first_claims(load_claims(claims_file or BUNDLED_CLAIMS, vocabulary), max_claims)
    try:
        scenarios = load_scenarios(Path(scenarios_file or DATA_DIR / "scenarios.jsonl"), vocabulary)
        templates = load_templates(Path(templates_file or DATA_DIR / "templates.jsonl"), vocabulary)
    except OSError as exc:
        raise CounterfactualError(f"{exc.filename}:1: cannot read: {exc.strerror}") from None
    except ValueError as exc:  # the builder's loaders: `FILE:LINE: reason`
        raise CounterfactualError(str(exc)) from None
    return build_counterfactual(vocabulary, claims, scenarios, templates, seed)


def build_bundled_counterfactual(seed: int = DEFAULT_SEED, max_claims: int | None = None) -> list[Probe]:
    """The shipped counterfactual set (data/probes/counterfactual.jsonl is this, written by the CLI)."""
    return build_from_files(seed=seed, max_claims=max_claims)


def siblings(probes: Iterable[Probe]) -> dict[str, list[Probe]]:
    """Probes grouped by counterfactual_id (probes without one are left out)."""
    found: dict[str, list[Probe]] = {}
    for probe in probes:
        if probe.counterfactual_id:
            found.setdefault(probe.counterfactual_id, []).append(probe)
    return found
