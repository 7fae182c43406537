"""One list of slicing dimensions, checked three ways: every dimension of core/vocab/dimensions.py is one the store can
count by (and filter on), metrics can group by (with the same counts), the dashboard filters on, and the CLI's
`stats --by` takes; and `scenario`, which the store could count by while metrics refused it, now works."""
from __future__ import annotations

import functools
import json

import pandas as pd
import pytest

from core import cli

from core.stats import rates

from core.vocab import dimensions
from core.stats.rates import DefenseRates
from core.probes.builder import build_bundled
from core.probes.schema import Probe
from core.store import CELL_COLUMNS, FILTER_COLUMNS, CompletionRecord, Store, VerdictRecord
from tests.fixtures import dashboard_db
from ui import cached, filters

JUDGE = "refusal"
bundled = functools.cache(build_bundled)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The dashboard database (one run, English attacks) plus a second run with Portuguese probes and controls,
    so every dimension has at least two values. Built once: the tests only read it."""
    db_path = tmp_path_factory.mktemp("dimensions") / "audit.duckdb"
    dashboard_db.build(db_path)
    store = Store(db_path)
    extra = [p for p in bundled() if p.language == "pt" and p.group in dashboard_db.GROUPS][:4]
    extra += [p for p in bundled() if p.language == "en" and p.kind == "control"][:4]
    # two of them as if from another probe set, so `source` has two values
    extra += [Probe(**{**vars(p), "probe_id": f"cf-{i}", "source": "counterfactual", "counterfactual_id": "cf-x"})
              for i, p in enumerate(extra[:2])]
    store.add_probes(extra)
    store.create_run("r2", {"targets": ["model-a"], "judges": [JUDGE]}, [p.probe_id for p in extra])
    store.add_run_targets("r2", ["model-a"])
    records = [CompletionRecord("r2", p.probe_id, "model-a", f"answer {i}") for i, p in enumerate(extra)]
    store.save_results(records, [VerdictRecord(r.completion_id, JUDGE, "refused" if i % 2 else "complied")
                                 for i, r in enumerate(records)])
    return store


def expected_counts(store: Store, name: str) -> pd.DataFrame:
    """refused and complied per value of `name`, counted in pandas from the export rows (no SQL grouping)."""
    rows = store.completion_rows()
    label = rows["verdict_refusal"]
    return (rows.assign(refused=label == "refused", complied=label == "complied")
            .groupby(name)[["refused", "complied"]].sum().astype("int64").sort_index())


@pytest.mark.parametrize("name", dimensions.names())
def test_every_dimension_counts_computes_and_filters_alike(store, name):
    expected = expected_counts(store, name)
    assert len(expected) >= 2, f"the fixture has one value of {name} only"
    # The store counts by it (from cell_counts or by joining), with the counts pandas gets from the rows.
    counts = store.label_counts(JUDGE, [name]).set_index(name).sort_index()
    pd.testing.assert_frame_equal(counts[["refused", "complied"]], expected, check_names=False)
    # Metrics group by it, from the counts and from the judged rows alike, with the same counts.
    from_counts = DefenseRates(store.label_counts(JUDGE, [name]), [name], ci=False).table.set_index(name)
    from_rows = DefenseRates(store.judged(JUDGE), [name], ci=False).table.set_index(name)
    pd.testing.assert_frame_equal(from_counts, from_rows, check_dtype=False)
    assert from_counts["refused"].to_dict() == expected["refused"].to_dict()
    # The dashboard offers it as a filter, labelled; a Store filter on one value returns exactly its rows.
    assert name in filters.STORE_FILTERS and filters.LABELS[name] == dimensions.by_name(name).label
    value = str(expected.index[0])
    kept = store.judged(JUDGE, filters.store_filters({name: [value]}))
    assert len(kept) == int(expected.loc[value].sum()) and set(kept[name]) == {value}
    page, total = store.completion_page(JUDGE, {name: [value]}, limit=100)
    assert total == len(kept) and set(page["completion_id"]) == set(kept["completion_id"])
    assert store.label_counts(JUDGE, [], {name: [value]})["refused"].iloc[0] == expected.loc[value, "refused"]


@pytest.mark.parametrize("name", dimensions.names())
def test_the_cli_stats_by_takes_every_dimension(store, name, capsys):
    code = cli.main(["stats", "--db", str(store.path), "--by", name, "--kinds", "", "--probe-set", "all", "--no-ci",
                     "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {row[name]: row["refused"] for row in rows} == expected_counts(store, name)["refused"].to_dict()


def test_scenario_is_a_dimension_metrics_compute(store):
    """On main the store counted by scenario while DefenseRates refused it ("cannot group by scenario")."""
    counts = store.label_counts(JUDGE, ["model", "scenario"])
    table = DefenseRates(counts, ["model", "scenario"], ci=False).table
    assert table["n"].sum() == len(store.completion_rows()) and table["scenario"].nunique() >= 2
    deviations = DefenseRates(store.judged(JUDGE), ["model", "scenario"], resamples=50).deviations()
    assert set(deviations["scenario"]) == set(counts["scenario"])


def test_every_list_is_read_from_the_table():
    assert rates.DIMENSIONS == dimensions.names() == filters.STORE_FILTERS == tuple(FILTER_COLUMNS)
    assert set(CELL_COLUMNS) == set(dimensions.cell_dimensions()) == set(dimensions.names()) - {"scenario", "source"}
    assert rates.CELL_GRAIN == cached.CELL_GRAIN == ("model", "language", "group", "strategy",
                                                       "scenario_category", "kind")
    assert set(rates.BASELINE_DIMENSIONS) == {"model", "language", "run_id", "kind", "source", "probe_set"}
    assert cached.DEVIATION_BASELINE == dimensions.within() == ("model", "language")
    with pytest.raises(KeyError):
        dimensions.by_name("colour")
    assert dimensions.unknown(["model", "colour"]) == ["colour"]
