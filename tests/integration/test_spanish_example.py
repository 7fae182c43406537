"""The Spanish worked example (examples/es/): a taxonomy, claims, scenarios and templates that the counterfactual
builder can fill for every group, checked as the builder and a reviewer would read them.

Why these checks: a claim with a slot the builder does not know, a {g:..} with the wrong number of alternatives,
a scenario in a category the taxonomy lacks, or a strategy without templates would fail the build (or, worse,
print a broken sentence for one group only, which is a difference between groups that is not the group's).
"""
from __future__ import annotations

import json
import re

import pytest

from core.vocab import taxonomy
from tests.fixtures.paths import ROOT

EXAMPLE = ROOT / "examples" / "es"
SLOTS = {"plural", "Plural", "singular", "Singular", "adjective"}
_SLOT = re.compile(r"\{([^{}]*)\}")
CLAIM_FIELDS = {"claim_id", "language", "polarity", "template", "source"}
SOURCE_FIELDS = {"file", "line", "group", "text"}


def _rows(name: str) -> list[dict]:
    lines = (EXAMPLE / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def es() -> taxonomy.Taxonomy:
    return taxonomy.load(EXAMPLE / "taxonomy.toml")


def test_the_taxonomy_loads_with_six_complete_groups(es):
    assert es.name == "es_example" and es.language_codes == ("es",)
    language = es.languages["es"]
    assert language.name == "Español" and language.genders == ("m", "f")
    assert set(language.aliases) >= {"spanish", "espanol", "es_es", "es_mx"}
    assert es.canonical_language("es-MX") == es.canonical_language("Español") == "es"
    assert len(language.groups) == 6 == len(es.groups)
    for key in language.groups:
        forms = es.forms(key, "es")
        assert forms.complete() and forms.name and forms.gender in ("m", "f"), key
    assert {es.forms(k, "es").gender for k in language.groups} == {"m", "f"}  # both agreements are exercised
    assert es.canonical_group("gitanos") == "roma" and es.canonical_group("Mujeres") == "women"


def test_the_taxonomy_has_the_strategies_and_default_categories(es):
    assert es.attack_strategies == taxonomy.ATTACK_STRATEGIES and list(es.strategies)[-1] == taxonomy.CONTROL
    assert 6 <= len(es.categories) <= 10 and set(es.categories) <= set(taxonomy.SCENARIO_CATEGORIES)


def test_every_claim_row_is_valid(es):
    claims = _rows("claims.jsonl")
    assert sum(c["polarity"] == "hate" for c in claims) >= 16 and sum(c["polarity"] == "neutral" for c in claims) >= 6
    assert len({c["claim_id"] for c in claims}) == len(claims)
    genders = len(es.languages["es"].genders)
    for claim in claims:
        assert set(claim) == CLAIM_FIELDS and set(claim["source"]) == SOURCE_FIELDS, claim["claim_id"]
        assert re.fullmatch(r"es-\d{3}", claim["claim_id"]) and claim["language"] == "es"
        assert claim["polarity"] in ("hate", "neutral")
        template = claim["template"]
        assert template.count("{") == template.count("}"), claim["claim_id"]
        slots = _SLOT.findall(template)
        assert slots and any(s in ("plural", "Plural", "singular", "Singular") for s in slots), claim["claim_id"]
        for slot in slots:
            if slot.startswith("g:"):
                alternatives = slot[2:].split("|")
                assert len(alternatives) == genders and all(a.strip() for a in alternatives), (claim["claim_id"], slot)
            else:
                assert slot in SLOTS, (claim["claim_id"], slot)


def _fill(template: str, forms: taxonomy.Forms, genders: tuple[str, ...]) -> str:
    """What a claim says about one group (the builder's job; here only to read every group's sentence)."""
    def slot(match: re.Match) -> str:
        name = match.group(1)
        if name.startswith("g:"):
            return name[2:].split("|")[genders.index(forms.gender)]
        value = getattr(forms, name.lower())
        return value[:1].upper() + value[1:] if name[0].isupper() else value
    return _SLOT.sub(slot, template)


def test_claims_read_as_claims_about_any_group(es):
    """No claim names a group of its own: filled for each group it changes only in the group's words."""
    genders = es.languages["es"].genders
    names = [w for k in es.groups for w in (es.forms(k, "es").plural, es.forms(k, "es").singular)]
    for claim in _rows("claims.jsonl"):
        assert not any(n.lower() in claim["template"].lower() for n in names), claim["claim_id"]
        filled = {k: _fill(claim["template"], es.forms(k, "es"), genders) for k in es.languages["es"].groups}
        assert "{" not in "".join(filled.values()) and len(set(filled.values())) == len(filled)
    women = _fill("{g:los|las} {plural} son {g:vagos|vagas}", es.forms("women", "es"), genders)
    roma = _fill("{g:los|las} {plural} son {g:vagos|vagas}", es.forms("roma", "es"), genders)
    assert (women, roma) == ("las mujeres son vagas", "los gitanos son vagos")


def test_claim_sources_exist_as_recorded():
    cache: dict[str, list[str]] = {}
    for claim in _rows("claims.jsonl"):
        source = claim["source"]
        assert source["file"].startswith("data/seeds/"), claim["claim_id"]
        lines = cache.setdefault(source["file"], (ROOT / source["file"]).read_text(encoding="utf-8").splitlines())
        assert 1 <= source["line"] <= len(lines), claim["claim_id"]
        seed = json.loads(lines[source["line"] - 1])
        assert (seed["text"], seed["group"]) == (source["text"], source["group"]), claim["claim_id"]
        assert seed["polarity"] == claim["polarity"], claim["claim_id"]


def test_scenarios_are_spanish_and_in_the_taxonomys_categories(es):
    scenarios = _rows("scenarios.jsonl")
    assert len(scenarios) >= 24 and len({s["scenario"] for s in scenarios}) == len(scenarios)
    for row in scenarios:
        assert set(row) == {"language", "scenario_category", "scenario"} and row["language"] == "es"
        assert es.canonical_category(row["scenario_category"]) == row["scenario_category"]
        assert 8 <= len(row["scenario"].split()) <= 30 and "{" not in row["scenario"]
    assert {s["scenario_category"] for s in scenarios} == set(es.categories)  # every category has scenarios


def test_every_strategy_has_two_templates_that_fill(es):
    templates = _rows("templates.jsonl")
    for strategy in es.strategies:
        mine = [t for t in templates if t["strategy"] == strategy]
        assert len(mine) >= 2, strategy
        for n, row in enumerate(mine, start=1):
            assert set(row) == {"language", "strategy", "template_id", "template"} and row["language"] == "es"
            assert row["template_id"] == f"es-{strategy}-{n}"
            text = row["template"]
            assert sorted(_SLOT.findall(text)) == ["group_name", "scenario", "seed"], row["template_id"]
            assert len(text) < 700
            text.format(scenario="S.", seed="x", group_name="g")  # fills with str.format, as the builder does
    assert len({t["template_id"] for t in templates}) == len(templates)


def test_the_readme_has_the_content_warning_and_the_walk_through():
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    assert readme.lstrip().startswith("<!--") and "content warning" in readme.lower().split("-->")[0]
    for command in ("taxonomy check examples/es/taxonomy.toml", "probes build --counterfactual",
                    "probes import examples/es/probes.jsonl", "--db data/es.duckdb", "core matched --db"):
        assert command in readme, command
    provenance = (EXAMPLE / "PROVENANCE.md").read_text(encoding="utf-8")
    assert "ToxiGen" in provenance and "MIT" in provenance


def test_the_counterfactual_builder_accepts_the_example(es, tmp_path):
    from core.probes.counterfactual import build_from_files, load_claims, siblings
    from core.probes.loader import load_probes, write_probes
    from core.store import Store

    claims = load_claims(EXAMPLE / "claims.jsonl", es)
    assert [c.claim_id for c in claims] == [row["claim_id"] for row in _rows("claims.jsonl")]
    probes = build_from_files(EXAMPLE / "taxonomy.toml", EXAMPLE / "claims.jsonl", EXAMPLE / "scenarios.jsonl",
                              EXAMPLE / "templates.jsonl")
    hate = sum(c.polarity == "hate" for c in claims)
    assert len(probes) == 6 * (hate * 4 + (len(claims) - hate))  # six groups x (4 attacks per hate claim + 1 control)
    for family in siblings(probes).values():
        assert sorted(p.group for p in family) == sorted(es.languages["es"].groups)
        assert len({(p.scenario, p.strategy) for p in family}) == 1  # they differ only in the group's words
    women = next(p for p in probes if p.group == "women" and p.claim_id == "es-005")
    assert "las mujeres son vagas por naturaleza" in women.prompt and "mujeres" in women.prompt
    out = tmp_path / "probes.jsonl"
    write_probes(out, probes, taxonomy_file=EXAMPLE / "taxonomy.toml")
    result = load_probes(out, default_source="counterfactual")
    store = Store(tmp_path / "es.duckdb")
    assert store.add_probes(result.probes, result.taxonomy) == len(probes)
    assert store.taxonomy().languages["es"].name == "Español"
