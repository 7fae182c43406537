"""Corrected Defense Rates in the dashboard and the report (issue 13), through AppTest on real DuckDB files.

tests/fixtures/ppi_db.py builds a store whose judge misses refusals for black people only, with a half sample labelled:
the corrected values (women 1.0, jewish 0.0, black 0.5 for both models) differ from the judge-only ones
(black 0.25), so a page that forgot to switch, or switched where there is no sample, fails here.
"""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from core.report.html import build_report
from core.store import Store
from tests.fixtures import charts, dashboard_db, ppi_db
from tests.fixtures.apptest import open_page
from ui.common import escape_markdown


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    path = tmp_path_factory.mktemp("ppi_pages") / "audit.duckdb"
    ppi_db.build(path)
    return path


@pytest.fixture()
def use(monkeypatch):
    def chosen(path) -> None:
        monkeypatch.setenv("AUDIT_DB", str(path))
        monkeypatch.setenv("AUDIT_READONLY", "1")  # reading pages: must work in a demo session too
    return chosen


def heatmap(app: AppTest, index: int = 0) -> tuple[list, list, list, dict]:
    figure = charts.heatmaps(app)[index]  # Vega-Lite; each cell's tooltip keyed by the (model, group) it sends
    return figure["x"], figure["y"], figure["z"], figure["hover"]


def test_heatmap_is_corrected_by_default_where_a_sample_exists_and_switches_to_judge_only(sampled, use):
    use(sampled)
    app = open_page("pages/heatmaps.py")
    assert app.query_params["estimate"] == "ppi"
    x, y, z, hover = heatmap(app)
    assert x == ["Women", "Black people", "Jewish people"] and y == ["model-a", "model-b"]
    assert z == [[pytest.approx(1.0), pytest.approx(0.5), pytest.approx(0.0)]] * 2
    black = hover[("model-a", "black")]
    assert "corrected by 72 human checks" in black and "Human checks = 12" in black and "n = 24" in black
    assert "Defense Rate = 0.500 [" in black and "Judge's DR (judge alone) = 0.000" in black
    warnings = [w.value for w in app.warning]
    assert any(escape_markdown("false-compliance rate") in w and "differs significantly" in w for w in warnings)

    estimate = next(s for s in app.sidebar.selectbox if s.key == "heatmaps_option_estimate")
    assert estimate.options == ["corrected by 72 human checks", "judge only"]
    estimate.set_value("judge").run()
    assert app.query_params["estimate"] == "judge"
    x, _, z, hover = heatmap(app)
    assert x == ["Women", "Black people", "Jewish people"] and z == [[1.0, 0.25, 0.0]] * 2
    assert "judge only" in hover[("model-a", "black")] and "Human checks" not in hover[("model-a", "black")]
    assert not any("differs significantly" in w.value for w in app.warning)


def test_heatmap_cells_with_too_few_human_checks_are_drawn_grey_with_n_and_why(sampled, use):
    """No corrected DR below the minimum of human checks: the cell is still drawn (grey, in the chart's data with a
    number Vega-Lite does not filter out), its text says how many checks it has, its hover why in plain words."""
    use(sampled)
    app = open_page("pages/heatmaps.py", min_human="13")
    figure = charts.heatmaps(app)[0]
    z, hover = figure["z"], figure["hover"]
    assert z == [[None, None, None]] * 2  # no estimate, no pretend number
    assert charts.drawn_by_vega(figure) == set(figure["rows"])  # every cell is drawn, none left blank
    for key, row in figure["rows"].items():
        assert row["grey"] and row["text"] == "12 checks", key
        assert "Defense Rate = no estimate: n = 12 human checks, fewer than the 13 a corrected estimate needs" in hover[key]
        assert "human labels" not in hover[key] and "none (" not in hover[key]  # core.ppi's own wording, not shown
    assert any("Grey cells" in c.value and "fewer than 13 human checks" in c.value for c in app.caption)
    deviation = open_page("pages/heatmaps.py", metric="deviation")
    _, _, z, hover = heatmap(deviation)
    assert z[0] == [pytest.approx(0.5), pytest.approx(0.0), pytest.approx(-0.5)]  # corrected model mean 0.5
    assert "Human checks = 12" in hover[("model-a", "jewish")]


def test_pages_without_a_sample_stay_judge_only(tmp_path, use):
    path = tmp_path / "audit.duckdb"
    dashboard_db.build(path)
    use(path)
    app = open_page("pages/heatmaps.py")
    estimate = next(s for s in app.sidebar.selectbox if s.key == "heatmaps_option_estimate")
    assert estimate.options == ["judge only"] and app.query_params["estimate"] == "judge"
    assert any("No review sample" in c.value for c in app.sidebar.caption)
    overview = open_page()
    head = overview.dataframe[0].value
    assert list(head["estimate"]) == ["judge only", "judge only"] and "n_human" not in head.columns
    calibration = open_page("pages/calibration.py")
    assert any("No labelled review sample yet" in i.value for i in calibration.info)


def test_overview_headline_is_corrected_and_labelled(sampled, use):
    use(sampled)
    app = open_page()
    head = app.dataframe[0].value.set_index("model")
    assert list(head["estimate"]) == ["corrected by 36 human checks"] * 2
    assert head.loc["model-a", "dr"] == pytest.approx(0.5)  # (1 + 0 + 0.5) / 3
    assert head.loc["model-a", "dr_judge"] == pytest.approx(24 / 72)  # the judge's own verdicts
    assert head.loc["model-a", "observed_gap"] == pytest.approx(1.0)
    assert head.loc["model-a", "gap_ci_low"] > 0.3 and bool(head.loc["model-a", "disparity"])
    assert head.loc["model-a", "ci_low"] < 0.5 < head.loc["model-a", "ci_high"]
    groups = app.dataframe[1].value
    black = groups[(groups["model"] == "model-b") & (groups["group_name"] == "Black people")]
    assert black["dr"].item() == pytest.approx(0.5) and black["n_human"].item() == 12


def test_overview_falls_back_to_judge_only_for_a_model_with_too_few_checks(tmp_path, use):
    path = tmp_path / "audit.duckdb"
    ppi_db.build(path, per_cell=1)  # one check per stratum: 3 per model, fewer than 10
    use(path)
    head = open_page().dataframe[0].value.set_index("model")
    assert list(head["estimate"]) == ["judge only"] * 2
    assert head.loc["model-a", "n_human"] == 3 and "fewer than the 10 needed" in head.loc["model-a", "note"]


def test_calibration_page_shows_the_judge_error_by_group(sampled, use):
    use(sampled)
    app = open_page("pages/calibration.py")
    errors = next(d.value for d in app.dataframe if "false_compliance" in d.value.columns).set_index("group")
    assert errors.loc["Black people", "false_compliance"] == "1.00"  # text: the column has missing values, shown as an en dash
    assert errors.loc["Women", "false_compliance"] == "0.00"
    assert float(errors.loc["Black people", "false_compliance_ci_low"]) > 0.5
    tests = next(d.value for d in app.dataframe if "differs" in d.value.columns).set_index("rate")
    assert bool(tests.loc["false-compliance rate", "differs"]) and not bool(tests.loc["false-refusal rate", "differs"])
    assert any(escape_markdown("false-compliance rate") in w.value for w in app.warning)  # Markdown source
    assert any("errors by group" in json.loads(c.proto.spec)["layout"]["title"]["text"]
               for c in app.get("plotly_chart"))


def test_report_holds_both_estimates_and_the_judge_error(sampled, tmp_path):
    page, summary = build_report(Store(sampled, readonly=True))
    assert summary["n_human"] == 72
    assert "Headline: for whom" in page and "Overall Defense Rate per model, judge only" in page
    assert "English: Defense Rate per group, corrected by 72 human checks" in page
    assert "English: Defense Rate per group (judge only)" in page
    corrected = page[page.index("Headline: for whom"):page.index("Overall Defense Rate per model, judge only")]
    assert "(corrected by 36 human checks): gap 0.93 [0.52, 1.00] beyond noise" in corrected
    assert "<td>0.50</td>" in corrected and "<td>0.33</td>" in corrected  # corrected dr, the judge's own DR
    judge_only = page[page.index("Overall Defense Rate per model, judge only"):]
    assert "<td>0.42</td>" in judge_only  # 30/72: the judge, 6 human verdicts per model overriding it
    errors = page[page.index("errors by group (random review sample)"):]
    assert "False-compliance rate" in errors and "differs significantly" in errors

    plain = tmp_path / "plain.duckdb"
    dashboard_db.build(plain)
    page, summary = build_report(Store(plain, readonly=True))
    assert summary["n_human"] == 0 and "corrected by" not in page
    assert "No labelled review sample in this selection" in page


def test_why_a_cell_has_no_corrected_estimate_is_said_in_plain_words():
    """core.ppi's notes are for programmers ("stratum run_id=..."); the dashboard says the same for a reader."""
    from core.stats.estimates import missing_reason, missing_short

    assert missing_reason(24, 7, 10) == "n = 7 human checks, fewer than the 10 a corrected estimate needs"
    assert missing_reason(24, 1, 10) == "n = 1 human check, fewer than the 10 a corrected estimate needs"
    assert missing_short(24, 7, 10) == "7 checks" and missing_short(24, 1, 10) == "1 check"
    assert missing_reason(0, 0, 10) == "no answer without an error in this cell: nothing to estimate"
    assert missing_short(0, 0, 10) == "no answers"
    note = "stratum run_id=r1, model=model-a, language=en, group=black, kind=attack has 1 human labels (needs 2)"
    said = missing_reason(40, 12, 10, note)
    assert said == ("only 1 human check of model-a's en black attack answers in run r1: each part of the review "
                    "sample a corrected estimate rests on needs at least 2")
    assert "stratum" not in said and "=" not in said and missing_short(40, 12, 10, note) == "too few checks"
