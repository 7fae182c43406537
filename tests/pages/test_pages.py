"""The dashboard pages through Streamlit's AppTest, on a real database with known Defense Rates.

See tests/fixtures/dashboard_db.py for the data: model-a refuses women 4/4, jewish 2/4, black 1/4; model-b
women 2/4, jewish and black 0/4. Widgets must change what is shown; assertions are on values.
"""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from ui.jobs import MANAGER
from core.store import Store, StoreError
from tests.fixtures.charts import drawn_by_vega, heatmaps
from tests.fixtures.apptest import open_page
from tests.fixtures.apptest import app_test


def figures(app: AppTest) -> list[dict]:
    """The page's Vega-Lite heatmaps (tests/fixtures/charts.py); no Plotly chart on this page."""
    assert not app.get("plotly_chart")
    return heatmaps(app)


def heat(figure: dict) -> tuple[list, list, list]:
    return figure["x"], figure["y"], figure["z"]


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def widget(items, key):
    return next(w for w in items if w.key == key)


# -- heatmaps --------------------------------------------------------------------------------------
def test_heatmap_model_by_group_shows_dr_with_n_and_ci_sorted_by_dr_then_name(audit):
    app = open_page("pages/heatmaps.py")
    model_by_group = figures(app)[0]
    assert heat(model_by_group) == (["Women", "Jewish people", "Black people"], ["model-a", "model-b"],
                                    [[1.0, 0.5, 0.25], [0.5, 0.0, 0.0]])
    hover = model_by_group["hover"]  # each cell's tooltip, keyed by the (model, group) a click on it sends
    assert model_by_group["spec"]["params"][0]["select"] == {  # a click picks that one cell, by its keys
        "type": "point", "fields": ["row", "col"], "on": "click", "clear": "dblclick", "toggle": False}
    assert "Defense Rate = 0.500" in hover[("model-a", "jewish")] and "n = 4" in hover[("model-a", "jewish")]
    assert "[" in hover[("model-a", "jewish")]  # its 95% CI
    # 4 judged answers per cell, fewer than the 10 a coloured cell needs: grey, still drawn, n and why in the hover
    assert all(row["grey"] for row in model_by_group["rows"].values())
    assert drawn_by_vega(model_by_group) == set(model_by_group["rows"])
    assert "(grey: n = 4 judged answers, fewer than the 10 a coloured cell needs)" in hover[("model-a", "jewish")]
    assert app.query_params["sort"] == "dr"

    widget(app.selectbox, "heatmaps_option_sort").set_value("name").run()
    assert heat(figures(app)[0]) == (["Black people", "Jewish people", "Women"], ["model-a", "model-b"],
                                     [[0.25, 0.5, 1.0], [0.0, 0.0, 0.5]])
    assert app.query_params["sort"] == "name"  # the URL reopens this view


def test_heatmap_deviation_is_centred_on_the_model_mean(audit):
    app = open_page("pages/heatmaps.py", metric="deviation")
    figure = figures(app)[0]
    x, y, z = heat(figure)
    assert y == ["model-a", "model-b"]
    model_a_mean = 7 / 12  # 4 + 2 + 1 refused of 12
    assert z[0][x.index("Women")] == pytest.approx(1 - model_a_mean)
    assert z[1][x.index("Black people")] == pytest.approx(0 - 2 / 12)
    color = next(layer for layer in figure["spec"]["layer"] if layer["mark"]["type"] == "rect")["encoding"]["color"]
    assert color["condition"]["scale"]["domainMid"] == 0 and color["condition"]["scale"]["scheme"] == "redblue"
    assert figure["text"][("model-a", "women")] == "+0.42"  # signed, centred on the model mean


def test_every_deviation_heatmap_of_the_page_shares_one_colour_scale(audit):
    """Two charts of the same quantity on one page never colour it differently: the model x group and both
    breakdowns of deviations use one domain, symmetric about 0 (a deviation beyond it takes the end colour)."""
    charts = figures(open_page("pages/heatmaps.py", metric="deviation", breakdowns="on"))
    assert len(charts) == 3
    scales = [next(layer for layer in f["spec"]["layer"] if layer["mark"]["type"] == "rect")["encoding"]["color"]
              ["condition"]["scale"] for f in charts]
    assert all(scale["domain"] == scales[0]["domain"] for scale in scales)
    low, high = scales[0]["domain"]
    assert low == -high == -0.5 and all(scale["clamp"] and scale["domainMid"] == 0 for scale in scales)
    assert max(abs(v) for f in charts for row in f["z"] for v in row if v is not None) > high  # one is beyond it


def test_heatmap_model_filter_and_breakdowns(audit):
    app = open_page("pages/heatmaps.py")
    assert [f["title"] for f in figures(app)] == ["Model x group (English)"]  # breakdowns on demand
    widget(app.toggle, "heatmaps_option_breakdowns").set_value(True).run()
    assert app.query_params["breakdowns"] == "on"
    titles = [f["title"] for f in figures(app)]
    assert titles == ["Model x group (English)", "Strategy x group, model-a (English)",
                      "Scenario category x group, model-a (English)"]
    assert len(figures(open_page("pages/heatmaps.py", breakdowns="on"))) == 3  # a shared link opens them
    x, strategies, z = heat(figures(app)[1])
    assert strategies == ["Chain-of-thought decomposition", "Persona assignment"]
    assert [row[x.index("Women")] for row in z] == [1.0, 1.0]  # model-a refused women every time

    widget(app.sidebar.multiselect, "heatmaps_filter_model").set_value(["model-b"]).run()
    assert heat(figures(app)[0])[1] == ["model-b"]
    assert figures(app)[1]["title"] == "Strategy x group, model-b (English)"
    assert app.query_params["model"] == "model-b"


# -- drill-down ------------------------------------------------------------------------------------
def test_drilldown_lists_the_filtered_completions_and_filters_by_verdict(audit):
    app = open_page("pages/drilldown.py", model="model-a", group="jewish")
    assert metric(app, "Matching completions") == "4"
    table = app.dataframe[0].value
    assert set(table["group"]) == {"Jewish people"} and set(table["model"]) == {"model-a"}
    assert sorted(table["label"]) == ["complied", "complied", "refused", "refused"]

    widget(app.sidebar.multiselect, "drilldown_filter_verdict").set_value(["complied"]).run()
    assert metric(app, "Matching completions") == "2"
    assert set(app.dataframe[0].value["label"]) == {"complied"}
    widget(app.sidebar.multiselect, "drilldown_filter_model").set_value(["model-a", "model-b"]).run()
    assert metric(app, "Matching completions") == "6"


def test_drilldown_detail_shows_verdicts_counterfactuals_and_hostile_text_inert(audit):
    app = open_page("pages/drilldown.py", completion=audit["hostile_id"])
    codes = [c.value for c in app.code]
    assert audit["hostile"] in codes  # the response, verbatim, as preformatted text
    markdown = " ".join(m.value for m in app.markdown)
    assert "<script>" not in markdown and "![tracker]" not in markdown and "not bold" not in markdown
    verdicts = app.dataframe[2].value  # after the completion list and the completion's facts
    assert list(verdicts["judge"]) == ["refusal"] and list(verdicts["rationale"]) == ["rule for refused"]
    texts = [t.value for t in app.text]
    assert "Women: refused (this completion)" in texts
    assert any(t.startswith("Jewish people: ") for t in texts) and any(t.startswith("Black people: ") for t in texts)
    # counterfactuals are the same scenario and strategy for the other groups, answered by the same model
    assert sum(c.startswith("answer of model-a to ") for c in codes) == 2


def test_human_verdict_overrides_the_judge_in_every_view(audit):
    store = Store(audit["path"])
    page, _ = store.completion_page("refusal", {"model": "model-b", "group": "black"})
    target = page["completion_id"][0]  # judged complied
    app = open_page("pages/drilldown.py", completion=target)
    app.radio[0].set_value("refused")
    app.text_input[0].input("the answer refuses in its second sentence")
    app.text_input[1].input("auditor")
    next(b for b in app.button if b.label == "Save human verdict").click().run()
    assert not app.exception
    facts = app.dataframe[1].value
    # not in the random review sample (there is none), so not a random check: the page says so
    assert (facts.loc[0, "by"], facts.loc[0, "verdict"]) == ("human (chosen by hand, not random)", "refused")
    assert list(app.dataframe[2].value["judge"]) == ["human", "refusal"]
    assert list(app.dataframe[3].value["note"]) == ["the answer refuses in its second sentence"]

    overview = app_test(timeout=60).run()
    groups = overview.dataframe[1].value
    row = groups[(groups["model"] == "model-b") & (groups["group_name"] == "Black people")]
    assert row["dr"].item() == pytest.approx(0.25)
    heatmaps = open_page("pages/heatmaps.py", sort="name")
    assert heat(figures(heatmaps)[0])[2][1] == [0.25, 0.0, 0.5]


# -- export ----------------------------------------------------------------------------------------
def test_export_counts_rows_and_names_the_file_after_the_filter(audit):
    app = open_page("pages/export.py", group="women")
    assert metric(app, "Rows in the file") == "8"
    assert "File: forwhom_group-women.csv" in [t.value for t in app.text]
    assert app.get("download_button")[0].proto.label == "Download CSV"

    widget(app.sidebar.multiselect, "export_filter_model").set_value(["model-b"]).run()
    assert metric(app, "Rows in the file") == "4"
    assert "File: forwhom_group-women_model-model-b.csv" in [t.value for t in app.text]
    widget(app.sidebar.multiselect, "export_filter_verdict").set_value(["complied"]).run()
    assert metric(app, "Rows in the file") == "2"
    assert "File: forwhom_group-women_judge-refusal_model-model-b_verdict-complied.csv" in [t.value for t in app.text]
    preview = app.dataframe[0].value
    assert set(preview["label"]) == {"complied"} and set(preview["model"]) == {"model-b"}


def test_export_rows_are_one_per_completion_with_verdicts(audit):
    rows = Store(audit["path"], readonly=True).completion_rows({"group": ["women"]}, ["refused"], "refusal")
    assert len(rows) == 6 and rows["completion_id"].is_unique
    assert set(rows["verdict_refusal"]) == {"refused"}


# -- run -------------------------------------------------------------------------------------------
def test_run_page_counts_probes_for_the_selection(audit):
    app = open_page("pages/run.py")
    assert metric(app, "Probes") == str(13 * 5 * 2)  # 13 English groups x 5 strategies x 2 per cell
    widget(app.multiselect, "run_groups").set_value(["black", "women"])
    widget(app.multiselect, "run_strategies").set_value(["chaining"])
    widget(app.number_input, "run_per_cell").set_value(3)
    app.run()
    assert metric(app, "Probes") == "6"
    widget(app.text_input, "run_other").input("local:/models/another")
    app.run()
    assert metric(app, "Completions to generate") == "12"


@pytest.mark.model
def test_run_executes_in_the_background_cancels_and_resumes(audit):
    app = open_page("pages/run.py")
    widget(app.multiselect, "run_groups").set_value(["black"])
    widget(app.multiselect, "run_strategies").set_value(["chaining"])
    widget(app.number_input, "run_per_cell").set_value(3)
    widget(app.number_input, "run_tokens").set_value(4)
    widget(app.number_input, "run_batch").set_value(1)
    app.run()
    widget(app.button, "run_start").click().run()
    job = MANAGER.jobs(audit["path"])[0]
    cancel = next(b for b in app.button if b.key == f"run_cancel_{job.run_id}")
    cancel.click().run()
    MANAGER.wait(job.run_id, timeout=300)
    assert job.status == "stopped"
    stopped = Store(audit["path"]).run_counts(job.run_id)["completions"]
    assert stopped < 3

    app.run()
    assert widget(app.selectbox, "run_resume_pick").value == job.run_id
    widget(app.button, "run_resume").click().run()
    MANAGER.wait(job.run_id, timeout=300)
    resumed = MANAGER.job(job.run_id)
    assert resumed.status == "completed", resumed.error
    assert (resumed.progress.done, resumed.progress.total) == (3, 3)
    assert resumed.progress.judged == 3 and 0 <= resumed.progress.dr <= 1
    app.run()
    runs = next(d.value for d in app.dataframe if "run_id" in d.value.columns).set_index("run_id")
    assert runs.loc[job.run_id, "status"] == "completed" and runs.loc[job.run_id, "completions"] == 3
    assert f"{job.run_id}: completed (target 1 of 1: smollm2-135m-instruct)" in [t.value for t in app.text]
    bar = app.get("progress")[0].proto
    assert bar.value == 100 and bar.text.startswith("3 / 3 probes")
    assert "run_resume_pick" not in [s.key for s in app.selectbox]  # nothing left to resume


# -- read-only demo sessions -----------------------------------------------------------------------
def test_readonly_session_has_no_run_page_or_relabelling_and_cannot_write(audit, monkeypatch):
    monkeypatch.setenv("AUDIT_READONLY", "1")
    before = audit["path"].stat().st_mtime_ns
    app = app_test(timeout=60).run()
    assert "Demo session" in app.info[0].value
    with pytest.raises(ValueError):
        app.switch_page("pages/run.py")  # not among the pages of a demo session
    app.switch_page("pages/drilldown.py")
    app.query_params["completion"] = audit["hostile_id"]
    app.run()
    assert not app.exception
    assert "Save human verdict" not in [b.label for b in app.button]
    assert not app.radio and "Read-only demo session: verdicts cannot be changed here." in [c.value for c in app.caption]
    with pytest.raises(StoreError, match="read-only"):
        Store(audit["path"], readonly=True).set_human_verdict(audit["hostile_id"], "complied")
    export = open_page("pages/export.py")
    assert metric(export, "Rows in the file") == "24"
    assert audit["path"].stat().st_mtime_ns == before


def test_run_page_offers_only_targets_that_can_run(audit):
    """Targets imported with MiJaBench-Align results hold results only; the Run page must not offer them."""
    store = Store(audit["path"])
    store.save_target("paper-llama", "imported", "Llama 3.2 1B")
    store.save_target("my-vllm", "openai", "qwen", base_url="http://127.0.0.1:9/v1",
                      settings={"api_key_env": "VLLM_KEY"})
    app = open_page("pages/run.py")
    options = widget(app.multiselect, "run_targets").options
    assert "my-vllm" in options and "smollm2" in options
    assert "paper-llama" not in options
