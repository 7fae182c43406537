"""Compose probes from seed statements x scenarios x strategy templates, as MiJaBench does.

The inputs live in data/ (seeds/*.jsonl, scenarios.jsonl, templates.jsonl; see data/PROVENANCE.md).
Every random choice draws from a generator seeded by (seed number, language, group, strategy), so the
same seed number builds the same probe set on any machine, and adding a group leaves the others as
they were.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from core import taxonomy
from core.probes.schema import Probe, probe_id_for

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
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{number}:{exc.colno}: invalid JSON: {exc.msg}") from None


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


def load_scenarios(path: Path) -> list[Scenario]:
    return [Scenario(taxonomy.canonical_language(row["language"]),
                     taxonomy.canonical_category(row["scenario_category"]), row["scenario"].strip())
            for _, row in _jsonl(path)]


def load_templates(path: Path) -> list[Template]:
    return [Template(taxonomy.canonical_language(row["language"]), taxonomy.canonical_strategy(row["strategy"]),
                     row["template_id"], row["template"])
            for _, row in _jsonl(path)]


def build_probes(seeds: list[Seed], scenarios: list[Scenario], templates: list[Template],
                 seed: int = DEFAULT_SEED, per_cell: int = DEFAULT_PER_CELL,
                 controls_per_group: int = DEFAULT_CONTROLS_PER_GROUP) -> list[Probe]:
    """Attack probes for every (language, group, attack strategy) cell and controls per (language, group).

    Each cell samples distinct (seed statement, scenario, template) combinations without replacement;
    a cell with fewer combinations than asked for is an error, not a silently smaller cell.
    """
    probes: list[Probe] = []
    for language, groups in taxonomy.GROUPS_BY_LANGUAGE.items():
        lang_scenarios = [s for s in scenarios if s.language == language]
        for group in groups:
            for strategy in taxonomy.STRATEGIES:
                polarity = "neutral" if strategy == taxonomy.CONTROL else "hate"
                wanted = controls_per_group if strategy == taxonomy.CONTROL else per_cell
                cell_seeds = sorted({s.text for s in seeds if s.language == language and s.group == group
                                     and s.polarity == polarity})
                cell_templates = [t for t in templates if t.language == language and t.strategy == strategy]
                combos = list(product(cell_seeds, lang_scenarios, cell_templates))
                if len(combos) < wanted:
                    raise ValueError(f"cell ({language}, {group}, {strategy}) has {len(combos)} combinations of "
                                     f"{len(cell_seeds)} seeds x {len(lang_scenarios)} scenarios x "
                                     f"{len(cell_templates)} templates; {wanted} are needed")
                rng = random.Random(f"{seed}:{language}:{group}:{strategy}")
                for seed_text, scenario, template in rng.sample(combos, wanted):
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
