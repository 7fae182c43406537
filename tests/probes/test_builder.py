"""The probe builder: deterministic, every cell filled, the bundled file up to date."""
from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from core.vocab import taxonomy
from core.probes.builder import BUNDLED_PROBES, DATA_DIR, build_bundled, load_seeds
from core.probes.loader import load_probes


def test_same_seed_same_probes_other_seed_other_probes():
    first = build_bundled(seed=7)
    assert build_bundled(seed=7) == first
    other = build_bundled(seed=8)
    assert {p.probe_id for p in other} != {p.probe_id for p in first}
    assert len(other) == len(first)


def test_every_cell_has_at_least_twenty_attack_probes_and_controls():
    probes = build_bundled()
    cells = Counter((p.language, p.group, p.strategy) for p in probes)
    for language, groups in taxonomy.GROUPS_BY_LANGUAGE.items():
        for group in groups:
            for strategy in taxonomy.ATTACK_STRATEGIES:
                assert cells[(language, group, strategy)] >= 20, (language, group, strategy)
            assert cells[(language, group, "control")] >= 5, (language, group)
    assert {p.group for p in probes if p.language == "en"} == set(taxonomy.GROUPS_BY_LANGUAGE["en"])
    assert {p.group for p in probes if p.language == "pt"} == set(taxonomy.GROUPS_BY_LANGUAGE["pt"])
    assert len({p.probe_id for p in probes}) == len(probes)
    assert all(p.kind == ("control" if p.strategy == "control" else "attack") for p in probes)
    # every prompt carries its seed statement and its scenario
    assert all(p.seed_text in p.prompt and p.scenario in p.prompt for p in probes)


def test_bundled_file_is_what_the_builder_makes():
    """data/probes/builtin.jsonl must be regenerated (python -m core probes build) when its inputs change."""
    shipped = load_probes(BUNDLED_PROBES, default_source="builtin")
    assert shipped.problems == []
    assert shipped.probes == build_bundled()


def test_inputs_cover_all_scenario_categories_in_both_languages():
    rows = [json.loads(line) for line in (DATA_DIR / "scenarios.jsonl").read_text(encoding="utf-8").splitlines()]
    counts = Counter((r["language"], r["scenario_category"]) for r in rows)
    for language in taxonomy.LANGUAGES:
        for category in taxonomy.SCENARIO_CATEGORIES:
            assert counts[(language, category)] >= 3, (language, category)
    templates = [json.loads(line) for line in (DATA_DIR / "templates.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {(t["language"], t["strategy"]) for t in templates} == {
        (lang, s) for lang in taxonomy.LANGUAGES for s in taxonomy.STRATEGIES}
    seeds = [json.loads(line) for line in (DATA_DIR / "seeds" / "pt.jsonl").read_text(encoding="utf-8").splitlines()]
    assert all(s["origin"] in ("translated:toxigen", "written:for-whom") for s in seeds)


def test_design_is_matched_across_groups():
    """Every group gets the same (scenario, strategy) slots, so each probe has counterfactuals in every group."""
    probes = build_bundled()
    for language, groups in taxonomy.GROUPS_BY_LANGUAGE.items():
        for strategy in taxonomy.STRATEGIES:
            slots = {group: sorted(p.scenario for p in probes
                                   if p.language == language and p.group == group and p.strategy == strategy)
                     for group in groups}
            first = slots[groups[0]]
            assert all(s == first for s in slots.values()), (language, strategy)
            assert len(set(first)) == len(first)  # one probe per scenario: the counterfactual key is unique


def test_a_bad_seed_file_names_its_file_line_and_column(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    good = '{"language": "en", "group": "women", "polarity": "hate", "text": "a seed\u2028with a line separator"}'
    assert [s.text for s in load_seeds([_written(seeds, [good, ""])])] == ["a seed\u2028with a line separator"]
    with pytest.raises(ValueError, match=rf"^{re.escape(str(seeds))}:2:14: invalid JSON"):
        load_seeds([_written(seeds, [good, '{"language": }'])])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(seeds))}:3: expected a JSON object per line"):
        load_seeds([_written(seeds, [good, "", '["en", "women"]'])])
    with pytest.raises(ValueError, match=rf"^{re.escape(str(seeds))}:1: bad seed row: 'polarity'"):
        load_seeds([_written(seeds, ['{"language": "en", "group": "women", "text": "x"}'])])


def _written(path, lines: list[str]):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
