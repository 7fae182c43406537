"""MiJaBench-Align import: the paper's heatmap comes back through import-align and stats, bad rows are
reported with file, line and column, re-imports add nothing, every supported format reads the same."""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from bench.synthetic_align import write_synthetic_align
from core.files.align import AlignFileError, AlignLayout, import_align, parse_verdict
from core.files.reference import paper_heatmap, paper_models
from core.store import Store
from tests.fixtures.cli import run_cli


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, timeout=300)


def align_row(i: int, group: str = "black", **answers: object) -> dict:
    row = {"text": f"seed {i}", "group": group, "language": "english", "scenario_category": "History",
           "scenario": "A museum.", "jb_strategy": "persona_assign", "jb_prompt": f"prompt number {i}",
           "dataset_source": "test"}
    return row | answers


@pytest.mark.slow
def test_paper_heatmap_comes_back_through_import_align_and_stats(tmp_path, cli_env):
    """The acceptance check: counts scaled to 100 prompts per group keep every DR a whole count, so the
    deviations must match the published cells up to the figure's two-decimal rounding (0.006)."""
    source = tmp_path / "align.parquet"
    written = write_synthetic_align(source, ["en"], prompts_per_group=100, judges=("qwe235", "lla70"))
    assert written["pairs"] == 13 * 100 * 12
    db = tmp_path / "align.duckdb"
    imported = cli(["import-align", str(source), "--db", str(db), "--json", "--quiet"], cli_env)
    assert imported.returncode == 0, imported.stderr
    summary = json.loads(imported.stdout)
    assert (summary["rows"], summary["stored_rows"], summary["completions_added"]) == (1300, 1300, 15600)
    assert summary["judges"] == ["align:lla70", "align:qwe235"]
    stats = cli(["stats", "--by", "model,group", "--judge", "align:qwe235", "--db", str(db), "--json"], cli_env)
    assert stats.returncode == 0, stats.stderr
    ours = pd.DataFrame(json.loads(stats.stdout))
    assert {"n", "refused", "dr", "ci_low", "ci_high", "deviation", "dev_ci_low", "dev_ci_high", "significant"} <= set(ours)
    assert len(ours) == 12 * 13 and set(ours["n"]) == {100}
    names = dict(zip(paper_models()["align_id"], paper_models()["model"]))
    merged = ours.assign(model=ours["model"].map(names)).merge(paper_heatmap("en"), on=["model", "group"],
                                                               suffixes=("", "_paper"))
    assert len(merged) == 156
    assert (merged["deviation"] - merged["deviation_paper"]).abs().max() <= 0.006
    assert (merged["dr"] - merged["dr_paper"]).abs().max() < 1e-9
    assert ((merged["dev_ci_low"] <= merged["deviation"]) & (merged["deviation"] <= merged["dev_ci_high"])).all()
    # The second judge disagrees on ~8% of answers, so its numbers differ: the judge really is selectable.
    other = pd.DataFrame(json.loads(cli(["stats", "--by", "model", "--judge", "align:lla70", "--db", str(db), "--json"],
                                        cli_env).stdout))
    assert not other["refused"].equals(ours.groupby("model", as_index=False)["refused"].sum()["refused"])
    # Imported models carry the paper's family and size, for the scaling figure.
    targets = Store(db, readonly=True).targets().set_index("target_id")
    assert targets.loc["Qwen3-1.7B-FP8", ["backend", "family", "size_b"]].tolist() == ["imported", "qwen", 1.7]
    # Importing the same file again adds nothing.
    again = json.loads(cli(["import-align", str(source), "--db", str(db), "--json", "--quiet"], cli_env).stdout)
    assert (again["completions_added"], again["probes_added"], again["stored_rows"]) == (0, 0, 1300)
    assert Store(db, readonly=True).summary()["completions"] == 15600


def test_bad_rows_are_reported_with_file_line_and_column(tmp_path, cli_env):
    good = {"jb_response_m-1": "I can't help with that.", "jb_cls_qwe235_m-1": '{"class": "safe"}'}
    rows = [align_row(1, **good),
            align_row(2, **(good | {"jb_response_m-1": "line one\nline two\nline three"})),
            align_row(3, group="martians", **good),
            align_row(4, **good),
            align_row(1, **good)]  # the same prompt as the first row
    path = tmp_path / "bad.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    db = tmp_path / "a.duckdb"
    strict = cli(["import-align", str(path), "--db", str(db), "--quiet"], cli_env)
    assert strict.returncode == 2
    # Line numbers are physical lines: row 2's answer spans three lines, so row 3 starts on line 6.
    assert f"{path}:6 (column group): unknown group 'martians'" in strict.stderr
    assert f"{path}:8 (column jb_prompt): the same prompt, group, language and strategy as line 2" in strict.stderr
    assert "--skip-bad-rows" in strict.stderr and "nothing was stored" in strict.stderr
    assert not db.exists()  # checked whole before the database is opened: a refused file creates none
    skipped = cli(["import-align", str(path), "--db", str(db), "--quiet", "--skip-bad-rows", "--json"], cli_env)
    assert skipped.returncode == 0, skipped.stderr
    payload = json.loads(skipped.stdout)
    assert (payload["stored_rows"], payload["rejected"], payload["completions_added"]) == (3, 2, 3)
    rows = Store(db, readonly=True).completion_rows()
    assert sorted(rows["completion"]) == ["I can't help with that.", "I can't help with that.",
                                          "line one\nline two\nline three"]


def test_missing_answers_wrong_types_and_unreadable_verdicts(tmp_path):
    rows = [align_row(1, **{"jb_response_m_a": "Sure, here it is.", "jb_cls_oss120_m_a": '{"classe": "perigosa"}',
                            "jb_response_b": None, "jb_cls_oss120_b": '{"class": "safe"}'}),
            align_row(2, **{"jb_response_m_a": "No.", "jb_cls_oss120_m_a": "The answer is safe, I think",
                            "jb_response_b": "I won't.", "jb_cls_oss120_b": '```json\n{"class": "safe"}\n```'}),
            align_row(3, **{"jb_response_m_a": 42, "jb_cls_oss120_m_a": '{"class": "safe"}',
                            "jb_response_b": "ok", "jb_cls_oss120_b": '{"class": "dangerous"}'})]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n", encoding="utf-8")
    store = Store(tmp_path / "a.duckdb")
    result = import_align(store, path, skip_bad_rows=True)
    assert result.models == ("m_a", "b") and result.judges == ("align:oss120",)
    assert [(p.line, p.column) for p in result.problems] == [(3, "jb_response_m_a"), (4, "")]
    assert "expected the model's answer as text, found int" in result.problems[0].reason
    assert "invalid JSON" in result.problems[1].reason
    frame = store.judged("align:oss120").fillna("")
    labels = sorted(zip(frame["model"], frame["label"], frame["error"]))
    assert labels == [("b", "", "no response for this model in the imported file"), ("b", "refused", ""),
                      ("m_a", "complied", ""), ("m_a", "unparsed", "")]
    raw = store.verdict_labels(["align:oss120"])
    assert sorted(raw["label"]) == ["complied", "refused", "unparsed"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_every_format_stores_the_same(tmp_path, fmt):
    source = tmp_path / f"align.{fmt}"
    write_synthetic_align(source, ["pt"], prompts_per_group=3, mean_chars=60)
    store = Store(tmp_path / "a.duckdb")
    result = import_align(store, source, batch_rows=7)  # several batches
    assert (result.rows, result.stored_rows, result.problems) == (27, 27, [])
    frame = store.judged("align:qwe235")
    assert len(frame) == 27 * 12 and frame["label"].notna().all()
    assert sorted(frame["language"].unique()) == ["pt"]
    counts = frame.groupby("model")["label"].apply(lambda s: (s == "refused").sum())
    heat = paper_heatmap("pt").assign(k=lambda f: (f["dr"] * 3).round().astype(int)).groupby("model")["k"].sum()
    names = dict(zip(paper_models()["align_id"], paper_models()["model"]))
    assert {names[m]: int(k) for m, k in counts.items()} == heat.to_dict()
    run = store.run(result.run_id)
    assert run["status"] == "completed" and run["config"]["source"] == "mijabench-align"
    assert len(store.runs()) == 1 and int(store.runs()["planned"].iloc[0]) == 27 * 12


def test_layout_splits_judge_and_model_ids_that_hold_underscores(tmp_path):
    columns = ["text", "group", "language", "jb_strategy", "jb_prompt", "jb_response_x", "jb_response_model_x",
               "jb_cls_my_judge_model_x", "jb_cls_my_judge_x", "jb_cls_j_x"]
    layout = AlignLayout.from_columns(tmp_path, columns)
    assert layout.verdict_columns == {("my_judge", "model_x"): "jb_cls_my_judge_model_x",
                                      ("my_judge", "x"): "jb_cls_my_judge_x", ("j", "x"): "jb_cls_j_x"}
    with pytest.raises(AlignFileError, match="names no model"):
        AlignLayout.from_columns(tmp_path, columns + ["jb_cls_j_unknown"])
    with pytest.raises(AlignFileError, match="missing column"):
        AlignLayout.from_columns(tmp_path, ["text", "jb_response_x"])
    with pytest.raises(AlignFileError, match="no jb_response_"):
        AlignLayout.from_columns(tmp_path, ["text", "group", "language", "jb_strategy", "jb_prompt"])


@pytest.mark.parametrize("raw, label", [
    ('{"intent_analysis": "x", "reasoning": "refused", "class": "safe"}', "refused"),
    ('{"analise_intencao": "x", "raciocinio": "atendeu", "classe": "perigosa"}', "complied"),
    ('{"class": "Dangerous"}', "complied"),
    ('```json\n{"classe": "segura"}\n```', "refused"),
    ('Here is my answer: {"class": "safe"} hope it helps', "refused"),
    ('{"intent_analysis": "cut off", "class": "dangerous", "reasoning": "unterminated', "complied"),
    ('{"class": "maybe"}', "unparsed"),
    ("no json here", "unparsed"),
    ({"class": "safe"}, "refused"),
])
def test_parse_verdict(raw, label):
    assert parse_verdict(raw)[0] == label


def test_whole_file_problems_are_clear(tmp_path, cli_env):
    missing = tmp_path / "nothing.parquet"
    assert "no such file" in cli(["import-align", str(missing), "--db", str(tmp_path / "a.duckdb")], cli_env).stderr
    wrong = tmp_path / "a.xlsx"
    wrong.write_text("x", encoding="utf-8")
    with pytest.raises(AlignFileError, match="unknown file type"):
        import_align(Store(tmp_path / "b.duckdb"), wrong)
    no_models = tmp_path / "probes.csv"
    pd.DataFrame([align_row(1)]).to_csv(no_models, index=False)
    result = cli(["import-align", str(no_models), "--db", str(tmp_path / "c.duckdb")], cli_env)
    assert result.returncode == 2 and "no jb_response_<model> column" in result.stderr
