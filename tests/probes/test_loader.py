"""The MiJaBench-layout loader: good files in every format, bad rows reported with file, line and reason."""
from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from core.probes.builder import build_bundled
from core.probes.loader import ProbeFileError, load_probes, write_probes
from core.store import Store
from tests.fixtures.cli import run_cli

MIJABENCH_ROWS = [
    {"text": "seed one", "group": "mental_dis", "language": "English", "scenario_category": "history",
     "scenario": "A museum.", "jb_strategy": "persona_assign", "jb_prompt": "Prompt one", "dataset_source": "toxigen"},
    {"text": "seed two", "group": "LGBTQ+", "language": "pt", "scenario_category": "Humor and Absurdity",
     "scenario": "Um circo.", "jb_strategy": "chaining", "jb_prompt": "Prompt dois", "dataset_source": "toxsyn"},
    {"text": "seed three", "group": "Physical Dis", "language": "en", "scenario_category": "",
     "scenario": "", "jb_strategy": "control", "jb_prompt": "Prompt three", "dataset_source": "toxigen"},
]


def _write(path, rows, fmt):
    frame = pd.DataFrame(rows)
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        frame.to_parquet(path, index=False)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_mijabench_layout_maps_spellings_to_canonical_keys(tmp_path, fmt):
    path = tmp_path / f"mijabench.{fmt}"
    _write(path, MIJABENCH_ROWS, fmt)
    result = load_probes(path)
    assert result.problems == []
    assert [p.group for p in result.probes] == ["mental_disability", "lgbtq", "physical_disability"]
    assert [p.language for p in result.probes] == ["en", "pt", "en"]
    assert [p.kind for p in result.probes] == ["attack", "attack", "control"]
    assert result.probes[0].scenario_category == "History"
    assert {p.source for p in result.probes} == {"mijabench"}
    assert result.probes[1].prompt == "Prompt dois"


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_project_layout_round_trips(tmp_path, fmt):
    probes = build_bundled(per_cell=2, controls_per_group=1)
    jsonl = tmp_path / "probes.jsonl"
    write_probes(jsonl, probes)
    path = tmp_path / f"probes.{fmt}"
    if fmt != "jsonl":
        _write(path, [json.loads(line) for line in jsonl.read_text(encoding="utf-8").splitlines()], fmt)
    else:
        path = jsonl
    assert load_probes(path, default_source="builtin").probes == probes


def test_bad_rows_are_reported_with_line_column_and_reason(tmp_path):
    rows = [dict(MIJABENCH_ROWS[0]), dict(MIJABENCH_ROWS[1], group="martians"),
            dict(MIJABENCH_ROWS[0], jb_prompt="  "), dict(MIJABENCH_ROWS[0], jb_strategy="bribery"),
            dict(MIJABENCH_ROWS[0]), dict(MIJABENCH_ROWS[1], language="klingon")]
    path = tmp_path / "bad.csv"
    _write(path, rows, "csv")
    result = load_probes(path)
    assert len(result.probes) == 1
    messages = [str(p) for p in result.problems]
    assert messages[0].startswith(f"{path}:3 (column group): unknown group 'martians'")
    assert messages[1] == f"{path}:4 (column jb_prompt): empty prompt"
    assert messages[2].startswith(f"{path}:5 (column jb_strategy): unknown strategy 'bribery'")
    assert messages[3] == f"{path}:6: duplicate of the probe on line 2"
    assert messages[4].startswith(f"{path}:7 (column language): unknown language 'klingon'")


def test_csv_line_numbers_count_multiline_fields(tmp_path):
    path = tmp_path / "multiline.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(MIJABENCH_ROWS[0]))
        writer.writeheader()
        writer.writerow(dict(MIJABENCH_ROWS[0], jb_prompt="line one\nline two\nline three"))
        writer.writerow(dict(MIJABENCH_ROWS[1], group="nobody"))
    problems = load_probes(path).problems
    assert [(p.line, p.column) for p in problems] == [(5, "group")]


def test_bad_json_line_names_line_and_column(tmp_path):
    path = tmp_path / "broken.jsonl"
    good = json.dumps(MIJABENCH_ROWS[0])
    path.write_text(good + "\n" + good[:40] + "\n", encoding="utf-8")
    result = load_probes(path)
    assert len(result.probes) == 1
    # FILE:LINE:COLUMN, the shape of every located problem (core.files.reading)
    assert str(result.problems[0]).startswith(f"{path}:2:31: invalid JSON: Unterminated string")


def test_whole_file_errors(tmp_path):
    missing = tmp_path / "missing.csv"
    pd.DataFrame([{"text": "x", "group": "black"}]).to_csv(missing, index=False)
    with pytest.raises(ProbeFileError, match=r"missing\.csv:1: missing column\(s\) language, jb_strategy, jb_prompt"):
        load_probes(missing)
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("text,group,language,jb_strategy,jb_prompt\nol\xe1,black,en,chaining,p\n".encode("latin-1"))
    with pytest.raises(ProbeFileError, match=r"latin1\.csv:2:3: not UTF-8 \(byte 0xe1\)"):
        load_probes(latin1)
    with pytest.raises(ProbeFileError, match="unknown probe file type '.txt'"):
        (tmp_path / "x.txt").write_text("hi")
        load_probes(tmp_path / "x.txt")


def test_cli_import_refuses_a_bad_file_and_keeps_what_is_stored(tmp_path, db_path, cli_env):
    good = tmp_path / "good.csv"
    _write(good, MIJABENCH_ROWS, "csv")
    first = run_cli("probes", "import", str(good), "--db", str(db_path), "--json", env=cli_env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == 3
    bad = tmp_path / "bad.csv"
    _write(bad, [dict(MIJABENCH_ROWS[0], jb_prompt="new prompt"), dict(MIJABENCH_ROWS[1], group="martians")], "csv")
    second = run_cli("probes", "import", str(bad), "--db", str(db_path), env=cli_env)
    assert second.returncode == 2
    assert f"{bad}:3 (column group): unknown group 'martians'" in second.stderr
    assert "Traceback" not in second.stderr
    assert len(Store(db_path).probes()) == 3  # nothing imported, nothing lost
