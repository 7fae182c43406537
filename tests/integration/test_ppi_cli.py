"""End to end through the CLI (issue 13): a real run of the default model, a review sample drawn, labels typed
into the exported sheet and imported from CSV, then `stats --estimator ppi --json` and `review bias --json`,
each a separate `python -m core` process on one real DuckDB file.

The expected corrected DR is computed here from the stored judge verdicts and the labels the test wrote, by
the estimator's definition (judge DR over every completion + mean(human - judge) over the cell's sample, one
stratum per cell), so a wrong weighting, a human override leaking into the judge term, or a sample label
missing fails the test.
"""
from __future__ import annotations

import csv
import json

import pytest

from core.store import Store
from tests.fixtures.paths import ROOT
from tests.fixtures.cli import run_cli

pytestmark = pytest.mark.model  # a real run of the embedded default model


def cli(args, env, timeout=600):
    return run_cli(*args, env=env, timeout=timeout)


def test_stats_estimator_ppi_end_to_end(db_path, cli_env, tmp_path):
    db = ["--db", str(db_path)]
    run = cli(["run", "--target", "smollm2", "--languages", "en", "--groups", "black,women", "--strategies",
               "chaining,persona_assign", "--per-cell", "3", "--max-new-tokens", "8", "--run-id", "e2e",
               "--judges", "refusal", "--quiet", "--json", *db], cli_env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["completions"] == 12  # 2 groups x 2 strategies x 3 probes

    before = cli(["stats", "--estimator", "ppi", "--json", *db], cli_env)
    assert before.returncode == 2 and "review sample" in before.stderr and "Traceback" not in before.stderr

    drawn = cli(["review", "sample", "--run-id", "e2e", "--fraction", "0.5", "--seed", "7", "--json", *db], cli_env)
    assert drawn.returncode == 0, drawn.stderr
    sheet = tmp_path / "sheet.csv"
    exported = cli(["verdicts", "export", "--sample", "--run-id", "e2e", "--out", str(sheet), *db], cli_env)
    assert exported.returncode == 0, exported.stderr
    with sheet.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6  # half of each (model, group) stratum of 6
    # The person disagrees with the judge on the first sampled answer of each group, agrees on the rest.
    verdicts = Store(db_path, readonly=True).verdict_labels(["refusal"])
    judge = dict(zip(verdicts["completion_id"], verdicts["label"]))
    human, seen = {}, set()
    for row in rows:
        own = judge[row["completion_id"]]
        flip = row["group"] not in seen
        seen.add(row["group"])
        human[row["completion_id"]] = ("complied" if own == "refused" else "refused") if flip else own
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["completion_id", "label", "note"])
        writer.writerows([[cid, label, "checked"] for cid, label in human.items()])
    imported = cli(["verdicts", "import", str(labels), "--annotator", "tester", "--json", *db], cli_env)
    assert imported.returncode == 0, imported.stderr

    stats = cli(["stats", "--estimator", "ppi", "--by", "model,group", "--min-human", "2", "--json", *db], cli_env)
    assert stats.returncode == 0, stats.stderr
    cells = {c["group"]: c for c in json.loads(stats.stdout)}
    assert set(cells) == {"black", "women"}
    completions = Store(db_path, readonly=True).completion_rows({"run_id": "e2e"})
    for group, cell in cells.items():
        assert {"n", "n_human", "dr", "ci_low", "ci_high", "dr_judge", "rectifier", "note"} <= set(cell)
        mine = completions[completions["group"] == group]["completion_id"]
        f = {cid: {"refused": 1.0, "complied": 0.0}.get(judge[cid], 0.5) for cid in mine}  # unparsed: 0.5
        sampled = [cid for cid in mine if cid in human]
        h = {cid: 1.0 if human[cid] == "refused" else 0.0 for cid in sampled}
        rectifier = sum(h[c] - f[c] for c in sampled) / len(sampled)
        assert (cell["n"], cell["n_human"]) == (6, 3)
        decided = [v for v in f.values() if v != 0.5]
        assert cell["dr_judge"] == pytest.approx(sum(decided) / len(decided))
        assert cell["rectifier"] == pytest.approx(rectifier)
        assert cell["dr"] == pytest.approx(min(max(sum(f.values()) / 6 + rectifier, 0.0), 1.0))
        assert cell["ci_low"] <= cell["dr"] <= cell["ci_high"] and cell["ci_high"] > cell["ci_low"]

    few = cli(["stats", "--estimator", "ppi", "--by", "model,group", "--json", *db], cli_env)  # default 10 labels
    assert few.returncode == 0 and all(c["dr"] is None and "fewer than the 10 needed" in c["note"]
                                       for c in json.loads(few.stdout))
    text = cli(["stats", "--estimator", "ppi", "--by", "model,group", "--min-human", "2", *db], cli_env)
    assert text.returncode == 0 and "corrected by 6 human checks" in text.stdout and "n_human" in text.stdout
    plain = cli(["stats", "--by", "model,group", "--json", *db], cli_env)  # the default stays the judge's
    assert plain.returncode == 0 and "n_human" not in json.loads(plain.stdout)[0]

    bias = cli(["review", "bias", "--json", *db], cli_env)
    assert bias.returncode == 0, bias.stderr
    report = json.loads(bias.stdout)
    assert report["n_human"] == 6 and {r["group"] for r in report["table"]} == {"black", "women"}
    assert {t["rate"] for t in report["tests"]} == {"false_refusal", "false_compliance"}
    accuracy = {r["group"]: r["accuracy"] for r in report["table"]}
    assert accuracy == {"black": pytest.approx(2 / 3), "women": pytest.approx(2 / 3)}  # one flip in three


def test_review_plan_prints_the_documented_table_and_rejects_a_bad_width(cli_env):
    """The labels-needed tables of docs/statistics/corrected-estimates.md are this command's output (plain and
    power-tuned), so the guide says what the project computes; more accuracy or a wider interval never needs more
    labels."""
    guide = (ROOT / "docs" / "statistics" / "corrected-estimates.md").read_text(encoding="utf-8")
    for extra in ([], ["--power-tuning"]):
        done = cli(["review", "plan", *extra], cli_env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() in guide, f"the guide lacks the output of `review plan {' '.join(extra)}`"
    rows = json.loads(cli(["review", "plan", "--json"], cli_env, timeout=120).stdout)
    judged = [[row[f"accuracy {a:.2f}"] for a in (0.70, 0.80, 0.90, 0.95)] for row in rows]
    assert all(a >= b for row in judged for a, b in zip(row, row[1:]))  # a better judge needs fewer labels
    assert all(x >= y for narrow, wide in zip(judged, judged[1:]) for x, y in zip(narrow, wide))  # a wider interval too
    assert [row["no judge"] for row in rows] == [387, 99, 46]
    bad = cli(["review", "plan", "--half-widths", "0"], cli_env, timeout=120)
    assert bad.returncode == 2 and "half_width" in bad.stderr
