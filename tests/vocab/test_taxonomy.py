"""Taxonomy as data: the bundled default reproduces the MiJaBench vocabulary and the bundled probe ids; bad
taxonomy files are refused with FILE:LINE; the store records the taxonomy and keeps one population per file."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.vocab import taxonomy
from core.cli import main
from core.probes.builder import BUNDLED_PROBES, build_bundled
from core.probes.loader import ProbeFileError, load_probes, write_probes
from core.store import Store, TaxonomyConflict
from tests.fixtures.cli import run_cli


# The builtin probe file as it was before the vocabulary moved into data/taxonomies/mijabench.toml.
BUILTIN_SHA256 = "0186d14debf4eaa3151e0350f191c75239f1f82d2188f467de251f2795d59901"

GERMAN = """
name = "de_audit"
title = "Germany"
categories = ["Social Situations", "Economy and Work"]

[languages.de]
name = "German"
aliases = ["deutsch"]
genders = ["m", "f"]
groups = ["turkish", "roma"]

[strategies]
chaining = "Chain-of-thought decomposition"
control = "Control (benign request)"

[groups.turkish]
aliases = ["tuerken"]
de = { name = "Türkischstämmige", plural = "Türken", singular = "ein Türke", adjective = "türkisch", gender = "m" }

[groups.roma]
de = { name = "Sinti und Roma", plural = "Sinti und Roma", singular = "ein Rom", adjective = "romani", gender = "m" }
"""


def test_the_default_file_is_the_mijabench_vocabulary():
    words = taxonomy.DEFAULT
    assert words.name == "mijabench" and words.language_codes == ("en", "pt")
    assert len(words.groups_by_language["en"]) == 13 and len(words.groups_by_language["pt"]) == 9
    assert set(words.groups_by_language["en"]) & set(words.groups_by_language["pt"]) == {
        "black", "jewish", "muslim", "women", "lgbtq"}
    assert words.attack_strategies == ("persona_assign", "new_language", "chaining", "false_equivalence")
    assert len(words.categories) == 21 and "Humor and Absurdity" in words.categories
    assert words.group_name("mental_disability", "en") == "People with mental disabilities"
    assert words.group_name("black", "pt") == "Pessoas negras"
    assert words.canonical_group("Mental Dis") == "mental_disability"  # ToxiGen's spelling
    assert words.canonical_group("muçulmanos") == "muslim" and words.canonical_language("pt_br") == "pt"
    # every audited group has the forms a sentence needs, and a gender in Portuguese
    for code, language in words.languages.items():
        for key in language.groups:
            forms = words.forms(key, code)
            assert forms.complete() and (forms.gender in ("m", "f") if code == "pt" else not forms.gender)


def test_the_bundled_probe_set_is_unchanged_by_the_move_to_data():
    assert hashlib.sha256(BUNDLED_PROBES.read_bytes()).hexdigest() == BUILTIN_SHA256
    built = build_bundled()
    loaded = load_probes(BUNDLED_PROBES, default_source="builtin")
    assert [p.probe_id for p in built] == [p.probe_id for p in loaded.probes]
    assert loaded.taxonomy is taxonomy.DEFAULT and {p.taxonomy for p in loaded.probes} == {"mijabench"}


def test_an_unknown_group_is_refused_with_the_taxonomy_file_named():
    with pytest.raises(taxonomy.VocabularyError, match=r"unknown group 'roma' \(taxonomy 'mijabench', "
                                                       r"data/taxonomies/mijabench.toml\)"):
        taxonomy.DEFAULT.canonical_group("roma")


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "t.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(taxonomy.TaxonomyError) as caught:
        taxonomy.load(path)
    return str(caught.value).splitlines()


def _line_of(text: str, fragment: str) -> int:
    """The last line holding `fragment` (a key declared twice is reported where it comes again)."""
    return [number for number, line in enumerate(text.splitlines(), start=1) if fragment in line][-1]


BAD_CASES = [
    # (what to replace, with what, the line that must be named (a fragment of it), the reason's words)
    ('groups = ["turkish", "roma"]', 'groups = ["turkish", "roma", "ghost"]', 'groups = ["turkish"',
     "audits group 'ghost', which has no [groups.ghost]"),
    ('de = { name = "Sinti und Roma", plural = "Sinti und Roma", singular = "ein Rom", adjective = "romani", gender = "m" }',
     'de = { name = "Sinti und Roma", plural = "Sinti und Roma", adjective = "romani", gender = "m" }',
     'de = { name = "Sinti und Roma"', "missing form(s) singular"),
    ('singular = "ein Türke", adjective = "türkisch", gender = "m"', 'singular = "ein Türke", adjective = "türkisch"',
     'de = { name = "Türkischstämmige"', "missing form(s) gender"),
    ('gender = "m" }\n\n[groups.roma]', 'gender = "n" }\n\n[groups.roma]', 'de = { name = "Türkischstämmige"',
     "gender 'n' is not one of 'de''s genders (m, f)"),
    ('aliases = ["tuerken"]', 'aliases = ["tuerken"]\nfr = { name = "Turcs" }', 'fr = { name',
     "'fr', which is not a declared language"),
    ('aliases = ["tuerken"]', 'aliases = ["roma"]', 'aliases = ["roma"]', "alias 'roma' of group 'turkish' already names group 'roma'"),
    ('control = "Control (benign request)"', '', '[strategies]', "must include 'control'"),
    ('[groups.roma]', '[groups.turkish]', '[groups.turkish]', "declared twice: each may appear once"),
]


@pytest.mark.parametrize("old, new, where, reason", BAD_CASES)
def test_bad_taxonomies_are_refused_with_file_and_line(tmp_path, old, new, where, reason):
    assert old in GERMAN
    text = GERMAN.replace(old, new, 1)
    problems = _problems(tmp_path, text)
    expected_line = _line_of(text, where)
    assert any(p.startswith(f"{tmp_path / 't.toml'}:{expected_line}") and reason in p for p in problems), problems


def test_check_reports_every_problem_at_once_and_exits_2(tmp_path, capsys):
    text = GERMAN.replace('groups = ["turkish", "roma"]', 'groups = ["turkish", "roma", "ghost"]').replace(
        'aliases = ["tuerken"]', 'aliases = ["roma"]')
    path = tmp_path / "two.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["taxonomy", "check", str(path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith(f"error: {path}:") for line in err)


def test_init_writes_a_valid_file_and_never_overwrites(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    assert main(["taxonomy", "init", str(path)]) == 0
    assert main(["taxonomy", "check", str(path), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert checked["name"] == "my_population" and checked["languages"] == {"de": ["turkish", "roma"]}
    before = path.read_bytes()
    assert main(["taxonomy", "init", str(path)]) == 2
    assert "exists already" in capsys.readouterr().err and path.read_bytes() == before


def _german_probes(tmp_path: Path) -> Path:
    (tmp_path / "de.toml").write_text(GERMAN, encoding="utf-8")
    rows = [{"text": f"claim {i}", "group": group, "language": "deutsch", "scenario_category": "Economy and Work",
             "scenario": "s", "jb_strategy": strategy, "jb_prompt": f"prompt {i} {group} {strategy}",
             "taxonomy": "de.toml"}
            for i, (group, strategy) in enumerate([("turkish", "chaining"), ("roma", "chaining"),
                                                   ("tuerken", "control"), ("roma", "control")])]
    path = tmp_path / "de_probes.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_probe_file_names_its_taxonomy_and_is_validated_against_it(tmp_path):
    path = _german_probes(tmp_path)
    result = load_probes(path, default_source="custom")
    assert not result.problems and result.taxonomy.name == "de_audit"
    assert [p.group for p in result.probes] == ["turkish", "roma", "turkish", "roma"]
    assert {p.language for p in result.probes} == {"de"} and {p.taxonomy for p in result.probes} == {"de_audit"}
    # the default vocabulary refuses the same rows, naming its file
    mixed = path.read_text(encoding="utf-8").replace('"taxonomy": "de.toml"', '"taxonomy": "mijabench"')
    path.write_text(mixed, encoding="utf-8")
    refused = load_probes(path, default_source="custom")
    assert not refused.probes and "data/taxonomies/mijabench.toml" in str(refused.problems[0])
    # a written set names its taxonomy relative to itself and reads back the same
    out = tmp_path / "sub" / "again.jsonl"
    write_probes(out, result.probes, taxonomy_file=tmp_path / "de.toml")
    assert json.loads(out.read_text(encoding="utf-8").splitlines()[0])["taxonomy"] == "../de.toml"
    assert load_probes(out, default_source="custom").probes == result.probes


def test_a_probe_file_naming_a_broken_taxonomy_is_refused_with_its_line(tmp_path):
    path = _german_probes(tmp_path)
    (tmp_path / "de.toml").write_text(GERMAN.replace(', gender = "m" }\n\n[groups.roma]', ' }\n\n[groups.roma]'),
                                      encoding="utf-8")
    with pytest.raises(ProbeFileError, match=r"de_probes.jsonl:1: the taxonomy it names is not usable:\n.*de.toml:\d+: "
                                              r"groups.turkish.de: missing form\(s\) gender"):
        load_probes(path, default_source="custom")


def test_the_store_records_the_taxonomy_and_refuses_a_second_population(tmp_path):
    german = load_probes(_german_probes(tmp_path), default_source="custom")
    db = tmp_path / "de.duckdb"
    store = Store(db)
    assert store.add_probes(german.probes, german.taxonomy) == 4
    words = Store(db, readonly=True).taxonomy()
    assert words.name == "de_audit" and words.sha256 == german.taxonomy.sha256
    assert words.group_name("turkish", "de") == "Türkischstämmige"
    mijabench = load_probes(BUNDLED_PROBES, default_source="builtin").probes[:5]
    with pytest.raises(TaxonomyConflict, match=r"holds probes of taxonomy 'de_audit' .* these probes are of "
                                               r"taxonomy 'mijabench'.*another database"):
        store.add_probes(mijabench)
    assert len(store.probes()) == 4  # nothing of the refused set was stored
    # the CLI says the same and exits 2 (bad input), storing nothing
    out = run_cli("probes", "import", str(BUNDLED_PROBES), "--db", str(db), "--source", "builtin")
    assert out.returncode == 2 and "holds probes of taxonomy 'de_audit'" in out.stderr
    assert len(Store(db, readonly=True).probes()) == 4


def test_an_empty_or_default_database_reads_the_default_taxonomy(tmp_path):
    store = Store(tmp_path / "a.duckdb")
    assert store.taxonomy() is taxonomy.DEFAULT
    store.add_probes(load_probes(BUNDLED_PROBES, default_source="builtin").probes[:3])
    assert store.taxonomy() is taxonomy.DEFAULT


def test_importing_a_probe_file_whose_taxonomy_is_broken_exits_2_and_stores_nothing(tmp_path, capsys):
    path = _german_probes(tmp_path)
    (tmp_path / "de.toml").write_text(GERMAN.replace('[groups.roma]', '[groups.turkish]'), encoding="utf-8")
    db = tmp_path / "de.duckdb"
    assert main(["probes", "import", str(path), "--source", "custom", "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert "de_probes.jsonl:1: the taxonomy it names is not usable" in err and "de.toml:" in err
    assert not db.exists() or not Store(db, readonly=True).probes()
