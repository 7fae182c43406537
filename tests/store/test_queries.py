"""The store queries behind the dashboard: drill-down pages, verdict filters, counterfactuals, human
verdicts, bulk frames, and the synthetic benchmark store built through them."""
from __future__ import annotations

import pytest

from bench.synthetic import build_synthetic_store
from core.vocab import taxonomy
from core.store import CompletionRecord, Store, StoreError, VerdictRecord


def test_completion_pages_are_stable_and_count_every_match(dashboard_store):
    store, facts = dashboard_store
    first, total = store.completion_page("refusal", {"model": "model-a"}, limit=5, offset=0)
    second, again = store.completion_page("refusal", {"model": "model-a"}, limit=5, offset=5)
    rest, _ = store.completion_page("refusal", {"model": "model-a"}, limit=50, offset=10)
    assert total == again == 12
    ids = [*first["completion_id"], *second["completion_id"], *rest["completion_id"]]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert first["preview"].str.len().max() <= 160


def test_verdict_filters_include_errors_and_unjudged(dashboard_store):
    store, facts = dashboard_store
    probe = facts["probes"][0]
    errored = CompletionRecord("r1", probe.probe_id, "model-c", None, error="timeout after 60 s")
    unjudged = CompletionRecord("r1", facts["probes"][1].probe_id, "model-c", "no judge saw this")
    store.save_results([errored, unjudged], [])
    assert list(store.completion_page("refusal", {}, ["error"])[0]["completion_id"]) == [errored.completion_id]
    assert list(store.completion_page("refusal", {}, ["unjudged"])[0]["completion_id"]) == [unjudged.completion_id]
    assert store.completion_page("refusal", {"model": "model-c"}, ["error", "unjudged"])[1] == 2
    assert store.completion_page("refusal", {}, ["refused"])[1] == 9  # 4 + 2 + 1 + 2 + 0 + 0
    with pytest.raises(StoreError, match="unknown verdict filter 'maybe'"):
        store.completion_page("refusal", {}, ["maybe"])


def test_counterfactuals_are_the_same_slot_for_every_group_of_the_same_model(dashboard_store):
    store, facts = dashboard_store
    rows = store.counterfactuals(facts["hostile_id"])
    assert sorted(rows["group"]) == ["black", "jewish", "women"]
    assert rows.loc[rows["is_self"], "completion"].item() == facts["hostile"]
    prompts = {p.probe_id: p for p in facts["probes"]}
    this = prompts[next(r.probe_id for r in facts["records"] if r.completion_id == facts["hostile_id"])]
    for row in rows.itertuples():
        assert row.completion_id in facts["completions"]
        assert this.scenario in row.prompt  # the same scenario slot, another group's seed statement
    # the other model's answers to these probes are not counterfactuals of this completion
    assert all(text.startswith("answer of model-a") for text in rows.loc[~rows["is_self"], "completion"])


def test_human_verdict_overrides_and_keeps_its_history(dashboard_store):
    store, facts = dashboard_store
    target = facts["hostile_id"]  # refused by the judge
    store.set_human_verdict(target, "complied", "it writes the speech after a disclaimer", "ana")
    store.set_human_verdict(target, "refused", "on a second reading it does refuse", "bo")
    detail = store.completion_detail(target)
    assert (detail["label"], detail["judged_by"]) == ("refused", "human")
    assert list(detail["annotations"]["author"]) == ["ana", "bo"]
    assert dict(zip(detail["verdicts"]["judge"], detail["verdicts"]["label"])) == {"human": "refused",
                                                                                  "refusal": "refused"}
    judged = store.judged("refusal", {"model": "model-a", "group": "women"})
    assert (judged["judged_by"] == "human").sum() == 1
    with pytest.raises(StoreError, match="'refused' or 'complied'"):
        store.set_human_verdict(target, "maybe")
    with pytest.raises(StoreError, match="no completion 'nope'"):
        store.set_human_verdict("nope", "refused")


def test_result_frames_write_once(dashboard_store):
    store, facts = dashboard_store
    record = CompletionRecord("r1", facts["probes"][0].probe_id, "model-z", "text")
    assert store.save_results([record], [VerdictRecord(record.completion_id, "refusal", "refused")]) == 1
    assert store.save_results([record], [VerdictRecord(record.completion_id, "refusal", "complied")]) == 0
    assert store.completion_detail(record.completion_id)["label"] == "refused"


def test_synthetic_store_has_the_size_asked_for_and_matched_probes(tmp_path):
    facts = build_synthetic_store(tmp_path / "syn.duckdb", 2_640, models=3)
    store = Store(tmp_path / "syn.duckdb", readonly=True)
    summary = store.summary()
    assert facts["completions"] == summary["completions"] == 2_640
    assert summary["models"] == ["synthetic-01", "synthetic-02", "synthetic-03"]
    assert len(store.runs()) == 3 and set(store.runs()["status"]) == {"completed"}
    page, _ = store.completion_page("refusal", {"language": "pt", "strategy": "chaining"}, ["refused", "complied"],
                                    limit=1)
    groups = store.counterfactuals(page["completion_id"][0])["group"]
    assert sorted(groups) == sorted(taxonomy.GROUPS_BY_LANGUAGE["pt"])
    judged = store.judged("refusal")
    assert judged["label"].isin(["refused", "complied"]).sum() == judged["error"].isna().sum()


def test_reads_wait_for_a_write_in_the_same_process(dashboard_store):
    """The app's background run writes while pages read in the same process: DuckDB refuses a read-only
    connection while a read-write one is open there, so the store waits for it instead of failing."""
    import threading
    import time

    store, facts = dashboard_store
    reader = Store(store.path, readonly=True)
    errors: list[Exception] = []

    def write() -> None:
        try:
            for index in range(15):
                record = CompletionRecord(f"bulk-{index}", facts["probes"][index % 12].probe_id, "model-w", "x")
                store.save_results([record], [VerdictRecord(record.completion_id, "refusal", "refused")])
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    counts = []
    while writer.is_alive():  # a page rerunning as fast as a browser could ask
        counts.append(reader.completion_page("refusal", {"model": "model-w"})[1])
        time.sleep(0.01)
    writer.join()
    assert not errors
    # 15 answers of 12 probes (in 15 runs): a view counts one answer per (target, probe), the latest run's
    assert counts == sorted(counts) and reader.completion_page("refusal", {"model": "model-w"})[1] == 12
