"""The statistics pages (scaling, cross-lingual, over-refusal, reproduction) on a real database, via AppTest.

The database holds a synthetic MiJaBench-Align import that follows the paper's heatmaps (12 models,
both languages, 100 prompts per group) and a small run with benign control probes of known labels.
"""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from bench.synthetic_align import write_synthetic_align
from core.files.align import import_align
from core.probes.builder import build_bundled
from core.stats.rates import DefenseRates, scaling
from core.store import CompletionRecord, Store, VerdictRecord
from tests.fixtures.apptest import app_test
from tests.fixtures.charts import heatmaps
from tests.fixtures.paths import ROOT
from ui.common import escape_markdown


@pytest.fixture(scope="module")
def stats_db(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stats_pages")
    source = folder / "align.parquet"
    write_synthetic_align(source, ["en", "pt"], prompts_per_group=100, mean_chars=80)
    store = Store(folder / "audit.duckdb")
    import_align(store, source)
    # Controls: model Qwen3-8B-FP8 refuses 3 of 4 benign requests about black people, 1 of 4 about women.
    refused = {"black": 3, "women": 1}
    controls = {g: [p for p in build_bundled() if p.kind == "control" and p.language == "en" and p.group == g][:4]
                for g in refused}
    store.add_probes([p for probes in controls.values() for p in probes])
    store.create_run("controls", {}, [p.probe_id for probes in controls.values() for p in probes])
    records, verdicts = [], []
    for group, probes in controls.items():
        for index, probe in enumerate(probes):
            records.append(CompletionRecord("controls", probe.probe_id, "Qwen3-8B-FP8", "benign answer"))
            verdicts.append(VerdictRecord(records[-1].completion_id, "align:qwe235",
                                          "refused" if index < refused[group] else "complied"))
    store.save_results(records, verdicts)
    return folder / "audit.duckdb"


@pytest.fixture()
def page(stats_db, monkeypatch):
    monkeypatch.setenv("AUDIT_DB", str(stats_db))
    monkeypatch.setenv("AUDIT_READONLY", "1")  # every statistics page must work in a read-only demo session

    def run(name: str) -> AppTest:
        app = app_test(f"pages/{name}.py", timeout=60).run()
        assert not app.exception, app.exception
        assert "Content warning" in app.warning[0].value
        return app

    return run


def test_scaling_page_shows_disparity_by_size_per_family(page, stats_db):
    app = page("scaling")
    assert len(app.get("plotly_chart")) == 1
    trend, per_model = app.dataframe[0].value, app.dataframe[1].value
    assert sorted(trend["family"]) == ["gemma", "llama", "qwen"]
    frame = Store(stats_db, readonly=True).judged("align:qwe235", {"kind": "attack", "language": "en"})
    expected = scaling(DefenseRates(frame, ["model", "language", "group"]).disparity(), Store(stats_db).targets())
    slopes = expected.drop_duplicates("family").set_index("family")["family_slope_per_10x"]
    assert trend.set_index("family")["family_slope_per_10x"].to_dict() == pytest.approx(slopes.to_dict())
    assert len(per_model) == 12 and per_model.set_index("model").loc["Llama-3.3-70B-Instruct", "size_b"] == 70
    app.selectbox(key="scaling_metric").set_value("gap").run()
    assert not app.exception


def test_cross_lingual_page_ranks_shared_groups(page, stats_db):
    app = page("cross_lingual")
    agreement = app.dataframe[0].value
    assert len(agreement) == 12 and set(agreement["shared"]) == {5}
    frame = Store(stats_db, readonly=True).judged("align:qwe235", {"kind": "attack"})
    expected = DefenseRates(frame, ["model", "language", "group"], ci=False).rank_agreement().set_index("model")
    shown = agreement.set_index("model")
    # shown as text to 3 significant digits ("–" where a model has no rho: never "None")
    rho = {m: float("nan") if v == "–" else float(v) for m, v in shown["spearman"].to_dict().items()}
    assert rho == pytest.approx(expected["spearman"].to_dict(), nan_ok=True, abs=5e-3)
    assert len(app.get("plotly_chart")) == 1  # the scatter; the heatmaps are Vega-Lite, one per language
    assert [h["title"] for h in heatmaps(app)] == ["English", "Portuguese"]
    assert not any(h["spec"].get("params") for h in heatmaps(app))  # no cell to click: no selection
    app.multiselect(key="cross_models").set_value(["gemma-3-1b-it"]).run()
    assert list(app.dataframe[0].value["model"]) == ["gemma-3-1b-it"]


def test_over_refusal_page_reports_benign_refusals_and_their_gap(page):
    app = page("over_refusal")
    table = app.dataframe[0].value.set_index("model")
    assert list(table.index) == ["Qwen3-8B-FP8"]
    assert table.loc["Qwen3-8B-FP8", "over_refusal"] == pytest.approx(0.5)
    assert table.loc["Qwen3-8B-FP8", "observed_gap"] == pytest.approx(0.5)
    row = table.loc["Qwen3-8B-FP8"]
    assert row["gap_ci_low"] <= row["gap"] <= 0.5 <= row["gap_ci_high"]
    assert len(app.get("plotly_chart")) == 1  # the trade-off scatter; the heatmap is Vega-Lite
    (heatmap,) = heatmaps(app)
    assert heatmap["y"] == ["Qwen3-8B-FP8"] and heatmap["z"][0][heatmap["x"].index("Black people")] == pytest.approx(0.75)
    app.selectbox(key="over_option_language").set_value("pt").run()
    assert "No judged control probes in Portuguese" in app.info[0].value


def test_reproduction_page_matches_the_paper(page):
    app = page("reproduction")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Cells compared"] == "156" and metrics["Models"] == "12"
    assert float(metrics["Max |difference|"]) <= 0.006
    cells = app.dataframe[0].value
    assert len(cells) == 156 and cells["difference"].abs().max() <= 0.006
    assert not app.get("plotly_chart") and [h["title"] for h in heatmaps(app)] == [
        "Paper: deviation from the model mean", "Yours: deviation from the model mean (CI in hover)",
        "Yours minus the paper's"]
    app.selectbox(key="repro_option_language").set_value("pt").run()
    assert {m.label: m.value for m in app.metric}["Cells compared"] == "108"


def test_pages_without_database_say_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIT_DB", str(tmp_path / "none.duckdb"))
    for name in ("scaling", "cross_lingual", "over_refusal", "reproduction"):
        app = app_test(f"pages/{name}.py", timeout=60).run()
        assert not app.exception
        assert "import-align" in app.info[0].value, name


def test_store_facts_are_json_ready(stats_db):
    counts = Store(stats_db, readonly=True).judge_counts()
    assert json.loads(json.dumps(counts)) == {"align:qwe235": 26400 + 8}


def test_reproduction_page_without_paper_models_shows_the_papers_figures_and_maps(tmp_path, monkeypatch):
    """The demo's models are not the paper's: the page shows the paper's heatmap and tables as published, the
    mapping controls beside them; mapping a model to a paper model turns it into the comparison."""
    store = Store(tmp_path / "audit.duckdb")
    store.restore(ROOT / "data" / "demo" / "results.jsonl.gz")
    models = sorted(store.summary()["models"])
    monkeypatch.setenv("AUDIT_DB", str(tmp_path / "audit.duckdb"))
    monkeypatch.setenv("AUDIT_READONLY", "1")
    app = app_test("pages/reproduction.py", timeout=60).run()
    assert not app.exception, app.exception
    assert "No model of yours is mapped" in app.info[0].value and "Figure 3" in app.info[0].value
    assert not app.get("plotly_chart") and len(heatmaps(app)) == 1 and not app.metric
    paper = app.dataframe[0].value
    assert list(paper["model"])[-1] == "Average" and len(paper) == 13 and "mean DR" in paper.columns
    assert len(app.dataframe) == 4  # the heatmap's table, strategies, judges, scenario categories
    # each label is the model's name as Markdown that shows it literally
    assert [s.label for s in app.selectbox if s.key.startswith("repro_map_")] == [escape_markdown(m) for m in models]
    app.selectbox(key=f"repro_map_{models[0]}").set_value("Gemma 3 1B").run()
    assert not app.exception, app.exception
    assert {m.label: m.value for m in app.metric}["Cells compared"] == "13"
    assert len(heatmaps(app)) == 3 and len(app.dataframe[0].value) == 13  # the cell-by-cell table
    app.selectbox(key="repro_option_language").set_value("pt").run()
    assert not app.exception and {m.label: m.value for m in app.metric}["Cells compared"] == "9"
