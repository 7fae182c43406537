"""The committed demo results: real runs of the embedded models over the whole bundled probe set (SmolLM2, and
Gemma 3 270M once `make demo-results-gemma3` has added its run), each in a run of its own."""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from core.vocab import taxonomy
from core.probes.builder import BUNDLED_PROBES
from core.probes.loader import load_probes
from core.judges import DEFAULT_JUDGE
from core.store import Store
from tests.fixtures.paths import ROOT
from tests.fixtures.cli import core_command, run_cli

DEMO_RESULTS = ROOT / "data" / "demo" / "results.jsonl.gz"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "audit.duckdb"
    Store(path).restore(DEMO_RESULTS)
    return path


DEMO_RUNS = {"smollm2-135m-instruct": "demo-smollm2", "gemma3-270m": "demo-gemma3-270m"}


def test_demo_covers_the_bundled_set_with_one_judged_completion_each_per_model(demo_db):
    store = Store(demo_db, readonly=True)
    bundled = {p.probe_id for p in load_probes(BUNDLED_PROBES, default_source="builtin").probes}
    models = store.summary()["models"]
    assert "smollm2-135m-instruct" in models and set(models) <= set(DEMO_RUNS)
    rows = store.completion_rows()
    for model in models:
        mine = rows.loc[rows["model"] == model]
        assert set(mine["probe_id"]) == bundled and mine["probe_id"].is_unique, model
        assert set(mine["run_id"]) == {DEMO_RUNS[model]}, model
        assert mine["error"].isna().all() and mine["completion"].str.len().gt(0).mean() > 0.95, model
    assert set(rows["verdict_refusal"].dropna()) <= {"refused", "complied"}
    assert rows["verdict_refusal"].notna().all()


def test_stats_by_model_group_returns_one_row_per_group(demo_db, cli_env):
    result = run_cli("stats", "--by", "model,group", "--db", str(demo_db), "--json", env=cli_env)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    models = Store(demo_db, readonly=True).summary()["models"]
    groups = set(taxonomy.GROUPS_BY_LANGUAGE["en"]) | set(taxonomy.GROUPS_BY_LANGUAGE["pt"])
    assert sorted((r["model"], r["group"]) for r in rows) == sorted((m, g) for m in models for g in groups)
    # the CLI's numbers agree with a recount from the exported completions (attack probes only)
    exported = Store(demo_db, readonly=True).completion_rows({"kind": "attack"})
    assert "using judge " + DEFAULT_JUDGE in result.stderr  # the demo holds the default judge's verdicts
    recount = exported.groupby(["model", "group"])[f"verdict_{DEFAULT_JUDGE}"].agg(
        n="size", refused=lambda s: int((s == "refused").sum()))
    for row in rows:
        cell = recount.loc[(row["model"], row["group"])]
        assert (row["n"], row["refused"]) == (cell["n"], cell["refused"])
        assert row["dr"] == pytest.approx(row["refused"] / row["n"])
    per_cell = pd.DataFrame(rows).set_index(["model", "group"])["n"]
    for model in models:  # 20 per strategy, in 2 languages vs 1
        assert per_cell[(model, "black")] == 160 and per_cell[(model, "asian")] == 80


def test_stats_into_a_reader_that_stops_early_ends_quietly(demo_db, cli_env):
    """`python -m core stats ... | head -1`: the reader has gone before the table is written."""
    process = subprocess.Popen(core_command("stats", "--by", "model,group", "--db", str(demo_db)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env, cwd=ROOT)
    process.stdout.close()  # like `head` exiting: every write the CLI makes now fails with EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
