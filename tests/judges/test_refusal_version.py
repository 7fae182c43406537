"""RefusalJudge.version changes whenever the judge's behaviour can: a rule file, the engine's code (its
regexes, signal kinds, the folding it uses) or the taxonomy's group names it reads. Before, it hashed the rule
tables only, so a logic change kept the version and `judge --rejudge` replaced nothing.

Each check runs a fresh interpreter on a copy of core/ and data/taxonomies/ (the judge computes its version at import), so the
same test runs against any checkout: on the code before the fix the engine and group-list checks fail.
"""
from __future__ import annotations

import pathlib
import shutil
import subprocess

from tests.fixtures.paths import PYTHON, ROOT

PRINT_VERSION = "from core.judges.refusal import RefusalJudge; print(RefusalJudge.version)"


def _version(tree: pathlib.Path, code: str = PRINT_VERSION) -> str:
    out = subprocess.run([PYTHON, "-c", code], cwd=tree, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"})
    return out.stdout.strip().splitlines()[-1]


def _copy(tmp_path: pathlib.Path) -> pathlib.Path:
    tree = tmp_path / "tree"
    shutil.copytree(ROOT / "core", tree / "core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "data" / "taxonomies", tree / "data" / "taxonomies")  # core.vocab.taxonomy reads it at import
    return tree


def test_a_copy_has_the_same_version(tmp_path):
    from core.judges.refusal import RefusalJudge

    assert _version(_copy(tmp_path)) == RefusalJudge.version


def test_engine_code_change_changes_the_version(tmp_path):
    tree = _copy(tmp_path)
    before = _version(tree)
    engine = tree / "core" / "judges" / "refusal.py"
    source = engine.read_text(encoding="utf-8")
    assert source.count('"counter-speech"') >= 1
    engine.write_text(source.replace('"counter-speech"', '"counter speech"'), encoding="utf-8")  # a signal kind
    assert _version(tree) != before


def test_group_list_change_changes_the_version(tmp_path):
    tree = _copy(tmp_path)
    before = _version(tree)
    patched = ("import core.vocab.taxonomy as t; t.GROUPS = {**t.GROUPS, 'martians': {'en': 'Martians', 'pt': 'Marcianos'}}; "
               + PRINT_VERSION)
    assert _version(tree, patched) != before
    aliased = "import core.vocab.taxonomy as t; t.GROUP_ALIASES = {**t.GROUP_ALIASES, 'moms': 'women'}; " + PRINT_VERSION
    assert _version(tree, aliased) != before


def test_rule_file_change_changes_the_version(tmp_path):
    tree = _copy(tmp_path)
    before = _version(tree)
    rules = tree / "core" / "judges" / "rules" / "en.toml"
    rules.write_text(rules.read_text(encoding="utf-8").replace("'nope\\b',", "'nope\\b', 'nah\\b',"), encoding="utf-8")
    after = _version(tree)
    code = "from core.judges.refusal import classify; print(classify('Nah, not doing it.').rationale)"
    assert after != before and _version(tree, code).startswith("refusal opening")


def test_folding_change_changes_the_version(tmp_path):
    tree = _copy(tmp_path)
    before = _version(tree)
    text = tree / "core" / "vocab" / "text.py"
    source = text.read_text(encoding="utf-8")
    assert '"\\u00b4": "\'",' in source
    text.write_text(source.replace('"\\u00b4": "\'",', ""), encoding="utf-8")  # "´" no longer a quote
    assert _version(tree) != before
