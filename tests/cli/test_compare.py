"""`python -m core compare` on a real DuckDB store (tests/fixtures/compare_db.py) where the truth is known: the
exit codes of the regression gate, the Markdown table, JSON, the disagreeing pairs, and clear errors."""
from __future__ import annotations

import json

import pytest

from core.cli import main
from core.store import Store
from tests.fixtures import compare_db
from tests.fixtures.cli import run_cli as run_core


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """compare_db with r1's review sample drawn (20 per stratum) and labelled; r2 (v1 again) has no sample."""
    path = tmp_path_factory.mktemp("compare_checked") / "audit.duckdb"
    facts = compare_db.build(path)
    compare_db.label_sample(path, facts)
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare") / "audit.duckdb"
    facts = compare_db.build(path)
    return {"path": path, **facts}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_gate_fails_on_the_group_made_worse_and_names_it(db, capsys):
    code, out, err = run_cli(capsys, "--db", str(db["path"]), "--base", "v1", "--candidate", "v2", "--run-id", "r1",
                             "--fail-on-regression", "0.1", "--format", "md")
    assert code == 1
    assert "regression: en / jewish" in err and "dropped by more than 0.1" in err
    assert err.count("regression:") == 1  # no other group dropped
    table = [line for line in out.splitlines() if line.startswith("| en |")]
    first = table[0].split(" | ")
    assert first[1] == "jewish" and first[2] == "attack" and table[0].endswith("**worse** |")
    # the values a reviewer reads: pairs and both DRs of the worse group, counted from the construction
    shared = [p for p in db["probes"] if p.group == "jewish" and p.kind == "attack"]
    base_dr = sum(db["v1"][p.probe_id] for p in shared) / len(shared)
    cand_dr = sum(db["v2"][p.probe_id] for p in shared) / len(shared)
    assert first[3] == str(len(shared)) and first[4] == f"{base_dr:.3f}" and first[5] == f"{cand_dr:.3f}"
    assert "**Gate: FAILED**" in out
    over = [line for line in table if line.split(" | ")[1] == "all groups"]
    assert len(over) == 1 and over[0].split(" | ")[2] == "control" and over[0].endswith("**worse** |")
    assert table.index(over[0]) == 1  # refuses more benign requests: flagged too, among the flagged rows


def test_a_margin_larger_than_the_drop_passes(db, capsys):
    code, out, err = run_cli(capsys, "--db", str(db["path"]), "--base", "v1", "--candidate", "v2", "--run-id", "r1",
                             "--fail-on-regression", "0.6")
    assert code == 0 and "gate: passed" in out and "regression:" not in err


def test_the_same_answers_in_two_runs_pass_and_json_says_why(db, capsys):
    code, out, _ = run_cli(capsys, "--db", str(db["path"]), "--base", "r2", "--candidate", "v1", "--run-id", "r1",
                           "--fail-on-regression", "0", "--fail-on-gap-increase", "0", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["gate"] == {"failed": False, "passed": True, "reasons": [], "untested": []}
    assert all(cell["change"] == 0 and cell["p_value"] == 1 for cell in payload["cells"])
    assert payload["base_side"] == {"run_id": "r2", "target_id": "v1"}
    assert sum(cell["pairs"] for cell in payload["cells"]) == len(db["probes"])


def test_left_out_pairs_are_counted(db, capsys):
    code, out, _ = run_cli(capsys, "--db", str(db["path"]), "--base", "v1", "--candidate", "v2", "--run-id", "r1")
    assert code == 0  # no gate asked for
    assert f"{len(db['probes']) - 1} shared probes" in out and "1 with an error or unreadable label" in out


def test_an_ambiguous_side_is_bad_input_that_lists_the_runs(db, capsys):
    code, _, err = run_cli(capsys, "--db", str(db["path"]), "--base", "v1", "--candidate", "v2")
    assert code == 2 and "'v1' is a target with 2 runs (r1, r2)" in err
    code, _, err = run_cli(capsys, "--db", str(db["path"]), "--base", "r1", "--candidate", "v2")
    assert code == 2 and "run with 2 targets (v1, v2)" in err
    code, _, err = run_cli(capsys, "--db", str(db["path"]), "--base", "nope", "--candidate", "v2", "--run-id", "r1")
    assert code == 2 and "'nope': no run or target of that name" in err


def test_disagreeing_pairs_of_a_flagged_cell_come_side_by_side(db):
    store = Store(db["path"], readonly=True)
    rows = store.paired_disagreements(("r1", "v1"), ("r1", "v2"), "refusal",
                                      {"language": "en", "group": "jewish", "kind": "attack"})
    shared = [p.probe_id for p in db["probes"] if p.group == "jewish" and p.kind == "attack"]
    expected = {pid for pid in shared if db["v1"][pid] != db["v2"][pid]}
    assert set(rows["probe_id"]) == expected and len(expected) > 10
    first = rows.iloc[0]
    assert first["base_label"] == "refused" and first["cand_label"] == "complied"
    assert first["base_completion"].startswith("v1 answer") and first["cand_completion"].startswith("v2 answer")


def test_all_pairs_matrix_through_the_command_line(db):
    done = run_core("compare", "--all", "--db", str(db["path"]), "--json", "--resamples", "300", timeout=300)
    assert done.returncode == 0, done.stderr
    matrix = json.loads(done.stdout)
    pairs = {(row["base"], row["candidate"]) for row in matrix}
    assert pairs == {("v1 @ r1", "v2 @ r1"), ("v1 @ r1", "v1 @ r2"), ("v2 @ r1", "v1 @ r2")}
    same = next(row for row in matrix if row["candidate"] == "v1 @ r2" and row["base"] == "v1 @ r1")
    assert same["change"] == 0 and not same["significant"]


def test_the_html_report_gains_the_comparison_section(db, tmp_path, capsys):
    out = tmp_path / "report.html"
    code = main(["export", "--db", str(db["path"]), "--format", "report", "--out", str(out), "--runs", "r1",
                 "--compare", "v1", "v2"])
    assert code == 0, capsys.readouterr().err
    page = out.read_text()
    section = page[page.index("<h2>What changed: v2 @ r1 against v1 @ r1</h2>"):]
    worse = section[section.index("<h3>Significantly worse</h3>"):section.index("<h3>Every group</h3>")]
    assert "<td class='t'>Jewish people</td>" in worse and "<td class='t'>attack</td>" in worse
    assert "<td class='t'>all groups</td>" in worse and "Women" not in worse
    assert "v1 answer" not in page and "v2 answer" not in page  # statistics only, never a completion
    code = main(["export", "--db", str(db["path"]), "--format", "csv", "--out", str(tmp_path / "x.csv"),
                 "--compare", "v1", "v2"])
    assert code == 2 and "use it with --format report" in capsys.readouterr().err


def test_the_corrected_comparison_undoes_a_regression_the_judge_made_up(tmp_path, capsys):
    """The judge calls v2's refusals of Jewish-themed jailbreaks compliance (a judge error, not a model change):
    judge-only, the gate fires on that group; corrected by a human review sample, it does not."""
    path = tmp_path / "audit.duckdb"
    facts = compare_db.build(path)
    compare_db.label_sample(path, facts)
    argv = ["--db", str(path), "--base", "v1", "--candidate", "v2", "--run-id", "r1", "--fail-on-regression", "0.1"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and "en / jewish" in err  # the judge alone reports a regression
    code, out, err = run_cli(capsys, *argv, "--estimator", "ppi", "--json")
    assert code == 0, err
    cells = {(c["group"], c["kind"]): c for c in json.loads(out)["cells"]}
    assert abs(cells[("jewish", "attack")]["change"]) < 0.15 and not cells[("jewish", "attack")]["significant"]


def test_a_corrected_comparison_with_an_unchecked_base_is_refused_and_says_how_to_check_it(checked, capsys):
    """r2 has no review sample: a corrected comparison can test nothing on its side, so it is refused (exit 2),
    never a passed gate; the message names the side and the command that draws its sample."""
    code, out, err = run_cli(capsys, "--db", str(checked), "--base", "r2", "--candidate", "v1", "--run-id", "r1",
                             "--estimator", "ppi", "--fail-on-regression", "0.1")
    assert code == 2, (out, err)
    assert "--estimator ppi: the base v1 @ r2 has no human checks of its review sample" in err
    assert "python -m core review sample --run-id r2 " in err and "--seed 0" in err
    assert "gate: passed" not in out and "worse, significantly" not in out
    code, out, err = run_cli(capsys, "--db", str(checked), "--base", "r2", "--candidate", "v1", "--run-id", "r1",
                             "--estimator", "ppi", "--json")
    assert code == 2 and not out and "the base v1 @ r2 has no human checks" in err


def test_a_corrected_comparison_with_an_unchecked_candidate_is_refused(checked, capsys):
    code, out, err = run_cli(capsys, "--db", str(checked), "--base", "v1", "--run-id", "r1", "--candidate", "r2",
                             "--estimator", "ppi", "--fail-on-regression", "0.1", "--format", "md")
    assert code == 2 and "Gate: passed" not in out
    assert "the candidate v1 @ r2 has no human checks of its review sample" in err
    assert "the base" not in err  # the base (v1 @ r1) is checked: only the side that lacks checks is named
    assert "python -m core review sample --run-id r2 " in err


def test_too_few_checks_in_every_compared_cell_is_refused_too(checked, capsys):
    code, out, err = run_cli(capsys, "--db", str(checked), "--base", "v1", "--candidate", "v2", "--run-id", "r1",
                             "--estimator", "ppi", "--min-human", "25", "--fail-on-regression", "0.1")
    assert code == 2 and "gate: passed" not in out
    assert ("the base v1 @ r1 has too few human checks of its review sample: no cell compared has the 25 a "
            "corrected estimate needs (at most 20 in a cell)") in err
    assert "the candidate v2 @ r1 has too few human checks" in err


def test_both_sides_checked_still_compares_corrected(checked, capsys):
    code, out, err = run_cli(capsys, "--db", str(checked), "--base", "v1", "--candidate", "v2", "--run-id", "r1",
                             "--estimator", "ppi", "--fail-on-regression", "0.1")
    assert code == 0, err
    assert "gate: passed" in out and "could not be tested" not in out


def test_cells_a_corrected_comparison_cannot_test_are_counted_and_the_gate_does_not_pass(checked, capsys):
    """By strategy, with each cell corrected by its own labels (--rectifier group), each attack cell holds about a
    quarter of its group's 20 checks: fewer than 10, so those cells have no corrected change. The gate cannot vouch
    for them: no "passed", exit 2, and the reason per cell. (The default pools the judge's error within the
    language, so every cell gets an estimate: checked at the end.)"""
    argv = ["--db", str(checked), "--base", "v1", "--candidate", "v2", "--run-id", "r1", "--estimator", "ppi",
            "--by-strategy", "--rectifier", "group"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err  # no gate asked for: the table, with the untested cells said
    assert "worse, significantly (holm): none" not in out
    line = next(line for line in out.splitlines() if "could not be tested" in line)
    assert "of the" in line and "compared cells" in line
    code, out, err = run_cli(capsys, *argv, "--fail-on-regression", "0.1")
    assert code == 2 and "gate: passed" not in out and "gate: NOT PASSED" in out
    assert "human checks, fewer than the 10 a corrected estimate needs" in err
    code, out, _ = run_cli(capsys, *argv, "--fail-on-regression", "0.1", "--json")
    payload = json.loads(out)
    assert payload["gate"]["failed"] is False and payload["gate"]["untested"]
    assert all(row["why"] for row in payload["untested"])
    code, out, _ = run_cli(capsys, *argv[:-2], "--json")  # pooled by default: every cell estimated and tested
    payload = json.loads(out)
    assert code == 0 and not payload["untested"] and payload["gate"]["passed"]
