"""The fixed vocabulary of an audit: languages, groups, strategies, scenario categories, labels.

Every loader, the builder, the store and the pages use these names, so a group or a strategy is spelled
one way everywhere (see ../shared/design.md, "Vocabulary"). Unknown spellings are rejected with a
clear message rather than guessed, because a silently mis-mapped group would corrupt a disparity.
"""
from __future__ import annotations

import re

from core.text import fold

LANGUAGES: tuple[str, ...] = ("en", "pt")

# Canonical group key -> display name per language.
GROUPS: dict[str, dict[str, str]] = {
    "black": {"en": "Black people", "pt": "Pessoas negras"},
    "lgbtq": {"en": "LGBTQ+ people", "pt": "Pessoas LGBTQIA+"},
    "muslim": {"en": "Muslims", "pt": "Muçulmanos"},
    "latino": {"en": "Latino people", "pt": "Latinos"},
    "mexican": {"en": "Mexicans", "pt": "Mexicanos"},
    "jewish": {"en": "Jewish people", "pt": "Judeus"},
    "middle_east": {"en": "Middle Eastern people", "pt": "Pessoas do Oriente Médio"},
    "asian": {"en": "Asian people", "pt": "Pessoas asiáticas"},
    "native_american": {"en": "Native Americans", "pt": "Nativos americanos"},
    "women": {"en": "Women", "pt": "Mulheres"},
    "chinese": {"en": "Chinese people", "pt": "Chineses"},
    "mental_disability": {"en": "People with mental disabilities", "pt": "Pessoas com deficiência mental"},
    "physical_disability": {"en": "People with physical disabilities", "pt": "Pessoas com deficiência física"},
    "native_peoples": {"en": "Indigenous peoples", "pt": "Povos indígenas"},
    "immigrants": {"en": "Immigrants", "pt": "Imigrantes"},
    "disability": {"en": "People with disabilities", "pt": "Pessoas com deficiência"},
    "elderly": {"en": "Elderly people", "pt": "Pessoas idosas"},
}

# The groups each language of MiJaBench covers.
GROUPS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "en": (
        "black", "lgbtq", "muslim", "latino", "mexican", "jewish", "middle_east", "asian",
        "native_american", "women", "chinese", "mental_disability", "physical_disability",
    ),
    "pt": ("black", "jewish", "muslim", "women", "lgbtq", "native_peoples", "immigrants", "disability", "elderly"),
}

# Other spellings seen in ToxiGen, ToxSyn-PT and MiJaBench files, normalised (see normalise_key).
GROUP_ALIASES: dict[str, str] = {
    "mental_dis": "mental_disability",
    "physical_dis": "physical_disability",
    "lgbt": "lgbtq",
    "lgbtq+": "lgbtq",
    "lgbtqia": "lgbtq",
    "lgbtqia+": "lgbtq",
    "bisexual": "lgbtq",
    "trans": "lgbtq",
    "gay": "lgbtq",
    "jews": "jewish",
    "muslims": "muslim",
    "latinos": "latino",
    "latinx": "latino",
    "mexicans": "mexican",
    "middle_eastern": "middle_east",
    "asians": "asian",
    "native_americans": "native_american",
    "woman": "women",
    "female": "women",
    "blacks": "black",
    "black_people": "black",
    "negros": "black",
    "pessoas_negras": "black",
    "judeus": "jewish",
    "muculmanos": "muslim",
    "mulheres": "women",
    "indigenous": "native_peoples",
    "indigenas": "native_peoples",
    "povos_indigenas": "native_peoples",
    "immigrant": "immigrants",
    "imigrantes": "immigrants",
    "disabled": "disability",
    "pcd": "disability",
    "deficiencia": "disability",
    "pessoas_com_deficiencia": "disability",
    "elders": "elderly",
    "old_people": "elderly",
    "idosos": "elderly",
}

ATTACK_STRATEGIES: tuple[str, ...] = ("persona_assign", "new_language", "chaining", "false_equivalence")
CONTROL = "control"
STRATEGIES: tuple[str, ...] = ATTACK_STRATEGIES + (CONTROL,)
STRATEGY_LABELS: dict[str, str] = {
    "persona_assign": "Persona assignment",
    "new_language": "Representation shift",
    "chaining": "Chain-of-thought decomposition",
    "false_equivalence": "Logical rationalization",
    "control": "Control (benign request)",
}

KINDS: tuple[str, ...] = ("attack", "control")
SOURCES: tuple[str, ...] = ("mijabench", "builtin", "custom")

SCENARIO_CATEGORIES: tuple[str, ...] = (
    "History", "Natural Phenomena", "Cultural Events", "Futuristic Technologies", "Social Situations",
    "Abstract and Surreal Spaces", "Emotions and Mental States", "Mythology and Fantasy",
    "Games and Competitions", "Animals and Ecosystems", "Performing Actions", "Professions and Crafts",
    "Artistic Acts", "Scientific Exploration", "Travel and Commutes", "Conflicts and Challenges",
    "Unusual Communication", "Economy and Work", "Distorted Daily Life", "Religion and Spirituality",
    "Humor and Absurdity",
)

REFUSED, COMPLIED, UNPARSED = "refused", "complied", "unparsed"
LABELS: tuple[str, ...] = (REFUSED, COMPLIED, UNPARSED)


class VocabularyError(ValueError):
    """A value outside the fixed vocabulary; the message names the value and what is allowed."""


def normalise_key(value: str) -> str:
    """Lower-case, strip accents, and turn spaces/dashes into underscores: 'Mental Dis' -> 'mental_dis'."""
    text = fold(str(value).strip())
    return re.sub(r"[\s\-/]+", "_", text)


def canonical_group(value: str) -> str:
    """Map any known spelling of a group onto its canonical key, or raise VocabularyError."""
    key = normalise_key(value)
    if key in GROUPS:
        return key
    if key in GROUP_ALIASES:
        return GROUP_ALIASES[key]
    raise VocabularyError(f"unknown group {value!r}; known groups: {', '.join(GROUPS)}")


def canonical_strategy(value: str) -> str:
    key = normalise_key(value)
    if key in STRATEGIES:
        return key
    raise VocabularyError(f"unknown strategy {value!r}; known strategies: {', '.join(STRATEGIES)}")


def canonical_language(value: str) -> str:
    key = normalise_key(value)
    aliases = {"english": "en", "portuguese": "pt", "pt_br": "pt", "ptbr": "pt", "en_us": "en"}
    key = aliases.get(key, key)
    if key in LANGUAGES:
        return key
    raise VocabularyError(f"unknown language {value!r}; known languages: {', '.join(LANGUAGES)}")


def canonical_category(value: str) -> str:
    wanted = normalise_key(value)
    for category in SCENARIO_CATEGORIES:
        if normalise_key(category) == wanted:
            return category
    raise VocabularyError(f"unknown scenario category {value!r}; known: {', '.join(SCENARIO_CATEGORIES)}")


def group_name(group: str, language: str = "en") -> str:
    """The display name of a canonical group key in one language."""
    return GROUPS[group][language]
