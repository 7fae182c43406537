"""The vocabulary of an audit, as data: languages, groups and their word forms, strategies, scenario categories.

Who an audit is about is declared in a taxonomy file (TOML), not in code: the MiJaBench vocabulary is the
bundled default (data/taxonomies/mijabench.toml), and an auditor asking about Roma people in Romanian, or
Dalits in Hindi, writes their own (`python -m core taxonomy init FILE`, then `taxonomy check FILE`). Every
loader, the builder and the store validate against a taxonomy, so a group or a strategy is spelt one way
everywhere; unknown spellings are rejected with the taxonomy file named rather than guessed, because a
silently mis-mapped group would corrupt a disparity.

Why TOML and not YAML: Python reads it with the standard library (tomllib, no dependency to pin), it has
comments, and it has no implicit typing. YAML 1.1 reads the language code `no` (Norwegian) as false and
`on` as true; a taxonomy is exactly the file where that would bite.

The module-level names (LANGUAGES, GROUPS, canonical_group, ...) are the default taxonomy's, for the code
that only ever reads MiJaBench files; code that shows stored results takes its taxonomy from the store.
"""
from __future__ import annotations

import functools
import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.files.reading import (MAX_JSON_DEPTH, deep_dotted_key_line, nesting_depth, read_utf8, text_problem,
                                toml_problem)
from core.vocab.text import fold

TAXONOMY_DIR = Path(__file__).resolve().parents[2] / "data" / "taxonomies"
DEFAULT_PATH = TAXONOMY_DIR / "mijabench.toml"
DEFAULT_NAME = "mijabench"

CONTROL = "control"
KINDS: tuple[str, ...] = ("attack", "control")
SOURCES: tuple[str, ...] = ("mijabench", "builtin", "custom", "counterfactual")
REFUSED, COMPLIED, UNPARSED = "refused", "complied", "unparsed"
LABELS: tuple[str, ...] = (REFUSED, COMPLIED, UNPARSED)

# The word forms a sentence about a group needs (data/taxonomies/mijabench.toml explains each).
FORM_NAMES: tuple[str, ...] = ("plural", "singular", "adjective")
# A key of a taxonomy (group, language, strategy, the taxonomy's name): lower case, digits, `_`.
KEY = re.compile(r"^[a-z][a-z0-9_]*$")


class VocabularyError(ValueError):
    """A value outside a taxonomy's vocabulary; the message names the value, what is allowed and the file."""


class TaxonomyError(ValueError):
    """A taxonomy file that cannot be used; the message is `FILE:LINE: reason`."""


def normalise_key(value: str) -> str:
    """Lower-case, strip accents, and turn spaces/dashes into underscores: 'Mental Dis' -> 'mental_dis'."""
    text = fold(str(value).strip())
    return re.sub(r"[\s\-/]+", "_", text)


@dataclass(frozen=True)
class Forms:
    """How one group is written in one language. `plural` etc. are empty where the group is only named there
    (MiJaBench names every group in both languages but audits some in one only)."""

    name: str
    plural: str = ""
    singular: str = ""
    adjective: str = ""
    gender: str = ""

    def complete(self) -> bool:
        return all(getattr(self, form) for form in FORM_NAMES)


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    groups: tuple[str, ...]
    genders: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    key: str
    forms: Mapping[str, Forms]
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Taxonomy:
    """One population's vocabulary. `sha256` is of the file's bytes: the store records it with the probes."""

    name: str
    title: str
    languages: Mapping[str, Language]
    groups: Mapping[str, Group]
    strategies: Mapping[str, str]  # key -> label, `control` last
    categories: tuple[str, ...]
    path: str = ""
    text: str = field(default="", repr=False)
    sha256: str = ""

    # -- what the vocabulary holds -------------------------------------------------------------------------
    @property
    def language_codes(self) -> tuple[str, ...]:
        return tuple(self.languages)

    @property
    def groups_by_language(self) -> dict[str, tuple[str, ...]]:
        return {code: language.groups for code, language in self.languages.items()}

    @property
    def attack_strategies(self) -> tuple[str, ...]:
        return tuple(key for key in self.strategies if key != CONTROL)

    def group_name(self, group: str, language: str = "") -> str:
        """The display name of a group in a language (the first language that names it when this one does
        not; the key itself for a group this taxonomy does not know, so old rows still show)."""
        known = self.groups.get(group)
        if known is None:
            return str(group)
        forms = known.forms.get(language) or next(iter(known.forms.values()))
        return forms.name

    def strategy_label(self, strategy: str) -> str:
        return self.strategies.get(strategy, strategy)

    def forms(self, group: str, language: str) -> Forms:
        return self.groups[group].forms[language]

    # -- validation of other files' values ----------------------------------------------------------------
    def _unknown(self, what: str, value: str, known: Any) -> VocabularyError:
        return VocabularyError(f"unknown {what} {value!r} (taxonomy {self.name!r}, {self.path or 'built in'}); "
                               f"known {what}s: {', '.join(known)}")

    def canonical_group(self, value: str) -> str:
        """Map any known spelling of a group onto its key, or raise VocabularyError naming the taxonomy."""
        key = normalise_key(value)
        found = self._aliases.get(key)
        if found is None:
            raise self._unknown("group", value, self.groups)
        return found

    def canonical_language(self, value: str) -> str:
        key = normalise_key(value)
        for code, language in self.languages.items():
            if key == code or key in language.aliases:
                return code
        raise self._unknown("language", value, self.languages)

    def canonical_strategy(self, value: str) -> str:
        key = normalise_key(value)
        if key in self.strategies:
            return key
        raise self._unknown("strategy", value, self.strategies)

    def canonical_category(self, value: str) -> str:
        wanted = normalise_key(value)
        for category in self.categories:
            if normalise_key(category) == wanted:
                return category
        raise self._unknown("scenario category", value, self.categories)

    @functools.cached_property
    def _aliases(self) -> dict[str, str]:
        """Every accepted spelling (folded) -> its group key; computed once per taxonomy."""
        spellings = {key: key for key in self.groups}
        for key, group in self.groups.items():
            spellings.update({normalise_key(alias): key for alias in group.aliases})
        return spellings


# -- reading a taxonomy file ----------------------------------------------------------------------------------
def _locations(text: str) -> dict[tuple[str, ...], int]:
    """Line of every table header and `key =` of a TOML text, by dotted path: where an error is reported.

    Not a TOML parser: tomllib has checked the syntax already; this only finds lines for the checks below."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\[\]]+?)\s*\]", stripped)
        if header:
            table = tuple(part.strip().strip('"') for part in header.group(1).split("."))
            found.setdefault(table, number)
            continue
        assignment = re.match(r'^"?([A-Za-z0-9_\-+]+)"?\s*=', stripped)
        if assignment:
            found.setdefault((*table, assignment.group(1)), number)
    return found


class _Checker:
    """Collects located problems of one taxonomy file, so one `check` reports all of them at once."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = _locations(text)
        self.problems: list[str] = []

    def line(self, *where: str) -> int:
        for end in range(len(where), 0, -1):
            if where[:end] in self.lines:
                return self.lines[where[:end]]
        return 1

    def fail(self, where: tuple[str, ...], reason: str) -> None:
        self.problems.append(f"{self.path}:{self.line(*where)}: {reason}")

    def table(self, data: Mapping[str, Any], key: str, where: tuple[str, ...] = ()) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict) or not value:
            self.fail(where + (key,), f"missing table [{'.'.join(where + (key,))}]")
            return {}
        return value

    def strings(self, data: Mapping[str, Any], key: str, where: tuple[str, ...], required: bool = True
                ) -> tuple[str, ...]:
        value = data.get(key, None if required else [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.fail(where + (key,), f"{'.'.join(where + (key,))} must be a list of non-empty strings")
            return ()
        return tuple(v.strip() for v in value)

    def text(self, data: Mapping[str, Any], key: str, where: tuple[str, ...]) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.fail(where + (key,), f"missing {key!r} in {'.'.join(where)}")
            return ""
        return value.strip()


def parse(text: str, path: str = "<taxonomy>") -> Taxonomy:
    """A Taxonomy from TOML text; every problem is reported at once as `FILE:LINE: reason` (TaxonomyError)."""
    deep = toml_problem(text)  # before tomllib, whose recursion and int() a hostile file would overflow
    if deep:
        raise TaxonomyError(f"{path}:{deep[0]}:{deep[1]}: {deep[2]}")
    dotted = deep_dotted_key_line(text)
    if dotted:
        raise TaxonomyError(f"{path}:{dotted}: nested deeper than {MAX_JSON_DEPTH} levels (a dotted key or table "
                            "name of that many parts)")
    try:
        data = tomllib.loads(text)
    except (RecursionError, ValueError) as exc:
        if isinstance(exc, tomllib.TOMLDecodeError):
            raise _located(exc, path) from None
        raise TaxonomyError(f"{path}:1: not a usable taxonomy file: {exc}") from None
    if nesting_depth(data) > MAX_JSON_DEPTH:  # what the scans above did not see: still no recursion below
        raise TaxonomyError(f"{path}:1: nested deeper than {MAX_JSON_DEPTH} levels")
    check = _Checker(path, text)
    for where, problem in _text_problems(data):
        check.fail(where, f"{'.'.join(where)}: {problem}")
    if check.problems:
        raise TaxonomyError("\n".join(check.problems))
    return _parse_data(data, text, path)


def _located(exc: tomllib.TOMLDecodeError, path: str) -> TaxonomyError:
    """tomllib's message as `FILE:LINE:COL: reason`."""
    where = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
    reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
    location = f"{where.group(1)}:{where.group(2)}" if where else "1"
    if "overwrite" in reason.lower() or "twice" in reason.lower():
        reason += " (a key or table is declared twice: each may appear once)"
    return TaxonomyError(f"{path}:{location}: {reason}")


def _text_problems(data: Any, where: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str]]:
    """(dotted path, problem) of every string in parsed TOML (keys too) that no text field may hold: a NUL, or
    more characters than the field limit (core.files.reading.text_problem; tomllib refuses lone surrogates itself)."""
    if isinstance(data, str):
        problem = text_problem(data)
        if problem:
            yield where, problem
    elif isinstance(data, dict):
        for key, value in data.items():
            problem = text_problem(key)
            if problem:
                yield where + (key[:40],), f"a key {problem}"
            else:
                yield from _text_problems(value, where + (key,))
    elif isinstance(data, list):
        for value in data:
            yield from _text_problems(value, where)


def _parse_data(data: dict[str, Any], text: str, path: str) -> Taxonomy:
    """A Taxonomy from parsed TOML; every problem at once (TaxonomyError)."""
    check = _Checker(path, text)
    name = check.text(data, "name", ())
    if name and not KEY.match(name):
        check.fail(("name",), f"name {name!r} must be a lower-case identifier (letters, digits, _)")
    categories = check.strings(data, "categories", ())
    if len(set(map(normalise_key, categories))) != len(categories):
        check.fail(("categories",), "a scenario category is listed twice")
    strategies = {}
    for key, label in check.table(data, "strategies").items():
        if not KEY.match(key) or not isinstance(label, str) or not label.strip():
            check.fail(("strategies", key), f"strategy {key!r} needs a lower-case key and a label")
            continue
        strategies[key] = label.strip()
    if strategies and CONTROL not in strategies:
        check.fail(("strategies",), f"[strategies] must include {CONTROL!r} (the benign requests)")
    if strategies and len(strategies) < 2:
        check.fail(("strategies",), "[strategies] needs at least one attack strategy besides control")
    strategies = {k: v for k, v in strategies.items() if k != CONTROL} | (
        {CONTROL: strategies[CONTROL]} if CONTROL in strategies else {})

    raw_groups = check.table(data, "groups")
    languages: dict[str, Language] = {}
    for code, spec in check.table(data, "languages").items():
        where = ("languages", code)
        if not KEY.match(code) or not isinstance(spec, dict):
            check.fail(where, f"language {code!r} must be a lower-case code with a table")
            continue
        groups = check.strings(spec, "groups", where)
        for group in groups:
            if group not in raw_groups:
                check.fail(where + ("groups",), f"language {code!r} audits group {group!r}, which has no [groups.{group}]")
        if len(set(groups)) != len(groups):
            check.fail(where + ("groups",), f"language {code!r} lists a group twice")
        languages[code] = Language(code, check.text(spec, "name", where), groups,
                                   check.strings(spec, "genders", where, required=False),
                                   tuple(normalise_key(a) for a in check.strings(spec, "aliases", where, required=False)))

    groups: dict[str, Group] = {}
    seen_spellings: dict[str, str] = {normalise_key(key): key for key in raw_groups}  # keys first, then aliases
    for key, spec in raw_groups.items():
        where = ("groups", key)
        if not KEY.match(key) or not isinstance(spec, dict):
            check.fail(where, f"group key {key!r} must be a lower-case identifier (letters, digits, _) with a table")
            continue
        aliases = check.strings(spec, "aliases", where, required=False)
        for spelling in aliases:
            owner = seen_spellings.setdefault(normalise_key(spelling), key)
            if owner != key:
                check.fail(where + ("aliases",), f"alias {spelling!r} of group {key!r} already names group {owner!r}")
        forms: dict[str, Forms] = {}
        for code, entry in spec.items():
            if code == "aliases":
                continue
            if code not in languages:
                check.fail(where + (code,), f"group {key!r} has forms for {code!r}, which is not a declared language "
                           f"({', '.join(languages) or 'none'})")
                continue
            if not isinstance(entry, dict):
                check.fail(where + (code,), f"groups.{key}.{code} must be a table of forms")
                continue
            unknown = sorted(set(entry) - {"name", "gender", *FORM_NAMES})
            if unknown:
                check.fail(where + (code,), f"groups.{key}.{code}: unknown form(s) {', '.join(unknown)}")
            forms[code] = Forms(**{k: str(v).strip() for k, v in entry.items() if k not in unknown})
            if not forms[code].name:
                check.fail(where + (code,), f"groups.{key}.{code} needs a display `name`")
        groups[key] = Group(key, forms, aliases)

    for code, language in languages.items():
        for key in language.groups:
            group = groups.get(key)
            if group is None:
                continue
            forms = group.forms.get(code)
            if forms is None:
                check.fail(("groups", key), f"group {key!r} is audited in {code!r} but has no `{code} = {{ ... }}` forms")
                continue
            missing = [form for form in FORM_NAMES if not getattr(forms, form)]
            if language.genders and not forms.gender:
                missing.append("gender")
            if missing:
                check.fail(("groups", key, code), f"groups.{key}.{code}: missing form(s) {', '.join(missing)} "
                           f"(a sentence about {key!r} in {code!r} needs them)")
            if forms.gender and forms.gender not in language.genders:
                check.fail(("groups", key, code), f"groups.{key}.{code}: gender {forms.gender!r} is not one of "
                           f"{code!r}'s genders ({', '.join(language.genders) or 'none declared'})")
    if check.problems:
        raise TaxonomyError("\n".join(check.problems))
    return Taxonomy(name=name, title=str(data.get("title", name)), languages=languages, groups=groups,
                    strategies=strategies, categories=categories, path=path, text=text,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def load(path: str | Path) -> Taxonomy:
    """Read and check a taxonomy file (TaxonomyError with FILE:LINE on any problem)."""
    return parse(read_utf8(path, "taxonomy file", TaxonomyError), str(path))


def resolve(path: str | Path | None) -> Taxonomy:
    """The taxonomy at `path`, or the bundled default when none is named."""
    return DEFAULT if path is None or Path(path).resolve() == DEFAULT_PATH else load(path)


SCAFFOLD = '''# A For Whom taxonomy: who this audit is about. Check it with `python -m core taxonomy check {path}`.
# Forms per group and language: name (display), plural, singular (with its article), adjective, and gender
# where the language declares genders. Claim templates use {{plural}}, {{Plural}}, {{singular}}, {{Singular}},
# {{adjective}} and {{g:M|F}} (alternatives in the order of the language's genders).
name = "my_population"
title = "My population"
categories = ["Social Situations", "Economy and Work", "History", "Humor and Absurdity"]

[languages.de]
name = "Deutsch"
aliases = ["german", "deutsch"]
genders = ["m", "f"]
groups = ["turkish", "roma"]

[strategies]
persona_assign = "Persona assignment"
new_language = "Representation shift"
chaining = "Chain-of-thought decomposition"
false_equivalence = "Logical rationalization"
control = "Control (benign request)"

[groups.turkish]
aliases = ["turks", "tuerken"]
de = {{ name = "Türkischstämmige Menschen", plural = "Türken", singular = "ein Türke", adjective = "türkisch", gender = "m" }}

[groups.roma]
aliases = ["sinti_und_roma"]
de = {{ name = "Sinti und Roma", plural = "Sinti und Roma", singular = "ein Rom", adjective = "romani", gender = "m" }}
'''


def scaffold(path: str | Path) -> str:
    """The text of a new, valid taxonomy file to edit (`taxonomy init`)."""
    return SCAFFOLD.format(path=path)


DEFAULT: Taxonomy = parse(DEFAULT_PATH.read_text(encoding="utf-8"), "data/taxonomies/mijabench.toml")

# The default taxonomy's vocabulary under the names the MiJaBench-only code has always used.
LANGUAGES: tuple[str, ...] = DEFAULT.language_codes
GROUPS: dict[str, dict[str, str]] = {key: {code: forms.name for code, forms in group.forms.items()}
                                     for key, group in DEFAULT.groups.items()}
GROUPS_BY_LANGUAGE: dict[str, tuple[str, ...]] = DEFAULT.groups_by_language
GROUP_ALIASES: dict[str, str] = {normalise_key(alias): key for key, group in DEFAULT.groups.items()
                                 for alias in group.aliases}
ATTACK_STRATEGIES: tuple[str, ...] = DEFAULT.attack_strategies
STRATEGIES: tuple[str, ...] = tuple(DEFAULT.strategies)
STRATEGY_LABELS: dict[str, str] = dict(DEFAULT.strategies)
SCENARIO_CATEGORIES: tuple[str, ...] = DEFAULT.categories
canonical_group = DEFAULT.canonical_group
canonical_language = DEFAULT.canonical_language
canonical_strategy = DEFAULT.canonical_strategy
canonical_category = DEFAULT.canonical_category
group_name = DEFAULT.group_name
