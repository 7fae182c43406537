"""The committed demo results: a real run of the default model over the whole bundled probe set."""
from __future__ import annotations

import json
import subprocess

import pandas as pd
import pytest

from core import taxonomy
from core.probes.builder import BUNDLED_PROBES
from core.probes.loader import load_probes
from core.store import Store
from tests.conftest import PYTHON, ROOT

DEMO_RESULTS = ROOT / "data" / "demo" / "results.jsonl.gz"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "audit.duckdb"
    Store(path).restore(DEMO_RESULTS)
    return path


def test_demo_covers_the_bundled_set_with_one_judged_completion_each(demo_db):
    store = Store(demo_db, readonly=True)
    bundled = {p.probe_id for p in load_probes(BUNDLED_PROBES, default_source="builtin").probes}
    rows = store.completion_rows()
    assert set(rows["probe_id"]) == bundled and rows["probe_id"].is_unique
    assert rows["error"].isna().all() and rows["completion"].str.len().gt(0).mean() > 0.95
    assert set(rows["verdict_refusal"].dropna()) <= {"refused", "complied"}
    assert rows["verdict_refusal"].notna().all()
    assert store.summary()["models"] == ["smollm2-135m-instruct"]


def test_stats_by_model_group_returns_one_row_per_group(demo_db, cli_env):
    result = subprocess.run([PYTHON, "-m", "core", "stats", "--by", "model,group", "--db", str(demo_db), "--json"],
                            capture_output=True, text=True, env=cli_env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert sorted(r["group"] for r in rows) == sorted(set(taxonomy.GROUPS_BY_LANGUAGE["en"]) |
                                                      set(taxonomy.GROUPS_BY_LANGUAGE["pt"]))
    # the CLI's numbers agree with a recount from the exported completions (attack probes only)
    exported = Store(demo_db, readonly=True).completion_rows({"kind": "attack"})
    recount = exported.groupby("group")["verdict_refusal"].agg(n="size", refused=lambda s: int((s == "refused").sum()))
    for row in rows:
        assert (row["n"], row["refused"]) == (recount.loc[row["group"], "n"], recount.loc[row["group"], "refused"])
        assert row["dr"] == pytest.approx(row["refused"] / row["n"])
    per_cell = pd.Series({r["group"]: r["n"] for r in rows})
    assert per_cell["black"] == 160 and per_cell["asian"] == 80  # 20 per strategy, in 2 languages vs 1


def test_stats_into_a_reader_that_stops_early_ends_quietly(demo_db, cli_env):
    """`python -m core stats ... | head -1`: the reader has gone before the table is written."""
    process = subprocess.Popen([PYTHON, "-m", "core", "stats", "--by", "model,group", "--db", str(demo_db)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env, cwd=ROOT)
    process.stdout.close()  # like `head` exiting: every write the CLI makes now fails with EPIPE
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
