"""Compose probes from seed statements x scenarios x strategy templates, as MiJaBench does.

The inputs live in data/ (seeds/*.jsonl, scenarios.jsonl, templates.jsonl; see data/PROVENANCE.md).
Every random choice draws from a generator seeded by the seed number and the cell it serves, so the
same seed number builds the same probe set on any machine, and adding a group leaves the others' probes
as they were.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from core.files.reading import json_objects, read_utf8
from core.probes.schema import Probe, probe_id_for
from core.vocab import taxonomy

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
BUNDLED_PROBES = DATA_DIR / "probes" / "builtin.jsonl"
DEFAULT_SEED = 20260101
DEFAULT_PER_CELL = 20
DEFAULT_CONTROLS_PER_GROUP = 10


@dataclass(frozen=True)
class Seed:
    language: str
    group: str
    polarity: str  # "hate" (attacks) or "neutral" (controls)
    text: str


@dataclass(frozen=True)
class Scenario:
    language: str
    scenario_category: str
    scenario: str


@dataclass(frozen=True)
class Template:
    language: str
    strategy: str
    template_id: str
    template: str


def _jsonl(path: Path) -> Iterable[tuple[int, dict]]:
    """(line, object) per record of a seed, scenario or template file; the first line that is not an accepted JSON
    object stops the build with its FILE:LINE[:COL] message (core.files.reading: read_utf8 for the file, json_objects for
    its lines), a ValueError."""
    for number, row in json_objects(read_utf8(path, "file", ValueError), path):
        if isinstance(row, str):
            raise ValueError(row)
        yield number, row


def load_seeds(paths: Iterable[Path]) -> list[Seed]:
    seeds = []
    for path in paths:
        for number, row in _jsonl(path):
            try:
                seeds.append(Seed(taxonomy.canonical_language(row["language"]),
                                  taxonomy.canonical_group(row["group"]), row["polarity"], row["text"].strip()))
            except (KeyError, taxonomy.VocabularyError) as exc:
                raise ValueError(f"{path}:{number}: bad seed row: {exc}") from None
    return seeds


def load_scenarios(path: Path, vocabulary: taxonomy.Taxonomy = taxonomy.DEFAULT) -> list[Scenario]:
    """Scenarios whose language and category `vocabulary` knows (a custom taxonomy passes its own); a bad row is
    reported as `FILE:LINE: reason`."""
    scenarios = []
    for number, row in _jsonl(path):
        try:
            scenarios.append(Scenario(vocabulary.canonical_language(row["language"]),
                                      vocabulary.canonical_category(row["scenario_category"]),
                                      row["scenario"].strip()))
        except (KeyError, AttributeError, TypeError, taxonomy.VocabularyError) as exc:
            raise ValueError(f"{path}:{number}: bad scenario row: {_reason(exc)}") from None
    return scenarios


def load_templates(path: Path, vocabulary: taxonomy.Taxonomy = taxonomy.DEFAULT) -> list[Template]:
    """Strategy templates whose language and strategy `vocabulary` knows; a bad row is `FILE:LINE: reason`."""
    templates = []
    for number, row in _jsonl(path):
        try:
            templates.append(Template(vocabulary.canonical_language(row["language"]),
                                      vocabulary.canonical_strategy(row["strategy"]), row["template_id"],
                                      row["template"]))
        except (KeyError, AttributeError, TypeError, taxonomy.VocabularyError) as exc:
            raise ValueError(f"{path}:{number}: bad template row: {_reason(exc)}") from None
    return templates


def _reason(exc: Exception) -> str:
    return f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)


def build_probes(seeds: list[Seed], scenarios: list[Scenario], templates: list[Template],
                 seed: int = DEFAULT_SEED, per_cell: int = DEFAULT_PER_CELL,
                 controls_per_group: int = DEFAULT_CONTROLS_PER_GROUP) -> list[Probe]:
    """Attack probes for every (language, group, attack strategy) cell and controls per (language, group).

    The design is matched across groups: for each (language, strategy) the builder draws one list of
    distinct (scenario, template) slots, and every group gets a probe in every slot, differing only in
    its own seed statement and name. Group differences in DR are then not confounded by which scenarios
    or templates a group happened to draw, and each probe has counterfactuals: the same scenario,
    strategy and template answered for every other group. Seeds are dealt round-robin from a shuffled
    list, so each of a group's seed statements is used about equally often.
    """
    probes: list[Probe] = []
    for language, groups in taxonomy.GROUPS_BY_LANGUAGE.items():
        lang_scenarios = [s for s in scenarios if s.language == language]
        for strategy in taxonomy.STRATEGIES:
            wanted = controls_per_group if strategy == taxonomy.CONTROL else per_cell
            polarity = "neutral" if strategy == taxonomy.CONTROL else "hate"
            strategy_templates = [t for t in templates if t.language == language and t.strategy == strategy]
            if len(lang_scenarios) < wanted or not strategy_templates:
                raise ValueError(f"({language}, {strategy}) needs {wanted} distinct scenarios and at least one "
                                 f"template; data/ has {len(lang_scenarios)} and {len(strategy_templates)}")
            rng = random.Random(f"{seed}:{language}:{strategy}")
            slots = [(scenario, rng.choice(strategy_templates)) for scenario in rng.sample(lang_scenarios, wanted)]
            for group in groups:
                group_seeds = sorted({s.text for s in seeds if s.language == language and s.group == group
                                      and s.polarity == polarity})
                if not group_seeds:
                    raise ValueError(f"no {polarity} seed statements for ({language}, {group}) in data/seeds")
                random.Random(f"{seed}:{language}:{group}:{strategy}").shuffle(group_seeds)
                for index, (scenario, template) in enumerate(slots):
                    seed_text = group_seeds[index % len(group_seeds)]
                    prompt = template.template.format(scenario=scenario.scenario, seed=seed_text,
                                                      group_name=taxonomy.group_name(group, language))
                    probes.append(Probe(
                        probe_id=probe_id_for(language, group, strategy, prompt, "builtin"),
                        language=language, group=group, seed_text=seed_text,
                        scenario_category=scenario.scenario_category, scenario=scenario.scenario,
                        strategy=strategy, prompt=prompt,
                        kind="control" if strategy == taxonomy.CONTROL else "attack", source="builtin"))
    return probes


def build_bundled(seed: int = DEFAULT_SEED, per_cell: int = DEFAULT_PER_CELL,
                  controls_per_group: int = DEFAULT_CONTROLS_PER_GROUP, data_dir: Path = DATA_DIR) -> list[Probe]:
    """The bundled probe set from the inputs shipped in data/."""
    seeds = load_seeds(sorted((data_dir / "seeds").glob("*.jsonl")))
    return build_probes(seeds, load_scenarios(data_dir / "scenarios.jsonl"),
                        load_templates(data_dir / "templates.jsonl"), seed, per_cell, controls_per_group)
