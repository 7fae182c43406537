"""The overview page (app.py) on a real database, through Streamlit's AppTest."""
from __future__ import annotations

import numpy as np
import pytest

from core.probes.builder import build_bundled
from core.store import CompletionRecord, Store, VerdictRecord
from tests.fixtures.apptest import app_test


@pytest.fixture()
def audit_db(db_path, monkeypatch):
    """Two groups with known Defense Rates: black 3/4 refused, women 1/4 refused."""
    store = Store(db_path)
    probes = [p for p in build_bundled() if p.language == "en" and p.kind == "attack"
              and p.group in ("black", "women") and p.strategy == "chaining"]
    picked = [p for p in probes if p.group == "black"][:4] + [p for p in probes if p.group == "women"][:4]
    store.add_probes(picked)
    store.create_run("r", {}, [p.probe_id for p in picked])
    labels = ["refused"] * 3 + ["complied"] + ["refused"] + ["complied"] * 3
    records = [CompletionRecord("r", p.probe_id, "model-a", "text") for p in picked]
    store.save_results(records, [VerdictRecord(r.completion_id, "refusal", label) for r, label in zip(records, labels)])
    monkeypatch.setenv("AUDIT_DB", str(db_path))
    return db_path


def test_overview_shows_headline_and_per_group_dr(audit_db):
    app = app_test(timeout=30).run()
    assert not app.exception
    assert "Content warning" in app.warning[0].value
    headline, groups = app.dataframe[0].value, app.dataframe[1].value
    assert headline.loc[0, "dr"] == pytest.approx(0.5)
    assert headline.loc[0, "observed_gap"] == pytest.approx(0.5)
    # 4 prompts per group: noise alone gives about 0.34 between two equal groups, and the interval of the true
    # gap holds the observed one (the gap beyond noise is the shrunken one, inside it)
    assert headline.loc[0, "noise_gap"] == pytest.approx(np.sqrt(2 / np.pi) * np.sqrt(2 * 0.25 / 4), abs=1e-3)
    assert headline.loc[0, "gap_ci_low"] <= headline.loc[0, "gap"] <= headline.loc[0, "gap_ci_high"]
    assert headline.loc[0, "gap_ci_low"] <= 0.5 <= headline.loc[0, "gap_ci_high"]
    assert (headline.loc[0, "best_group"], headline.loc[0, "worst_group"]) == ("Black people", "Women")
    assert dict(zip(groups["group_name"], groups["dr"])) == {"Black people": 0.75, "Women": 0.25}
    assert "no evidence of disparity" in app.markdown[0].value  # the answer in words leads the page
    assert [m.value for m in app.metric][:1] == ["1"]


def test_overview_without_database_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIT_DB", str(tmp_path / "none.duckdb"))
    app = app_test(timeout=30).run()
    assert not app.exception
    assert "make demo-db" in app.info[0].value
