"""core.views on a small real store: each view's figures equal the hand count from the store's rows, and the
HTML report draws the same headline result as the Overview page.

The store is tests/fixtures/dashboard_db.py's (English attacks, two models, known DRs) plus benign control probes and
Portuguese attacks with known labels, and the two models' sizes (for the scaling view).
"""
from __future__ import annotations

import numpy as np
import pytest

from core import views
from core.probes.builder import build_bundled
from core.report.html import build_report
from core.store import CompletionRecord, Store, VerdictRecord
from tests.fixtures import dashboard_db, ppi_db
from tests.fixtures.apptest import app_test

# Benign control requests refused, per (model, group), of 2 each: over-refusal black 1.0 and women 0.0 for model-a.
CONTROLS = {("model-a", "black"): 2, ("model-a", "women"): 0, ("model-b", "black"): 1, ("model-b", "women"): 1}
# Portuguese attacks refused, of 3 each.
PORTUGUESE = {("model-a", "women"): 3, ("model-a", "black"): 1, ("model-a", "jewish"): 2,
              ("model-b", "women"): 1, ("model-b", "black"): 0, ("model-b", "jewish"): 0}


def _add(store: Store, run: str, cells: dict, probes_of, per_cell: int) -> None:
    probes = {key: probes_of(key[1])[:per_cell] for key in cells}
    store.add_probes(list({p.probe_id: p for ps in probes.values() for p in ps}.values()))
    store.create_run(run, {}, sorted({p.probe_id for ps in probes.values() for p in ps}))
    records, verdicts = [], []
    for (model, _), chosen in probes.items():
        for index, probe in enumerate(chosen):
            records.append(CompletionRecord(run, probe.probe_id, model, "answer"))
            refused = index < cells[(model, probe.group)]
            verdicts.append(VerdictRecord(records[-1].completion_id, "refusal", "refused" if refused else "complied"))
    store.save_results(records, verdicts)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    path = tmp_path_factory.mktemp("analyses") / "audit.duckdb"
    dashboard_db.build(path)
    store = Store(path)
    bundled = build_bundled()
    _add(store, "controls", CONTROLS, lambda g: [p for p in bundled if p.kind == "control" and p.language == "en"
                                                 and p.group == g], 2)
    _add(store, "pt", PORTUGUESE, lambda g: [p for p in bundled if p.kind == "attack" and p.language == "pt"
                                             and p.group == g], 3)
    store.save_target("model-a", "openai", "a", family="fam", size_b=1.0)
    store.save_target("model-b", "openai", "b", family="fam", size_b=10.0)
    return Store(path, readonly=True)


def _hand_dr(store: Store, **filters) -> dict:
    """DR per (model, language, group) counted by hand from the one-row-per-completion frame."""
    rows = store.judged("refusal", {k: [v] for k, v in filters.items()})
    rows = rows.loc[rows["label"].isin(["refused", "complied"])]
    return (rows["label"] == "refused").groupby([rows["model"], rows["language"], rows["group"]]).mean().to_dict()


def test_headline_per_model_is_the_hand_count(store):
    result = views.headline.compute(store, "refusal", {"language": ["en"]})
    head = result.rows.set_index("model")
    # dashboard_db: model-a refuses women 4/4, jewish 2/4, black 1/4; model-b women 2/4, the rest 0/4.
    assert head.loc["model-a", "dr"] == pytest.approx(7 / 12) and head.loc["model-b", "dr"] == pytest.approx(2 / 12)
    assert head.loc["model-a", "observed_gap"] == pytest.approx(0.75) and head.loc["model-a", "best_group"] == "women"
    assert head.loc["model-a", "worst_group"] == "black" and head.loc["model-b", "observed_gap"] == pytest.approx(0.5)
    # 4 prompts per group: the gap beyond noise is smaller than the observed one, and its interval holds both
    for model in ("model-a", "model-b"):
        row = head.loc[model]
        assert 0 <= row["gap_ci_low"] <= row["gap"] <= row["observed_gap"] <= row["gap_ci_high"] <= 1
    assert head.loc["model-a", "headline"].startswith("observed gap 0.75; groups with no true difference would show")
    assert result.corrected is None and result.n_human == 0
    assert set(result.rows["estimate"]) == {"judge only"}
    assert list(result.rows["dr"]) == list(result.judge["dr"])


def test_over_refusal_rate_per_group_is_the_hand_count(store):
    result = views.over_refusal.compute(store, "refusal", {"language": ["en"]})
    assert result.controls == 8
    shown = result.deviations.set_index(["model", "language", "group"])["dr"].to_dict()
    assert shown == pytest.approx(_hand_dr(store, kind="control", language="en"))
    assert shown[("model-a", "en", "black")] == 1.0 and shown[("model-a", "en", "women")] == 0.0
    gaps = result.disparity.set_index("model")
    assert gaps.loc["model-a", "observed_gap"] == pytest.approx(1.0)
    assert gaps.loc["model-b", "observed_gap"] == pytest.approx(0.0)
    assert result.overall.set_index("model").loc["model-a", "dr"] == pytest.approx(0.5)
    # The trade-off: groups with both attacks and controls; model-a black: attacks 1/4, controls 2/2.
    tradeoff = result.tradeoff.set_index(["model", "group"])
    assert sorted(tradeoff.index) == [("model-a", "black"), ("model-a", "women"), ("model-b", "black"),
                                      ("model-b", "women")]
    assert tradeoff.loc[("model-a", "black"), ["dr_attack", "dr_control"]].tolist() == [0.25, 1.0]
    none = views.over_refusal.compute(store, "refusal", {"language": ["pt"]})
    assert none.controls == 0 and none.disparity.empty


def test_cross_lingual_puts_the_shared_groups_side_by_side(store):
    result = views.cross_lingual.compute(store, "refusal")
    assert result.comparable and result.languages == ["en", "pt"]
    wide = result.wide.set_index(["model", "group"])
    hand = _hand_dr(store, kind="attack")
    assert sorted(wide.index) == sorted((m, g) for m, g in PORTUGUESE)
    for (model, group), row in wide.iterrows():
        assert row["dr_en"] == pytest.approx(hand[(model, "en", group)])
        assert row["dr_pt"] == pytest.approx(hand[(model, "pt", group)])
    assert wide.loc[("model-a", "black"), "dr_pt"] == pytest.approx(1 / 3)
    # model-a ranks women > jewish > black in both languages: perfect agreement.
    agreement = result.agreement.set_index("model")
    assert agreement.loc["model-a", "shared"] == 3 and agreement.loc["model-a", "spearman"] == pytest.approx(1.0)
    english = views.cross_lingual.compute(store, "refusal", {"language": ["en"]})
    assert not english.comparable and english.languages == ["en"] and english.wide.empty


def test_scaling_joins_each_models_disparity_with_its_size(store):
    result = views.scaling.compute(store, "refusal", {"language": ["en"]})
    points = result.points.set_index("model")
    assert points.loc["model-a", "size_b"] == 1.0 and points.loc["model-b", "size_b"] == 10.0
    hand = _hand_dr(store, kind="attack", language="en")
    for model in ("model-a", "model-b"):
        drs = [dr for (m, _, _), dr in hand.items() if m == model]
        assert points.loc[model, "std"] == pytest.approx(float(np.std(drs)))
    trend = result.trend.set_index("family")
    slope = points.loc["model-b", "std"] - points.loc["model-a", "std"]  # per tenfold: one decade apart
    assert trend.loc["fam", "family_models"] == 2 and trend.loc["fam", "family_slope_per_10x"] == pytest.approx(slope)
    assert len(result.sized) == 2
    assert views.scaling.compute(store, "refusal", {"language": ["en"], "model": ["nobody"]}).judged == 0


def test_reproduction_deviations_and_the_comparison_with_the_paper(store):
    result = views.reproduction.compute(store, "en", "refusal")
    assert result.models == ["model-a", "model-b"]
    cells = result.deviations.set_index(["model", "group"])
    # model-a's mean DR 7/12; women 4/4 deviates by +5/12.
    assert cells.loc[("model-a", "women"), "deviation"] == pytest.approx(1 - 7 / 12)
    assert cells.loc[("model-a", "women"), "baseline_dr"] == pytest.approx(7 / 12)
    assert not result.compare({}).summary["cells"]
    paired = result.compare({"model-a": "Gemma 3 1B"})
    assert paired.summary["cells"] == 3 and paired.summary["models"] == 1
    assert set(paired.cells["group"]) == {"women", "jewish", "black"}
    row = paired.cells.set_index("group").loc["women"]
    assert row["difference"] == pytest.approx(row["deviation"] - row["paper_deviation"])


def test_a_view_takes_counts_already_read_as_well_as_the_store(store):
    counts = store.label_counts("refusal", ["model", "language", "group", "kind"], {"kind": ["attack", "control"]})
    from_counts = views.over_refusal.compute(counts)
    from_store = views.over_refusal.compute(store, "refusal")
    assert from_counts.disparity.equals(from_store.disparity)
    with pytest.raises(ValueError, match="kind"):
        views.over_refusal.compute(counts.drop(columns=["kind"]))


def test_every_view_is_listed_with_its_result(store):
    for name, (module, result, _) in views.VIEWS.items():
        assert module.__name__ == f"core.views.{name}" and callable(module.compute)
        assert result.__module__ == module.__name__


def test_the_report_draws_the_overviews_headline(tmp_path, monkeypatch):
    """With a labelled review sample (tests/fixtures/ppi_db.py): the headline the report computes is the one the Overview
    shows, row for row, corrected figures included."""
    path = tmp_path / "sampled.duckdb"
    ppi_db.build(path)
    drawn = []
    compute = views.headline.compute
    monkeypatch.setattr(views.headline, "compute", lambda *a, **k: drawn.append(compute(*a, **k)) or drawn[-1])
    page, _ = build_report(Store(path, readonly=True))
    assert len(drawn) == 1 and drawn[0].n_human == 72
    monkeypatch.setattr(views.headline, "compute", compute)
    monkeypatch.setenv("AUDIT_DB", str(path))
    app = app_test(timeout=60).run()
    assert not app.exception, app.exception
    overview = app.dataframe[0].value.set_index("model")
    report = drawn[0].rows.set_index("model")
    assert list(overview.index) == list(report.index) == ["model-a", "model-b"]
    for column in ("estimate", "n", "n_human"):
        assert overview[column].tolist() == report[column].tolist()
    for column in ("dr", "ci_low", "ci_high", "dr_judge", "observed_gap", "noise_gap", "gap", "gap_ci_low",
                   "gap_ci_high"):
        assert overview[column].tolist() == pytest.approx(report[column].tolist())
    assert overview.loc["model-a", "dr"] == pytest.approx(0.5)
    assert overview.loc["model-a", "estimate"] == "corrected by 36 human checks"
    assert "<td>0.42</td>" in page[page.index("Headline: for whom"):]  # the judge's own DR, same result
