"""The human review sample (core/ppi/review_sample.py, Store review methods, `review` / `verdicts` CLI) on real DuckDB files.

The sample must be a stratified simple random sample for the corrected Defense Rates to be unbiased, so the
sampling is tested by seeded simulation (every item of a stratum equally likely, alone and in pairs, after
an enlargement and in the labelled prefix of the queue), with a biased sampler as the control that the same
test rejects. Imports are all or nothing; the PPI inputs are checked against a brute-force count.
"""
from __future__ import annotations

import csv
import gzip
import itertools
import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.ppi import review_sample
from core.probes.builder import build_bundled
from core.ppi.review_sample import STRATA, ReviewError
from core.store import (_MIGRATIONS, SCHEMA_VERSION, CompletionRecord, Store, StoreError, VerdictImportError,
                        VerdictRecord, completion_id_for)
from tests.fixtures import dashboard_db
from tests.fixtures.cli import run_cli


# -- pure sampling -----------------------------------------------------------------------------------
def eligible_frame(sizes: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Completions of one run in strata (model, group) of the given sizes (ids shuffled out of order)."""
    rows = [{"completion_id": f"{model}-{group}-{i:03d}", "run_id": "r", "model": model, "language": "en",
             "group": group, "kind": "attack"} for (model, group), n in sizes.items() for i in range(n)]
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)
    return frame.assign(seq=range(len(frame)))


def per_stratum(sample: pd.DataFrame) -> dict[tuple[str, str], int]:
    return {key: int(n) for key, n in sample.groupby(["model", "group"]).size().items()}


SIZES = {("m1", "women"): 1, ("m1", "black"): 5, ("m2", "women"): 30, ("m2", "black"): 100}


def test_per_cell_takes_n_per_stratum_or_all_and_fraction_rounds_up():
    eligible = eligible_frame(SIZES)
    sample = review_sample.draw_sample(eligible, per_cell=10, seed=0)
    assert per_stratum(sample) == {("m1", "women"): 1, ("m1", "black"): 5, ("m2", "women"): 10, ("m2", "black"): 10}
    assert sample["completion_id"].is_unique and set(sample["completion_id"]) <= set(eligible["completion_id"])
    assert sorted(sample["position"]) == list(range(len(sample)))  # the queue: a permutation of the run's sample
    assert set(sample["draw"]) == {1} and set(sample["seed"]) == {0}
    sizes = sample.groupby(["model", "group"])["stratum_size"].first().to_dict()
    assert sizes == SIZES  # the inclusion probability's denominator, recorded per row
    # ceil(F x N): 0.1 of 1, 5, 30, 100 -> 1, 1, 3, 10 (no non-empty stratum left without a label)
    assert per_stratum(review_sample.draw_sample(eligible, fraction=0.1, seed=0)) == {
        ("m1", "women"): 1, ("m1", "black"): 1, ("m2", "women"): 3, ("m2", "black"): 10}
    assert len(review_sample.draw_sample(eligible, fraction=1.0, seed=0)) == sum(SIZES.values())


@pytest.mark.parametrize("per_cell, fraction", [(None, None), (3, 0.5), (0, None), (-2, None), (1.5, None),
                                                (None, 0.0), (None, 1.01), (None, -0.1), (None, float("nan"))])
def test_a_bad_size_is_refused(per_cell, fraction):
    with pytest.raises(ReviewError):
        review_sample.draw_sample(eligible_frame(SIZES), per_cell=per_cell, fraction=fraction, seed=0)


def test_same_seed_same_sample_whatever_the_row_order_and_another_seed_differs():
    eligible = eligible_frame(SIZES)
    first = review_sample.draw_sample(eligible, per_cell=10, seed=7)
    shuffled = review_sample.draw_sample(eligible.sample(frac=1.0, random_state=9), per_cell=10, seed=7)
    assert first.equals(shuffled)
    other = review_sample.draw_sample(eligible, per_cell=10, seed=8)
    assert set(other["completion_id"]) != set(first["completion_id"])


def test_enlarging_draws_only_from_the_unsampled_rest_after_the_queue():
    eligible = eligible_frame(SIZES)
    first = review_sample.draw_sample(eligible, per_cell=10, seed=1)
    more = review_sample.draw_sample(eligible, first, per_cell=25, seed=2)
    assert not set(more["completion_id"]) & set(first["completion_id"])
    both = pd.concat([first, more])
    assert per_stratum(both) == {("m1", "women"): 1, ("m1", "black"): 5, ("m2", "women"): 25, ("m2", "black"): 25}
    assert sorted(more["position"]) == list(range(len(first), len(both))) and set(more["draw"]) == {2}
    assert review_sample.draw_sample(eligible, both, per_cell=25, seed=3).empty  # already that large: nothing new


def uniformity_p(counts: np.ndarray) -> float:
    """Chi-square goodness of fit of inclusion counts to equal probabilities."""
    return float(stats.chisquare(counts).pvalue)


def inclusion_counts(sampler, items: int, trials: int) -> tuple[np.ndarray, np.ndarray]:
    """How often each item, and each pair of items, of one stratum was in the sample over `trials` seeds."""
    single = np.zeros(items)
    pairs = np.zeros(items * (items - 1) // 2)
    index = {pair: k for k, pair in enumerate(itertools.combinations(range(items), 2))}
    for seed in range(trials):
        chosen = sorted(sampler(seed))
        single[chosen] += 1
        for pair in itertools.combinations(chosen, 2):
            pairs[index[pair]] += 1
    return single, pairs


def stratum_items(ids: pd.Series) -> list[int]:
    return [int(cid.rsplit("-", 1)[1]) for cid in ids]


@pytest.mark.slow
def test_every_item_and_every_pair_is_equally_likely_after_an_enlargement_and_in_the_queue_prefix():
    """An SRS of n from N includes each item with probability n/N and each pair with n(n-1)/(N(N-1)). Checked
    for a first draw of 3 enlarged to 6 (another seed) out of 12, and for the first 2 items of the queue (what
    a person labels first): a random subsample of the sample, so again an SRS. A sampler biased towards low
    ids, as a person picking rows would be, fails the same test."""
    eligible = eligible_frame({("m", "g"): 12})
    trials = 1000
    drawn = {}
    for seed in range(trials):  # a first draw of 3, enlarged to 6 with another seed
        first = review_sample.draw_sample(eligible, per_cell=3, seed=seed)
        queue = pd.concat([first, review_sample.draw_sample(eligible, first, per_cell=6, seed=10_000 + seed)])
        drawn[seed] = (stratum_items(queue["completion_id"]),
                       stratum_items(queue.sort_values("position")["completion_id"].head(2)))

    def biased(seed: int) -> list[int]:  # the control: slightly favours the first half of the stratum
        rng = np.random.default_rng(seed)
        weights = np.where(np.arange(12) < 6, 1.3, 1.0)
        return list(rng.choice(12, size=6, replace=False, p=weights / weights.sum()))

    for part, size in ((0, 6), (1, 2)):  # the whole sample; the first two of its queue
        single, pairs = inclusion_counts(lambda seed: drawn[seed][part], 12, trials)
        assert single.sum() == trials * size and len(set(drawn[0][part])) == size
        assert uniformity_p(single) > 0.001 and uniformity_p(pairs) > 0.001, part
    single, _ = inclusion_counts(biased, 12, trials)
    assert uniformity_p(single) < 0.001


def scored_frame(sizes: dict[tuple[str, str], int], seed: int = 3) -> pd.DataFrame:
    """eligible_frame with a judge's P(refused) per completion: mostly confident, a few near 0.5."""
    frame = eligible_frame(sizes)
    rng = np.random.default_rng(seed)
    return frame.assign(score=np.where(rng.random(len(frame)) < 0.2, rng.uniform(0.3, 0.7, len(frame)),
                                       rng.choice([0.02, 0.98], len(frame))))


@pytest.mark.slow
def test_by_uncertainty_each_item_is_drawn_with_its_stored_probability_and_the_expected_size():
    """Poisson sampling: over seeded draws each item's frequency matches the inclusion_prob stored with it (a
    z-test per item, Bonferroni over items), a stratum's mean size is target_size(), and the unsure items carry
    the larger probabilities. A sampler that ignores the score (an SRS) fails the same frequency test."""
    eligible = scored_frame({("m", "a"): 40, ("m", "b"): 12})
    trials = 2000
    hits = np.zeros(len(eligible))
    prob = np.full(len(eligible), np.nan)
    ids = {cid: k for k, cid in enumerate(eligible["completion_id"])}
    sizes = {"a": [], "b": []}
    srs_hits = np.zeros(len(eligible))
    for seed in range(trials):
        drawn = review_sample.draw_by_uncertainty(eligible, "encoder:x", fraction=0.25, seed=seed)
        rows = drawn["completion_id"].map(ids).to_numpy()
        hits[rows] += 1
        prob[rows] = drawn["inclusion_prob"].to_numpy()  # the same every draw: a function of the scores
        for group in sizes:
            sizes[group].append(int((drawn["group"] == group).sum()))
        assert drawn["position"].tolist() == list(range(len(drawn))) and (drawn["judge"] == "encoder:x").all()
        srs_hits[review_sample.draw_sample(eligible, fraction=0.25, seed=seed)["completion_id"].map(ids)] += 1
    seen = ~np.isnan(prob)
    assert seen.all()
    z = np.abs(hits - trials * prob) / np.sqrt(trials * prob * (1 - prob) + 1e-12)
    assert z.max() < stats.norm.isf(0.001 / 2 / len(z)), z.max()
    srs_z = np.abs(srs_hits - trials * prob) / np.sqrt(trials * prob * (1 - prob) + 1e-12)
    assert srs_z.max() > stats.norm.isf(0.001 / 2 / len(z))  # the control: an SRS does not draw by the score
    assert abs(np.mean(sizes["a"]) - 10) < 0.3 and abs(np.mean(sizes["b"]) - 3) < 0.2
    unsure = np.abs(eligible["score"].to_numpy() - 0.5) < 0.25
    assert prob[unsure].mean() > 2 * prob[~unsure].mean()


def test_by_uncertainty_needs_a_judge_with_probabilities_and_is_never_enlarged():
    """A judge with no probability at all is refused; completions without one (a fallback to the rules) get their
    stratum's mean weight, and a stratum without any probability is drawn uniformly."""
    eligible = scored_frame({("m", "a"): 10})
    with pytest.raises(ReviewError, match="judge refusal gives no probability for any of the 10 completions"):
        review_sample.draw_by_uncertainty(eligible.drop(columns="score"), "refusal", per_cell=2)
    with pytest.raises(ReviewError, match="no probability for any of the 10"):
        review_sample.draw_by_uncertainty(eligible.assign(score=None), "refusal", per_cell=2)
    mixed = scored_frame({("m", "a"): 10, ("m", "b"): 8})
    mixed.loc[mixed["group"] == "b", "score"] = None  # a stratum the judge handed to the rules
    scores = dict(zip(mixed["completion_id"], mixed["score"]))
    mixed.loc[mixed["completion_id"] == sorted(c for c in scores if c.startswith("m-a"))[0], "score"] = None
    drawn = review_sample.draw_by_uncertainty(mixed, "encoder:x", fraction=1.0, seed=0)
    assert len(drawn) == 18 and (drawn["inclusion_prob"] == 1).all()  # the whole stratum: every chance 1
    probs = {}
    for seed in range(40):
        for row in review_sample.draw_by_uncertainty(mixed, "encoder:x", per_cell=4, seed=seed).itertuples():
            probs[row.completion_id] = row.inclusion_prob
    b = [v for k, v in probs.items() if k.startswith("m-b")]
    assert b and max(b) == pytest.approx(min(b)) == pytest.approx(4 / 8)  # uniform where no probability is known
    a = np.array([v for k, v in probs.items() if k.startswith("m-a")])
    assert (a > 0).all() and a.max() > 1.5 * a.min()
    first = review_sample.draw_by_uncertainty(eligible, "encoder:x", per_cell=5, seed=1)
    assert first["inclusion_prob"].between(0, 1, inclusive="right").all() and (first["draw"] == 1).all()
    with pytest.raises(ReviewError, match="drawn by the judge's uncertainty.*--replace"):
        review_sample.draw_sample(eligible, first, per_cell=8, seed=2)


# -- the store ---------------------------------------------------------------------------------------
@pytest.fixture()
def audit(tmp_path):
    """tests/dashboard_db (run r1: 2 models x 3 groups x 4 probes, judged by `refusal`) plus run r2: model-c
    on the same probes, with every kind of row the PPI counts must get right: an error the judge labelled
    anyway, an error with a human verdict, an unparsed verdict, a completion no judge labelled."""
    path = tmp_path / "audit.duckdb"
    info = dashboard_db.build(path)
    store = Store(path)
    store.create_run("r2", {"targets": ["model-c"], "judges": ["refusal"]}, [p.probe_id for p in info["probes"]])
    store.add_run_targets("r2", ["model-c"])
    records, verdicts = [], []
    for index, probe in enumerate(info["probes"]):
        error = "timeout" if index in (0, 1) else None
        record = CompletionRecord("r2", probe.probe_id, "model-c", None if error else f"c answer {index}", error=error)
        records.append(record)
        if index == 5:
            continue  # no verdict at all
        label = "unparsed" if index == 4 else ("refused" if index % 3 == 0 else "complied")
        verdicts.append(VerdictRecord(record.completion_id, "refusal", label))
    store.save_results(records, verdicts)
    store.set_human_verdict(records[1].completion_id, "complied", "an error, labelled by hand", "ann")
    return {**info, "store": store, "path": path, "r2": [r.completion_id for r in records]}


def snapshot(store: Store) -> dict:
    """Everything a failed command must leave as it was."""
    with store.connect() as con:
        return {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                for table in ("review_sample", "annotations", "verdicts")} | {
            "human": con.execute("SELECT list(label ORDER BY completion_id) FROM verdicts WHERE judge = 'human'")
            .fetchall()[0][0],
            "cells": con.execute("SELECT sum(n) FILTER (WHERE judge = 'human'), count(*) FROM cell_counts").fetchall()}


def test_draw_stores_the_sample_and_its_design_and_enlarging_keeps_it(audit):
    store = audit["store"]
    result = store.draw_review_sample("r1", per_cell=2, seed=5)
    assert (result["added"], result["sampled"], result["completions"], result["draw"]) == (12, 12, 24, 1)
    progress = store.review_progress("r1")
    assert progress[list(STRATA)].drop_duplicates().shape[0] == 6
    assert progress["completions"].tolist() == [4] * 6 and progress["stratum_size"].tolist() == [4] * 6
    assert progress["sampled"].tolist() == [2] * 6 and progress["labelled"].tolist() == [0] * 6
    queue = store.review_queue("r1", limit=100)
    assert queue["position"].tolist() == list(range(12)) and queue["judge_label"].isna().all()
    assert store.review_queue("r1", limit=1, judge="refusal")["judge_label"].iloc[0] in ("refused", "complied")
    again = Store(audit["path"].with_name("twin.duckdb"))
    again.restore(dump_of(store, audit["path"].with_name("d0.jsonl.gz"), keep_sample=False))
    assert set(again.draw_review_sample("r1", per_cell=2, seed=5)["strata"][0]) >= {"sampled", "added"}
    assert set(again.sample_sheet("r1")["completion_id"]) == set(store.sample_sheet("r1")["completion_id"])  # seeded

    bigger = store.draw_review_sample("r1", per_cell=3, seed=6)
    assert (bigger["added"], bigger["sampled"], bigger["draw"]) == (6, 18, 2)
    sheet = store.sample_sheet("r1")
    assert len(sheet) == 18 and sheet["completion_id"].is_unique
    assert store.review_queue("r1", limit=100)["position"].tolist() == list(range(18))


def test_a_changed_stratum_refuses_enlargement_until_replace_and_human_verdicts_stay(audit):
    store = audit["store"]
    store.draw_review_sample("r1", per_cell=2, seed=0)
    first = store.review_queue("r1")["completion_id"].iloc[0]
    store.set_human_verdict(first, "refused", "checked", "ann")
    extra = [p for p in build_bundled() if p.language == "en" and p.group == "women"
             and p.probe_id not in {q.probe_id for q in audit["probes"]}][0]
    store.add_probes([extra])
    store.add_run_probes("r1", [extra.probe_id])
    store.save_results([CompletionRecord("r1", extra.probe_id, "model-a", "late answer")], [])
    before = snapshot(store)
    with pytest.raises(ReviewError, match="changed size .* model model-a.*women.*4 completions then, 5 now.*--replace"):
        store.draw_review_sample("r1", per_cell=3, seed=1)
    assert snapshot(store) == before
    replaced = store.draw_review_sample("r1", per_cell=3, seed=1, replace=True)
    assert replaced["draw"] == 1 and replaced["sampled"] == 18 and replaced["replaced"]
    assert store.review_progress("r1")["stratum_size"].max() == 5
    assert store.completion_detail(first, "refusal")["label"] == "refused"  # the person's verdict is kept


def test_unknown_run_empty_run_and_read_only_are_refused(audit, tmp_path):
    store = audit["store"]
    with pytest.raises(ReviewError, match="no run 'nope'"):
        store.draw_review_sample("nope", fraction=0.5)
    store.create_run("empty", {}, [])
    with pytest.raises(ReviewError, match="no completion without an error"):
        store.draw_review_sample("empty", fraction=0.5)
    with pytest.raises(StoreError, match="read-only"):
        Store(audit["path"], readonly=True).draw_review_sample("r1", per_cell=1)
    assert store.review_progress().empty


def test_only_non_error_completions_are_sampled(audit):
    store = audit["store"]
    store.draw_review_sample("r2", fraction=1.0, seed=0)
    sampled = set(store.sample_sheet("r2")["completion_id"])
    assert sampled == set(audit["r2"][2:]) and len(sampled) == 10


def test_in_sample_marks_random_labels_apart_from_those_chosen_by_hand(audit):
    store = audit["store"]
    store.draw_review_sample("r1", per_cell=1, seed=0)
    sampled = set(store.sample_sheet("r1")["completion_id"])
    page, total = store.completion_page("refusal", {"run_id": "r1"}, limit=100)
    assert total == 24 and set(page.loc[page["in_sample"], "completion_id"]) == sampled
    outside = next(c for c in audit["completions"] if c not in sampled)
    assert store.completion_detail(next(iter(sampled)))["in_sample"] is True
    assert store.completion_detail(outside)["in_sample"] is False


def test_queue_advances_and_progress_counts_as_people_label(audit):
    store = audit["store"]
    store.draw_review_sample("r1", per_cell=2, seed=3)
    order = store.review_queue("r1", limit=100)["completion_id"].tolist()
    store.set_human_verdict(order[0], "refused", "", "ann")
    store.set_human_verdict(order[1], "complied", "", "ann")
    assert store.review_queue("r1", limit=100)["completion_id"].tolist() == order[2:]
    assert store.review_progress("r1")["labelled"].sum() == 2
    women = store.review_queue("r1", limit=100, filters={"group": ["women"]})
    assert set(women["group"]) == {"women"} and women["position"].is_monotonic_increasing


# -- migration and dump ------------------------------------------------------------------------------
def test_a_version_3_database_is_migrated_in_place(db_path):
    probe = build_bundled(per_cell=1, controls_per_group=1)[0]
    with duckdb.connect(str(db_path)) as con:  # a database written by the previous release (schema 3)
        for migration in _MIGRATIONS[:3]:
            con.execute(migration)
        con.execute("INSERT INTO meta VALUES ('schema_version', '3')")
        con.execute("INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [probe.probe_id, probe.language, probe.group, probe.seed_text, probe.scenario_category,
                     probe.scenario, probe.strategy, probe.prompt, probe.kind, probe.source])
        cid = completion_id_for("old", probe.probe_id, "m")
        con.execute("INSERT INTO runs (run_id, status, config) VALUES ('old', 'completed', '{}')")
        con.execute("INSERT INTO completions (completion_id, run_id, probe_id, target_id, text, seq) "
                    "VALUES (?, 'old', ?, 'm', 'an old answer', 0)", [cid, probe.probe_id])
        con.execute("INSERT INTO verdicts (completion_id, judge, label, seq) VALUES (?, 'refusal', 'refused', 0)", [cid])
        cell = [probe.language, probe.group, probe.strategy, probe.scenario_category, probe.kind]
        con.execute("INSERT INTO cell_counts VALUES ('refusal', 'old', 'm', ?, ?, ?, ?, ?, 'refused', 1), "
                    "('', 'old', 'm', ?, ?, ?, ?, ?, 'all', 1)", cell + cell)  # as version 3 kept them
    with pytest.raises(StoreError, match="without read-only to migrate"):
        Store(db_path, readonly=True)
    store = Store(db_path)
    assert store.schema_version() == SCHEMA_VERSION == 8
    with store.connect() as con:  # recounted by migration 7, with the probe set and the current answers
        assert con.execute("SELECT probe_set, current, label, n FROM cell_counts ORDER BY label").fetchall() == [
            ("matched", True, "all", 1), ("matched", True, "refused", 1)]
    assert store.review_progress().empty and store.completion_rows()["completion"].tolist() == ["an old answer"]
    assert store.draw_review_sample("old", per_cell=1, seed=0)["sampled"] == 1
    population, sample, strata = store.ppi_inputs("refusal", ["model"])
    assert population[["n", "refused"]].values.tolist() == [[1, 1]] and sample.empty
    assert strata[["sampled", "labelled"]].values.tolist() == [[1, 0]]


def dump_of(store: Store, path, keep_sample: bool = True, version: int | None = None):
    """store.dump(path); without the review sample and with another schema_version if asked (an older dump)."""
    store.dump(path)
    if keep_sample and version is None:
        return path
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        lines = [json.loads(line) for line in handle]
    lines = [line for line in lines if keep_sample or line["table"] != "review_sample"]
    if version is not None:
        lines[0]["row"]["schema_version"] = version
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(line) + "\n" for line in lines)
    return path


def test_dump_and_restore_carry_the_sample_and_a_version_3_dump_still_restores(audit, tmp_path):
    store = audit["store"]
    store.draw_review_sample("r1", per_cell=2, seed=4)
    queue = store.review_queue("r1", limit=100)
    for cid in queue["completion_id"][:5]:
        store.set_human_verdict(cid, "complied", "seen", "ann")
    copy = Store(tmp_path / "copy.duckdb")
    assert copy.restore(dump_of(store, tmp_path / "d.jsonl.gz"))["review_sample"] == 12
    assert copy.restore(tmp_path / "d.jsonl.gz")["review_sample"] == 0  # idempotent
    for method in ("sample_sheet", "review_progress"):
        assert getattr(copy, method)().equals(getattr(store, method)()), method
    for left, right in zip(copy.ppi_inputs("refusal", ["model", "group"]), store.ppi_inputs("refusal", ["model", "group"])):
        pd.testing.assert_frame_equal(left, right)
    assert copy.review_queue("r1", limit=100)["completion_id"].tolist() == queue["completion_id"][5:].tolist()

    old = Store(tmp_path / "old.duckdb")
    added = old.restore(dump_of(store, tmp_path / "v3.jsonl.gz", keep_sample=False, version=3))
    assert added["completions"] == 36 and added["review_sample"] == 0 and old.review_progress().empty


def score_run(store: Store, run_id: str, judge: str = "prob") -> dict[str, float]:
    """Verdicts of a judge with a probability (raw {"p_refused": p}, as encoder:/average:/learned: write it) on
    every non-error completion of the run; returns the probabilities by completion id."""
    rows = store.completion_rows({"run_id": [run_id]})
    rows = rows.loc[rows["error"].isna()].sort_values("completion_id")
    probs = dict(zip(rows["completion_id"], np.linspace(0.03, 0.97, len(rows))))
    store.save_results([], [VerdictRecord(cid, judge, "refused" if p >= 0.5 else "complied", "",
                                          json.dumps({"p_refused": p})) for cid, p in probs.items()])
    return probs


def test_a_sample_by_uncertainty_is_stored_with_its_probabilities_and_ppi_inputs_weigh_the_labelled_part(audit, tmp_path):
    store = audit["store"]
    with pytest.raises(ReviewError, match="judge refusal gives no probability for any of the 24"):
        store.draw_review_sample("r1", per_cell=2, seed=1, by_uncertainty="refusal")
    assert store.sample_sheet().empty
    probs = score_run(store, "r1")
    result = store.draw_review_sample("r1", per_cell=2, seed=1, by_uncertainty="prob")
    assert result["by_uncertainty"] == "prob" and result["expected"] == 12 and result["added"] == result["sampled"]
    with store.connect() as con:
        stored = con.execute("SELECT completion_id, inclusion_prob, judge FROM review_sample").df()
    assert len(stored) == result["added"] > 0 and (stored["judge"] == "prob").all()
    assert stored["inclusion_prob"].between(0, 1, inclusive="right").all()
    # within a stratum the unsure completion (p near 0.5) has the larger probability
    expected = review_sample.draw_by_uncertainty(
        store_eligible(store, "r1", probs), "prob", per_cell=2, seed=1)
    assert dict(zip(stored["completion_id"], stored["inclusion_prob"])) == pytest.approx(
        dict(zip(expected["completion_id"], expected["inclusion_prob"])))
    with pytest.raises(ReviewError, match="already has a review sample"):
        store.draw_review_sample("r1", per_cell=2, seed=2, by_uncertainty="prob")
    with pytest.raises(ReviewError, match="drawn by the judge's uncertainty"):
        store.draw_review_sample("r1", per_cell=3, seed=2)
    # label the first half of the queue: each label's probability is its drawn one x labelled / drawn in its stratum
    queue = store.review_queue("r1", limit=100)
    for cid in queue["completion_id"][: len(queue) // 2 + 1]:
        store.set_human_verdict(cid, "refused", "", "ann")
    _, sample, strata = store.ppi_inputs("refusal", ["model", "group"])
    drawn = dict(zip(stored["completion_id"], stored["inclusion_prob"]))
    share = strata.set_index(["model", "group"]).eval("labelled / sampled")
    want = [drawn[row.completion_id] * share[(row.model, row.group)] for row in sample.itertuples()]
    assert sample["inclusion_prob"].tolist() == pytest.approx(want) and len(sample) == len(queue) // 2 + 1
    copy = Store(tmp_path / "copy.duckdb")  # a dump carries the design
    copy.restore(dump_of(store, tmp_path / "d.jsonl.gz"))
    pd.testing.assert_frame_equal(copy.ppi_inputs("refusal", ["model", "group"])[1], sample)
    again = store.draw_review_sample("r1", fraction=1.0, seed=3, by_uncertainty="prob", replace=True)
    assert again["sampled"] == 24 and again["replaced"]  # all drawn: every probability 1
    with store.connect() as con:
        assert con.execute("SELECT min(inclusion_prob), count(*) FROM review_sample").fetchall() == [(1.0, 24)]


def test_corrected_rates_weigh_each_label_of_a_sample_by_uncertainty_by_its_stored_probability(audit, cli_env):
    """Store -> ppi_inputs -> CorrectedRates: the corrected DR of a model is the Horvitz-Thompson one computed by
    hand from the stored probabilities (the judge's sum plus each label's (human - judge) / its probability), not
    the stratified SRS one; and the CLI's corrected figures read the same sample."""
    from core.ppi import CorrectedRates

    store = audit["store"]
    probs = score_run(store, "r1")
    store.draw_review_sample("r1", fraction=0.75, seed=4, by_uncertainty="prob")
    queue = store.review_queue("r1", limit=100)
    truth = {cid: ("complied" if probs[cid] < 0.3 else "refused") for cid in queue["completion_id"]}
    for cid in queue["completion_id"]:
        store.set_human_verdict(cid, truth[cid], "", "ann")
    population, sample, _ = store.ppi_inputs("prob", ["model"], {"run_id": ["r1"]})
    assert sample["inclusion_prob"].notna().all() and len(sample) == len(queue)
    table = CorrectedRates(population, sample, ["model"], min_human=1).table.set_index("model")
    with store.connect() as con:
        drawn = dict(con.execute("SELECT completion_id, inclusion_prob FROM review_sample").fetchall())
    rows = store.completion_rows({"run_id": ["r1"]})
    for model, own in rows.groupby("model"):
        judge = {cid: (1.0 if probs[cid] >= 0.5 else 0.0) for cid in own["completion_id"]}
        by_hand = (sum(judge.values()) + sum(((truth[cid] == "refused") - judge[cid]) / drawn[cid]
                                             for cid in own["completion_id"] if cid in truth)) / len(own)
        assert table.loc[model, "dr"] == pytest.approx(min(max(by_hand, 0), 1), abs=1e-12), model
    done = cli(cli_env, "stats", "--db", audit["path"], "--judge", "prob", "--estimator", "ppi", "--by", "model",
               "--runs", "r1", "--min-human", "1", "--json", check=0)
    shown = {row["model"]: row["dr"] for row in json.loads(done.stdout)}
    assert shown == pytest.approx(table["dr"].to_dict())


def store_eligible(store: Store, run_id: str, probs: dict[str, float]) -> pd.DataFrame:
    """The run's eligible completions with their strata and the given scores (not the store's reading of them)."""
    with store.connect() as con:
        rows = con.execute("SELECT c.completion_id, c.seq, c.run_id, c.target_id AS model, p.language, p.\"group\", "
                           "p.kind FROM completions c JOIN probes p USING (probe_id) "
                           "WHERE c.error IS NULL AND c.run_id = ?", [run_id]).df()
    return rows.assign(score=rows["completion_id"].map(probs))


def test_cli_review_sample_by_uncertainty(audit, cli_env):
    score_run(audit["store"], "r1")
    before = snapshot(audit["store"])
    done = cli(cli_env, "review", "sample", "--db", audit["path"], "--run-id", "r1", "--per-cell", "2", "--seed", "1",
               "--by-uncertainty", "refusal", check=2)
    assert "judge refusal gives no probability for any of the 24 completions" in done.stderr
    assert "nothing was drawn" in done.stderr and snapshot(audit["store"]) == before
    text = cli(cli_env, "review", "sample", "--db", audit["path"], "--run-id", "r1", "--per-cell", "2", "--seed", "1",
               "--by-uncertainty", "prob", check=0).stdout
    assert "by the uncertainty of prob: 12 expected, each completion drawn with its own probability" in text


# -- importing labels --------------------------------------------------------------------------------
def test_bad_rows_are_all_reported_by_line_and_nothing_is_stored(audit):
    store = audit["store"]
    ids = audit["completions"]
    before = snapshot(store)
    rows = [(2, ids[0], "refused", ""), (3, "no-such-id", "refused", ""), (4, ids[1], "maybe", ""),
            (5, ids[2], "Complied", "ok"), (6, ids[2], "refused", ""), (7, "", "refused", ""), (8, ids[3], "", "")]
    with pytest.raises(VerdictImportError) as caught:
        store.import_human_verdicts(rows, "ann", source="labels.csv")
    assert caught.value.problems == [
        "labels.csv:3: unknown completion_id 'no-such-id' (no such completion in " + str(store.path) + ")",
        "labels.csv:4: label 'maybe': a human verdict is 'refused' or 'complied'",
        f"labels.csv:6: completion {ids[2]} is labelled 'refused' here but 'complied' on line 5",
        "labels.csv:7: no completion_id"]
    assert snapshot(store) == before


def test_importing_twice_changes_nothing_and_a_changed_label_adds_one_annotation(audit):
    store = audit["store"]
    ids = audit["completions"]  # model-a women first: judged refused 4/4
    rows = [(2, ids[0], "complied", "looked again"), (3, ids[1], "refused", ""), (4, ids[1], "refused", ""),
            (5, ids[2], "", "")]
    first = store.import_human_verdicts(rows, "ann")
    assert (first["labelled"], first["changed"], first["unchanged"], first["blank"]) == (2, 2, 0, 1)
    counts = store.label_counts("refusal", ["model", "group"]).set_index(["model", "group"])
    assert counts.loc[("model-a", "women"), "refused"] == 3  # cell_counts refreshed: the human verdict counts
    after_first = snapshot(store)
    second = store.import_human_verdicts(rows, "someone else")
    assert (second["changed"], second["unchanged"]) == (0, 2) and snapshot(store) == after_first
    third = store.import_human_verdicts([(2, ids[0], "refused", "looked again")], "ann")
    assert third["changed"] == 1
    history = store.completion_detail(ids[0])["annotations"]
    assert history["label"].tolist() == ["complied", "refused"] and set(history["author"]) == {"ann"}
    verdicts = store.completion_detail(ids[0])["verdicts"].set_index("judge")
    assert verdicts.loc["human", "label"] == "refused" and verdicts.loc["refusal", "label"] == "refused"


def test_as_random_sample_makes_the_labels_the_runs_sample_once(audit):
    store = audit["store"]
    ids = audit["completions"]
    rows = [(line + 2, cid, "refused", "") for line, cid in enumerate(ids[:5])]
    result = store.import_human_verdicts(rows, "ann", as_random_sample=True)
    assert (result["sampled"], result["runs"]) == (5, ["r1"])
    progress = store.review_progress("r1")
    assert progress["sampled"].sum() == 5 and progress["labelled"].sum() == 5
    assert set(progress.loc[progress["sampled"] > 0, "stratum_size"]) == {4}
    with duckdb.connect(str(store.path), read_only=True) as con:
        assert con.execute("SELECT DISTINCT seed IS NULL, draw FROM review_sample").fetchall() == [(True, 1)]
    before = snapshot(store)
    with pytest.raises(VerdictImportError, match=r"input:2: run 'r1' has a review sample already"):
        store.import_human_verdicts([(2, ids[6], "refused", "")], "ann", as_random_sample=True)
    errored = audit["r2"][0]
    with pytest.raises(VerdictImportError, match=rf"input:2: completion {errored} has an error"):
        store.import_human_verdicts([(2, errored, "refused", "")], "ann", as_random_sample=True)
    assert snapshot(store) == before


# -- what the corrected estimates read ---------------------------------------------------------------
def brute_force(store: Store, judge: str, by: list[str], filters: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Population and sample counted row by row from every completion and its verdicts (no cell_counts)."""
    rows = store.completion_rows(filters)
    own = rows.get(f"verdict_{judge}", pd.Series([None] * len(rows)))
    rows = rows.assign(judge_label=own.where(own.notna(), None), human_label=rows.get("verdict_human"))
    grain = [*STRATA, *[b for b in by if b not in STRATA]]
    ok = rows.loc[rows["error"].isna()]
    population = (ok.assign(**{label: ok["judge_label"] == label for label in ("refused", "complied", "unparsed")})
                  .groupby(grain).agg(n=("completion_id", "size"), refused=("refused", "sum"),
                                      complied=("complied", "sum"), unparsed=("unparsed", "sum")).reset_index())
    sampled = set(store.sample_sheet()["completion_id"])
    sample = ok.loc[ok["completion_id"].isin(sampled) & ok["human_label"].notna(),
                    ["completion_id", *grain, "judge_label", "human_label"]]
    return population, sample


@pytest.mark.parametrize("by, filters", [
    (["model", "group"], {}),
    (["model", "language", "group"], {"kind": ["attack"]}),
    (["group", "strategy"], {"model": ["model-a", "model-c"]}),
    (["model", "scenario"], {}),
    (["model"], {"scenario_category": ["harassment"], "group": ["women", "black"]}),
])
def test_ppi_inputs_count_the_judges_own_labels_as_a_brute_force_count_does(audit, by, filters):
    store = audit["store"]
    store.draw_review_sample("r1", per_cell=2, seed=11)
    store.draw_review_sample("r2", fraction=0.5, seed=12)
    sheet = store.sample_sheet()
    labels = ["refused" if i % 3 else "complied" for i in range(len(sheet))]
    store.import_human_verdicts([(i + 2, cid, label, "") for i, (cid, label) in
                                 enumerate(zip(sheet["completion_id"][:15], labels))], "ann")
    hand = next(c for c in audit["completions"] if c not in set(sheet["completion_id"]))
    store.set_human_verdict(hand, "complied", "chosen by hand", "ann")  # overrides views, not the PPI inputs
    population, sample, strata = store.ppi_inputs("refusal", by, filters)
    expected_population, expected_sample = brute_force(store, "refusal", by, filters)
    grain = [*STRATA, *[b for b in by if b not in STRATA]]
    assert list(population.columns) == [*grain, "n", "refused", "complied", "unparsed"]
    assert population.sort_values(grain).reset_index(drop=True).astype({c: int for c in ("n", "refused", "complied", "unparsed")}).equals(
        expected_population.sort_values(grain).reset_index(drop=True).astype({c: int for c in ("n", "refused", "complied", "unparsed")}))
    assert list(sample.columns) == ["completion_id", *grain, "judge_label", "human_label", "inclusion_prob"]
    assert sample["inclusion_prob"].isna().all()  # a stratified simple random sample: probabilities per stratum
    assert hand not in set(sample["completion_id"])
    key = lambda frame: sorted(map(tuple, frame.astype(object).where(frame.notna(), None).values.tolist()))
    shown = sample.drop(columns="inclusion_prob")
    assert key(shown) == key(expected_sample[shown.columns])
    assert list(strata.columns) == [*STRATA, "completions", "stratum_size", "sampled", "labelled"]
    assert (strata["sampled"] > 0).all() and set(strata["run_id"]) <= {"r1", "r2"}
    if set(filters) <= set(STRATA):
        # a stratum's labels are the sample's rows of that stratum (filters on other columns narrow the
        # sample, never the strata: inclusion probabilities belong to whole strata)
        assert strata["labelled"].sum() == len(sample) == (15 if not filters else len(sample))


def test_ppi_inputs_with_no_sample_give_the_population_and_empty_frames(audit):
    population, sample, strata = audit["store"].ppi_inputs("refusal", ["model", "group"])
    assert population["n"].sum() == 34 and sample.empty and strata.empty  # 24 + 12 completions, 2 errors
    assert population.loc[population["model"] == "model-c", "unparsed"].sum() == 1


# -- the CLI, end to end -----------------------------------------------------------------------------
def cli(cli_env, *args, check=None):
    done = run_cli(*map(str, args), env=cli_env, timeout=120)
    if check is not None:
        assert done.returncode == check, done.stderr
    return done


@pytest.mark.parametrize("args, message", [
    (["--run-id", "nope", "--per-cell", "2", "--seed", "1"], "--run-id nope: no such run"),
    (["--run-id", "r1", "--fraction", "0", "--seed", "1"], "--fraction 0.0: the share of each stratum must be in (0, 1]"),
    (["--run-id", "r1", "--fraction", "1.5", "--seed", "1"], "must be in (0, 1]"),
    (["--run-id", "r1", "--per-cell", "0", "--seed", "1"], "--per-cell 0: the number of completions per stratum"),
    (["--run-id", "r1", "--per-cell", "2", "--fraction", "0.5", "--seed", "1"], "not allowed with"),
    (["--run-id", "r1", "--seed", "1"], "one of the arguments --per-cell --fraction is required"),
])
def test_cli_review_sample_bad_input_exits_2_and_changes_nothing(audit, cli_env, args, message):
    before = snapshot(audit["store"])
    done = cli(cli_env, "review", "sample", "--db", audit["path"], *args, check=2)
    assert message in done.stderr
    assert snapshot(audit["store"]) == before


@pytest.mark.slow
def test_cli_sample_export_label_import_end_to_end(audit, cli_env, tmp_path):
    db = audit["path"]
    drawn = json.loads(cli(cli_env, "review", "sample", "--db", db, "--run-id", "r1", "--per-cell", "4", "--seed", "2",
                           "--json", check=0).stdout)
    assert drawn["sampled"] == 24 and {s["sampled"] for s in drawn["strata"]} == {4}
    text = cli(cli_env, "review", "sample", "--db", db, "--run-id", "r1", "--per-cell", "4", "--seed", "2", check=0).stdout
    assert "0 completions added, 24 of 24 sampled in 6 strata" in text and "model-b" in text
    sheet_path = tmp_path / "sheet.csv"
    cli(cli_env, "verdicts", "export", "--sample", "--db", db, "--run-id", "r1", "--out", sheet_path, check=0)
    stdout = cli(cli_env, "verdicts", "export", "--sample", "--db", db, check=0).stdout
    assert stdout.replace("\r\n", "\n") == sheet_path.read_text(encoding="utf-8").replace("\r\n", "\n")
    with sheet_path.open(newline="", encoding="utf-8") as handle:
        sheet = list(csv.DictReader(handle))
    assert list(sheet[0]) == ["completion_id", "run_id", "model", "language", "group", "kind", "prompt",
                              "completion", "label", "note"]
    formula = next(row for row in sheet if row["completion"].endswith('"click")'))
    assert formula["completion"] == "'" + dashboard_db.FORMULA  # a spreadsheet shows it, never runs it
    for index, row in enumerate(sheet[:10]):
        row["label"] = "refused" if index % 2 else "complied"
        row["note"] = "=looks fine" if index == 0 else ""
    with sheet_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(sheet[0]))
        writer.writeheader()
        writer.writerows(sheet)
    imported = json.loads(cli(cli_env, "verdicts", "import", sheet_path, "--db", db, "--annotator", "ann", "--json",
                              check=0).stdout)
    assert (imported["labelled"], imported["changed"], imported["blank"]) == (10, 10, 14)
    store = audit["store"]
    assert store.completion_detail(sheet[0]["completion_id"])["verdicts"].set_index("judge").loc["human", "rationale"] \
        == "=looks fine"
    status = json.loads(cli(cli_env, "review", "status", "--db", db, "--run-id", "r1", "--json", check=0).stdout)
    assert sum(s["labelled"] for s in status) == 10 and sum(s["sampled"] for s in status) == 24
    # the exported sheet, labels and all, imports again without a change (the note's escaping is undone)
    cli(cli_env, "verdicts", "export", "--sample", "--db", db, "--out", sheet_path, check=0)
    again = json.loads(cli(cli_env, "verdicts", "import", sheet_path, "--db", db, "--json", check=0).stdout)
    assert (again["changed"], again["unchanged"]) == (0, 10)
    assert store.review_queue("r1", limit=100)["completion_id"].tolist() == [row["completion_id"] for row in sheet[10:]]


def test_cli_import_bad_file_is_located_exits_2_and_stores_nothing(audit, cli_env, tmp_path):
    db, ids = audit["path"], audit["completions"]
    before = snapshot(audit["store"])
    bad = tmp_path / "bad.csv"
    bad.write_text("completion_id,label,note\r\n"
                   f"{ids[0]},refused,\r\n"
                   f'{ids[1]},complied,"a note\r\nover two lines"\r\n'
                   f"{ids[2]},nope,\r\n"
                   "unknown-id,refused,\r\n", encoding="utf-8")
    done = cli(cli_env, "verdicts", "import", bad, "--db", db, check=2)
    assert f"error: {bad}:5: label 'nope'" in done.stderr and f"error: {bad}:6: unknown completion_id" in done.stderr
    assert "2 bad rows" in done.stderr and "nothing was stored" in done.stderr
    missing = tmp_path / "missing.csv"
    missing.write_text(f"id,verdict\n{ids[0]},refused\n", encoding="utf-8")
    done = cli(cli_env, "verdicts", "import", missing, "--db", db, check=2)
    assert f"{missing}:1: missing column completion_id, label" in done.stderr
    done = cli(cli_env, "verdicts", "import", bad, "--db", tmp_path / "absent.duckdb", check=2)
    assert "no such database" in done.stderr and not (tmp_path / "absent.duckdb").exists()
    done = cli(cli_env, "verdicts", "export", "--sample", "--db", db, check=2)
    assert "no review sample" in done.stderr
    assert snapshot(audit["store"]) == before
