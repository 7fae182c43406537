"""Corrected Defense Rates at MiJaBench-Align scale, side by side with the judge-only figure, in one run.

On a synthetic store of 528,000 completions (bench/synthetic.py: 12 models, one run each) with a 5% review
sample per run (Store.draw_review_sample, stratified by model x language x group x kind) whose human labels
are simulated and imported through Store.import_human_verdicts, it times what a page or `stats` pays for
every model x language x group cell of the attack probes, each path the way the product calls it:

  * corrected: Store.ppi_inputs (population counts per cell and stratum + the sample's label rows) and
    core.ppi.CorrectedRates(...).table (prediction-powered DR with its interval per cell); also with
    .deviations() (what the heatmaps page draws);
  * judge only: Store.label_counts and core.stats.rates.DefenseRates(...).table (1,000 bootstrap resamples per
    cell); also with .deviations().

Medians over repeats, each opening the file as the app does; the ratio corrected / judge-only is printed.
Goal: corrected estimates with intervals for every cell in under 1 s. It then prints today's per-group
rectifier (CorrectedRates(rectifier="group")) and the default (pooled where valid, core/ppi/pooled.py) side by
side on the same sample: cells with an estimate, mean interval width, coverage of the simulated truth, time.

The simulated people disagree with the judge as a real judge's errors would, unequally by group: where the
judge says complied, a person says refused with probability 0.25 for a third of the groups and 0.05 for the
rest; where it says refused, complied with probability 0.03. Every completion gets a simulated human label
(seeded), so each cell's true human DR is known: the bench also reports how many cells' 95% intervals cover
it, corrected and judge-only (a check of the set-up, not a coverage study: see tests/ppi/test_rates.py).

    .venv/bin/python -m bench.ppi_bench [--completions 528000] [--db PATH] [--fraction 0.05] [--json]

The store is built once per path and reused (its sample and labels too): a path that holds a store of the
asked size is not rebuilt (default: $TMPDIR/forwhom-ppi-bench/synthetic-<completions>.duckdb).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.synthetic import build_synthetic_store
from bench.timing import median_s
from core.stats.rates import DefenseRates
from core.ppi import CorrectedRates
from core.store import Store

GOAL_S = 1.0
JUDGE = "refusal"
BY = ["model", "language", "group"]
BASELINE = ["model", "language"]
ATTACKS = {"kind": ["attack"]}
MISSED, MISSED_LOW, FALSE_REFUSAL = 0.25, 0.05, 0.03
ANNOTATOR = "bench-simulated"


def simulated_humans(store: Store, seed: int = 0) -> pd.DataFrame:
    """Every completion's simulated human label from its judge label (see the module doc), seeded and in
    completion-id order, so the same store always gets the same people. Columns: completion_id, model,
    language, group, kind, error, judge_label, human_label."""
    frame = store.judged(JUDGE)[["completion_id", "model", "language", "group", "kind", "error"]]
    own = store.verdict_labels([JUDGE])[["completion_id", "label"]].rename(columns={"label": "judge_label"})
    frame = frame.merge(own, on="completion_id", how="left").sort_values("completion_id").reset_index(drop=True)
    groups = sorted(frame["group"].dropna().unique())
    miss = frame["group"].map({g: MISSED if i % 3 == 0 else MISSED_LOW for i, g in enumerate(groups)})
    draw = np.random.default_rng(seed).random(len(frame))
    refused = frame["judge_label"].eq("refused").to_numpy()
    human = np.where(refused, draw >= FALSE_REFUSAL, draw < miss.to_numpy())
    return frame.assign(human_label=np.where(human, "refused", "complied"))


def prepare(db: Path, completions: int, fraction: float, seed: int = 0) -> dict:
    """The store with its sample and simulated labels, built or reused; returns what was done and how long."""
    done: dict = {"db": str(db)}
    fresh = not db.exists() or Store(db, readonly=True).summary()["completions"] != completions
    if fresh:
        for stale in (db, db.with_name(db.name + ".wal")):
            stale.unlink(missing_ok=True)
        db.parent.mkdir(parents=True, exist_ok=True)
        done["build_s"] = build_synthetic_store(db, completions)["seconds"]
    store = Store(db)  # opened for writing once: migrates a file of an older schema
    humans = simulated_humans(store, seed)
    progress = store.review_progress()
    if progress.empty or int(progress["sampled"].sum()) == 0:
        started = time.perf_counter()
        for run_id in store.runs()["run_id"]:
            store.draw_review_sample(run_id, fraction=fraction, seed=seed)
        done["draw_s"] = round(time.perf_counter() - started, 2)
    sheet = store.sample_sheet()[["completion_id", "label"]]
    todo = sheet.loc[sheet["label"] == ""].merge(humans[["completion_id", "human_label"]], on="completion_id")
    if len(todo):
        started = time.perf_counter()
        store.import_human_verdicts([(i + 2, cid, label, "") for i, (cid, label) in
                                     enumerate(zip(todo["completion_id"], todo["human_label"]))], ANNOTATOR,
                                    source="simulated")
        done["import_s"] = round(time.perf_counter() - started, 2)
    done["reused"] = not fresh
    done["sampled"], done["labelled_now"] = len(sheet), len(todo)
    return done | {"humans": humans}


def covered(table: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, int]:
    """Share of the cells with an interval whose interval holds the cell's true human DR, and how many."""
    both = table.merge(truth, on=BY).dropna(subset=["ci_low", "ci_high"])
    hit = (both["ci_low"] <= both["true_dr"] + 1e-12) & (both["true_dr"] <= both["ci_high"] + 1e-12)
    return (float(hit.mean()) if len(both) else float("nan")), len(both)


def run(completions: int = 528_000, db: Path | None = None, fraction: float = 0.05, repeats: int = 7) -> dict:
    db = db or Path(tempfile.gettempdir()) / "forwhom-ppi-bench" / f"synthetic-{completions}.duckdb"
    prepared = prepare(db, completions, fraction)
    humans = prepared.pop("humans")
    store = Store(db, readonly=True)

    def corrected(deviations: bool = False) -> pd.DataFrame:
        population, sample, _ = store.ppi_inputs(JUDGE, BY, ATTACKS)
        rates = CorrectedRates(population, sample, BY)
        return rates.deviations(BASELINE) if deviations else rates.table

    def judge_only(deviations: bool = False) -> pd.DataFrame:
        rates = DefenseRates(store.label_counts(JUDGE, BY, ATTACKS), BY)
        return rates.deviations(BASELINE) if deviations else rates.table

    corrected()  # one untimed call each: the first attach of the file, numpy's first use
    judge_only()
    inputs_s, (population, sample, _) = median_s(lambda: store.ppi_inputs(JUDGE, BY, ATTACKS), repeats)
    corrected_s, table = median_s(corrected, repeats)
    judge_s, judge_table = median_s(judge_only, repeats)
    corrected_dev_s, _ = median_s(lambda: corrected(True), repeats)
    judge_dev_s, _ = median_s(lambda: judge_only(True), repeats)

    attack = humans[(humans["kind"] == "attack") & humans["error"].isna()]
    truth = attack.assign(h=attack["human_label"].eq("refused")).groupby(BY, as_index=False)["h"].mean() \
        .rename(columns={"h": "true_dr"})
    corrected_cover, corrected_cells = covered(table, truth)
    judge_cover, judge_cells = covered(judge_table, truth)
    # today's per-group rectifier against the default (pooled where valid), on the same sample
    today_s, today = median_s(lambda: CorrectedRates(population, sample, BY, rectifier="group").table, repeats)
    new_s, _ = median_s(lambda: CorrectedRates(population, sample, BY).table, repeats)
    today_cover, today_cells = covered(today, truth)
    both = today["dr"].notna().to_numpy() & table["dr"].notna().to_numpy()
    width_new = float((table["ci_high"] - table["ci_low"])[both].mean()) if both.any() else float("nan")
    width_today = float((today["ci_high"] - today["ci_low"])[both].mean()) if both.any() else float("nan")
    rectifiers = {
        "today_s": round(today_s, 3), "new_s": round(new_s, 3),
        "cells_estimated": {"today": int(today["dr"].notna().sum()), "new": int(table["dr"].notna().sum()),
                            "cells": len(table)},
        "pooled_cells": int((table["rectifier_scope"] == "pooled").sum()),
        "mean_width_where_both": {"today": round(width_today, 4), "new": round(width_new, 4),
                                  "ratio": round(width_new / width_today, 3) if width_today else None},
        "coverage": {"today": round(today_cover, 3), "new": round(corrected_cover, 3)}}
    return {
        "completions": completions, "cells": len(table), "population_rows": len(population),
        "sample_labels_attack": len(sample), "fraction": fraction, **prepared,
        "ppi_inputs_ms": round(inputs_s * 1000, 1),
        "corrected_s": round(corrected_s, 3), "judge_only_s": round(judge_s, 3),
        "ratio_corrected_to_judge_only": round(corrected_s / judge_s, 2) if judge_s else None,
        "corrected_with_deviations_s": round(corrected_dev_s, 3), "judge_only_with_deviations_s": round(judge_dev_s, 3),
        "ratio_with_deviations": round(corrected_dev_s / judge_dev_s, 2) if judge_dev_s else None,
        "corrected_cells_with_interval": corrected_cells,
        "coverage_of_true_human_dr": {"corrected": round(corrected_cover, 3), "judge_only": round(judge_cover, 3),
                                      "cells": judge_cells},
        "median_half_width": {"corrected": round(float(((table["ci_high"] - table["ci_low"]) / 2).median()), 4),
                              "judge_only": round(float(((judge_table["ci_high"] - judge_table["ci_low"]) / 2)
                                                        .median()), 4)},
        "goal_s": GOAL_S, "met": corrected_s < GOAL_S, "repeats": repeats, "rectifiers": rectifiers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--completions", type=int, default=528_000)
    parser.add_argument("--db", type=Path, default=None, help="the store to build or reuse")
    parser.add_argument("--fraction", type=float, default=0.05, help="review sample: share of each stratum")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.completions, args.db, args.fraction, args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['completions']:,} completions, {result['cells']} model x language x group cells, "
          f"{result['sample_labels_attack']:,} sample labels on attack probes ({result['fraction']:.0%} sample); "
          f"store {'reused' if result['reused'] else 'built'} at {result['db']}")
    print(f"{'':<44}{'corrected':>10}{'judge only':>12}{'ratio':>7}")
    print(f"{'every cell with its interval (s)':<44}{result['corrected_s']:>10}{result['judge_only_s']:>12}"
          f"{result['ratio_corrected_to_judge_only']:>7}")
    print(f"{'... and deviations from the model mean (s)':<44}{result['corrected_with_deviations_s']:>10}"
          f"{result['judge_only_with_deviations_s']:>12}{result['ratio_with_deviations']:>7}")
    print(f"of which Store.ppi_inputs: {result['ppi_inputs_ms']} ms; goal corrected < {GOAL_S} s: "
          f"{'met' if result['met'] else 'NOT met'}")
    cover = result["coverage_of_true_human_dr"]
    print(f"intervals holding the simulated true human DR: corrected {cover['corrected']:.3f}, judge only "
          f"{cover['judge_only']:.3f} of {cover['cells']} cells; median half-width "
          f"{result['median_half_width']['corrected']} vs {result['median_half_width']['judge_only']}")
    r = result["rectifiers"]
    cells, width = r["cells_estimated"], r["mean_width_where_both"]
    print(f"\n{'rectifier':<44}{'today':>10}{'new':>12}{'ratio':>7}   (today: per group; new: the default, "
          f"pooled in {r['pooled_cells']} cells)")
    print(f"{'cells with a corrected estimate':<44}{cells['today']:>10}{cells['new']:>12}{'':>7}   of {cells['cells']}")
    print(f"{'mean interval width (cells both estimate)':<44}{width['today']:>10}{width['new']:>12}"
          f"{width['ratio']:>7}")
    print(f"{'intervals holding the true human DR':<44}{r['coverage']['today']:>10}{r['coverage']['new']:>12}")
    print(f"{'CorrectedRates alone (s)':<44}{r['today_s']:>10}{r['new_s']:>12}"
          f"{round(r['new_s'] / r['today_s'], 2) if r['today_s'] else '':>7}")


if __name__ == "__main__":
    main()
