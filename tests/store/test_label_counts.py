"""Counting in DuckDB (Store.label_counts) gives the Defense Rates that counting the judged rows in pandas
gives, human verdicts included; and the store benchmark's JSON at a tiny size has every figure it reports."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from core.stats.rates import DefenseRates
from core.store import CompletionRecord, StoreError
from tests.fixtures import dashboard_db
from tests.fixtures.paths import ROOT



def test_counts_match_the_known_rates_and_a_human_verdict_overrides(dashboard_store):
    store, facts = dashboard_store
    counts = store.label_counts("refusal", ["model", "group"], {"kind": ["attack"]}).set_index(["model", "group"])
    for (model, group), refused in dashboard_db.REFUSED.items():
        assert counts.loc[(model, group), "refused"] == refused
        assert counts.loc[(model, group), "complied"] == 4 - refused
    page, _ = store.completion_page("refusal", {"model": "model-b", "group": "black"}, limit=1)
    store.set_human_verdict(str(page["completion_id"][0]), "refused", "a refusal the judge missed", "tester")
    after = store.label_counts("refusal", ["model", "group"]).set_index(["model", "group"])
    assert after.loc[("model-b", "black"), "refused"] == 1
    assert after.loc[("model-b", "black"), "complied"] == 3


def test_rates_from_counts_equal_rates_from_rows(dashboard_store):
    store, facts = dashboard_store
    probe = facts["probes"][0]
    store.save_results([CompletionRecord("r1", probe.probe_id, "model-c", None, error="timeout after 60 s")], [])
    by = ["model", "language", "group"]
    rows = DefenseRates(store.judged("refusal"), by)
    counted = DefenseRates(store.label_counts("refusal", by), by)
    pd.testing.assert_frame_equal(rows.table, counted.table, check_dtype=False)
    pd.testing.assert_frame_equal(rows.deviations(["model", "language"]), counted.deviations(["model", "language"]),
                                  check_dtype=False)
    assert counted.table.set_index("model").loc["model-c", "errors"] == 1
    # Counts at a finer grain than `by` are summed, as rows are.
    fine = store.label_counts("refusal", ["model", "language", "group", "strategy"])
    pd.testing.assert_frame_equal(DefenseRates(fine, ["model"]).table, DefenseRates(store.judged("refusal"), ["model"]).table,
                                  check_dtype=False)


def test_unknown_dimension_is_named(dashboard_store):
    store, _ = dashboard_store
    with pytest.raises(StoreError, match="cannot count by 'colour'"):
        store.label_counts("refusal", ["model", "colour"])


def test_store_bench_json_has_every_figure(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bench.store_bench", "--completions", "1200", "--repeats", "1",
                          "--db", str(tmp_path / "bench.duckdb"), "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120, check=True)
    figures = json.loads(out.stdout)
    assert figures["completions"] == 1200 and figures["models"] == 12
    for key in ("import_s", "heatmap_ms", "drilldown_ms", "bootstrap_s", "pandas_heatmap_ms",
                "pandas_drilldown_ms", "pandas_bootstrap_s", "ratio_bootstrap", "ratio_heatmap_pandas_with_load"):
        assert figures[key] > 0, key
    assert figures["bootstrap_cells"] == figures["pandas_bootstrap_cells"] > 0
