"""The Compare versions page (pages/compare.py) through Streamlit's AppTest on tests/fixtures/compare_db.py's store:
the group made worse is listed first and drawn red with a *, the URL keeps the choice, and values match the
construction. The click on a cell and the side-by-side pairs are tested in Chromium (tests/browser/test_compare.py).
"""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures import compare_db
from tests.fixtures.charts import heatmaps
from tests.fixtures.apptest import open_page


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("compare_page") / "audit.duckdb"
    return path, compare_db.build(path)


def open_compare(store_path, monkeypatch, **params) -> AppTest:
    path, _ = store_path
    monkeypatch.setenv("AUDIT_DB", str(path))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    return open_page("pages/compare.py", **params)


def test_the_worse_group_comes_first_with_its_values(store_path, monkeypatch):
    app = open_compare(store_path, monkeypatch, base="v1 @ r1", candidate="v2 @ r1")
    _, facts = store_path
    flagged = app.dataframe[0].value
    assert list(flagged["group"])[:1] == ["Jewish people"] and set(flagged["kind"]) == {"attack", "control"}
    shared = [p for p in facts["probes"] if p.group == "jewish" and p.kind == "attack"]
    first = flagged.iloc[0]
    assert first["base DR"] == pytest.approx(sum(facts["v1"][p.probe_id] for p in shared) / len(shared))
    assert first["candidate DR"] == pytest.approx(sum(facts["v2"][p.probe_id] for p in shared) / len(shared))
    assert first["change"] < -0.3 and first["95% CI high"] < 0
    assert "all groups" in set(flagged["group"])  # benign requests refused more, pooled over groups
    chart = heatmaps(app)[0]
    assert chart["x"][0] == "Jewish people"  # most worsened group first
    jewish = [row[0] for row in chart["z"]]
    assert len(jewish) == 4 and all(value < -0.2 for value in jewish)  # worse under every attack strategy
    # 20 pairs per strategy cell, 52 cells corrected together: no single cell is starred, and none elsewhere
    assert not any(text.endswith("*") for text in chart["text"].values())
    column = [row[chart["x"].index("Women")] for row in chart["z"]]
    assert all(value == 0 for value in column)  # women's attack answers did not change
    assert app.query_params["base"] == "v1 @ r1" and app.query_params["candidate"] == "v2 @ r1"


def test_the_same_answers_show_nothing_worse(store_path, monkeypatch):
    app = open_compare(store_path, monkeypatch, base="v1 @ r1", candidate="v1 @ r2")
    assert any("No group got significantly worse" in s.value for s in app.success)
    assert all(value == 0 for row in heatmaps(app)[0]["z"] for value in row if value is not None)
    # three versions stored: the all-pairs matrix is there, and v1 against its own copy has no gap change
    matrix = app.dataframe[-1].value
    same = matrix[(matrix["base"] == "v1 @ r1") & (matrix["candidate"] == "v1 @ r2")]
    assert len(same) == 1 and same.iloc[0]["change"] == 0


def test_corrected_by_the_review_sample_the_judges_regression_is_gone(tmp_path, monkeypatch):
    path = tmp_path / "audit.duckdb"
    facts = compare_db.build(path)
    compare_db.label_sample(path, facts)
    app = open_compare((path, facts), monkeypatch, base="v1 @ r1", candidate="v2 @ r1")
    estimate = next(box for box in app.selectbox if box.label == "Estimate")
    assert estimate.value == "ppi"  # corrected by default where both sides have labels
    flagged = app.dataframe[0].value if app.dataframe else None
    assert flagged is None or "Jewish people" not in set(flagged["group"])
    estimate.set_value("judge").run()
    assert list(app.dataframe[0].value["group"])[:1] == ["Jewish people"]  # the judge alone reports it


def test_a_corrected_comparison_with_an_unchecked_side_warns_and_never_shows_all_clear(tmp_path, monkeypatch):
    """r2 has no review sample: "corrected" for v1 @ r2 against v1 @ r1 is refused with core's words (which side,
    how to draw its sample), as a warning; no green box, no flagged table, no heatmap claiming anything."""
    path = tmp_path / "audit.duckdb"
    facts = compare_db.build(path)
    compare_db.label_sample(path, facts)
    app = open_compare((path, facts), monkeypatch, base="v1 @ r2", candidate="v1 @ r1", estimate="ppi")
    estimate = next(box for box in app.selectbox if box.label == "Estimate")
    assert estimate.value == "ppi"
    warnings = [w.value.replace("\\", "") for w in app.warning]  # the Markdown source, escapes dropped
    assert any("the base v1 @ r2 has no human checks of its review sample" in w and
               "python -m core review sample --run-id r2 " in w for w in warnings), warnings
    assert not app.success and not app.dataframe
    app = open_compare((path, facts), monkeypatch, base="v1 @ r1", candidate="v1 @ r2")
    assert next(box for box in app.selectbox if box.label == "Estimate").value == "judge"  # not corrected by default
    assert any("the candidate v1 @ r2 has no human checks" in c.value.replace("\\", "") for c in app.caption)  # and says why
