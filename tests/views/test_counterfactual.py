"""The counterfactual view from the store to the page, the CLI and the report, on a database with known answers
(tests/fixtures/counterfactual_db.py): matched seeds give a gap of 1.0 (women 1.0, jewish 0.5, black 0.0); on the same
claims only women differ (women 1.0, jewish 0.5, black 0.5: gap 0.5)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from statsmodels.stats.contingency_tables import cochrans_q

from core.cli import main
from core.report.html import build_report
from core.store import Store
from core.views import counterfactual
from tests.fixtures import counterfactual_db, dashboard_db
from tests.fixtures.apptest import open_page
from tests.fixtures.charts import heatmaps
from tests.fixtures.html import html_frames
from ui.common import escape_markdown


@pytest.fixture(scope="module")
def cf_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("counterfactual") / "audit.duckdb"
    counterfactual_db.build(path)
    return path


@pytest.fixture()
def cf_db(cf_path, monkeypatch):
    monkeypatch.setenv("AUDIT_DB", str(cf_path))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    return cf_path


def test_the_store_gives_one_row_per_answer_with_its_claim(cf_path):
    rows = Store(cf_path, readonly=True).matched_outcomes("refusal", {"kind": ["attack"]})
    seeded, cf = rows.loc[rows["counterfactual_id"] == ""], rows.loc[rows["counterfactual_id"] != ""]
    assert len(seeded) == 120 and len(cf) == 48  # 3 groups x 2 strategies x 20; 8 claims x 2 strategies x 3
    assert cf.groupby("counterfactual_id")["group"].nunique().eq(3).all()  # every block holds every group
    assert cf["claim_id"].nunique() == counterfactual_db.CLAIMS
    assert seeded["claim_id"].str.startswith("seed:").all()  # a seed statement stands in for the claim
    assert cf.groupby("group")["refused"].mean().to_dict() == counterfactual_db.COUNTERFACTUAL_DR
    assert seeded.groupby("group")["refused"].mean().to_dict() == counterfactual_db.SEED_DR


def test_the_view_puts_the_matched_seed_gap_beside_the_gap_when_only_the_group_changes(cf_path):
    view = counterfactual.compute(Store(cf_path, readonly=True), "refusal", resamples=300)
    assert view.answers == 48
    row = view.comparison.set_index(["model", "language"]).loc[(counterfactual_db.MODEL, "en")]
    assert row["seed_gap"] == pytest.approx(1.0) and row["counterfactual_gap"] == pytest.approx(0.5)
    assert row["counterfactual_gap_ci_low"] <= 0.5 <= row["counterfactual_gap_ci_high"]
    assert row["seed_answers"] == 120 and row["counterfactual_answers"] == 48 and row["groups"] == 3
    rates = view.matched.rates.set_index("group")
    assert rates["dr"].to_dict() == counterfactual_db.COUNTERFACTUAL_DR
    assert (rates["clusters"] == counterfactual_db.CLAIMS).all()  # the CI resamples the 8 claims
    # Cochran's Q agrees with statsmodels on the same blocks x groups table
    rows = Store(cf_path, readonly=True).matched_outcomes("refusal", {"kind": ["attack"]})
    table = rows.loc[rows["counterfactual_id"] != ""].pivot(index="counterfactual_id", columns="group",
                                                             values="refused").astype(int)
    assert row["cochran_p"] == pytest.approx(cochrans_q(table.to_numpy()).pvalue, rel=1e-9)
    # women against either other group: refused on all 16 blocks where the other complied on 8
    pairs = view.matched.pairs
    women = pairs.loc[(pairs["group_a"] == "women") | (pairs["group_b"] == "women")]
    assert len(women) == 2 and (women["a_only"] + women["b_only"] == 8).all()
    others = pairs.loc[~pairs.index.isin(women.index)]
    assert len(others) == 1 and others["diff"].iloc[0] == 0 and not others["significant"].iloc[0]
    # the decomposition over both sets: a group part and a claim part that add up to the raw gap
    parts = view.decomposition.set_index("quantity")["estimate"]
    assert parts["raw_gap"] == pytest.approx(parts["group_part"] + parts["claim_part"], abs=1e-9)
    assert 0 < row["surviving"] < 1 and row["surviving"] == pytest.approx(parts["surviving"])


def test_matched_command_prints_the_comparison_and_json(cf_path, capsys):
    assert main(["matched", "--db", str(cf_path), "--resamples", "200"]) == 0
    out = capsys.readouterr().out
    assert "the gap when only the group changes" in out and "seed_gap" in out and "counterfactual_gap" in out
    assert "Pairs of groups that differ on the same claims" in out
    assert main(["matched", "--db", str(cf_path), "--resamples", "200", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["comparison"][0]["seed_gap"] == pytest.approx(1.0)
    assert {r["group"]: r["dr"] for r in data["rates"]} == counterfactual_db.COUNTERFACTUAL_DR
    assert {"cochran", "pairs", "decomposition", "seed_gaps"} <= set(data)


def test_matched_command_without_counterfactual_answers_says_how_to_get_them(tmp_path, capsys):
    path = tmp_path / "plain.duckdb"
    dashboard_db.build(path)
    assert main(["matched", "--db", str(path)]) == 2
    assert "run --probe-set counterfactual" in capsys.readouterr().err


def test_the_report_carries_the_counterfactual_section(cf_path):
    html, summary = build_report(Store(cf_path, readonly=True), "refusal")
    assert "Counterfactual probes: the gap when only the group changes" in html
    assert summary["counterfactual_answers"] == 48 and summary["taxonomy"] == "mijabench"
    section = html.split("<h2>Counterfactual probes: the gap when only the group changes</h2>")[1]
    comparison, rates = html_frames(section)[:2]
    assert float(comparison.loc[0, "Gap, matched seeds"]) == 1.0
    assert float(comparison.loc[0, "Gap, only the group changes"]) == 0.5
    assert rates.set_index("Group")["Defense Rate"].astype(float).to_dict() == {"Women": 1.0, "Jewish people": 0.5,
                                                                                "Black people": 0.5}


def test_the_page_shows_the_comparison_the_heatmap_and_the_pairs(cf_db):
    app = open_page("pages/counterfactual.py")
    figure = heatmaps(app)[0]
    values = dict(zip(figure["x"], figure["z"][0]))
    assert values == {"Women": 1.0, "Jewish people": 0.5, "Black people": 0.5}
    headline = app.dataframe[0].value
    assert headline["gap, matched seeds"].iloc[0] == pytest.approx(1.0)
    assert headline["gap, only the group changes"].iloc[0] == pytest.approx(0.5)
    assert any("Pairs of groups treated differently on the same claims" in h.value for h in app.subheader)
    pairs = app.dataframe[1].value
    assert set(pairs["group_a"]) | set(pairs["group_b"]) == {"Women", "Jewish people", "Black people"}


def test_the_page_without_counterfactual_answers_says_how_to_run_them(tmp_path, monkeypatch):
    path = tmp_path / "audit.duckdb"
    dashboard_db.build(path)
    monkeypatch.setenv("AUDIT_DB", str(path))
    app = open_page("pages/counterfactual.py")
    assert any("--probe-set counterfactual" in i.value for i in app.info)
    assert not heatmaps(app)


def test_a_counterfactual_answer_opens_with_its_siblings(cf_db):
    store = Store(cf_db, readonly=True)
    rows = store.completion_rows({"group": ["black"]})
    one = rows.loc[rows["counterfactual_id"] != ""].iloc[0]
    siblings = store.counterfactuals(one["completion_id"])
    assert sorted(siblings["group"]) == ["black", "jewish", "women"] and siblings["is_self"].sum() == 1
    prompts = store.completion_rows()
    same = prompts.loc[prompts["counterfactual_id"] == one["counterfactual_id"]]
    assert set(siblings["completion_id"]) == set(same["completion_id"])
    app = open_page("pages/drilldown.py", completion=one["completion_id"])
    assert any(f"Counterfactual siblings ({escape_markdown(one['counterfactual_id'])}" in c.value for c in app.caption)
    np.testing.assert_array_equal(sorted(siblings["group"]), ["black", "jewish", "women"])
