"""A small audit database with a review sample whose corrected Defense Rates are known exactly, for the pages,
the report and the browser tests of issue 13 (built through the real Store API: draw_review_sample and
import_human_verdicts).

Two models, English, groups women / jewish / black, 24 attack completions per (model, group), one run. The
judge `refusal` labels each cell uniformly, so the corrected DR (judge DR + mean(human - judge) on the sample)
does not depend on which completions the seeded draw picks; half of each stratum is sampled (12 labels):

    cell              judge   humans on the 12 sampled        corrected   judge only (human verdicts override)
    model-a women     24/24   agree (12 refused)              1.0         1.0
    model-a jewish     0/24   agree (12 complied)             0.0         0.0
    model-a black      0/24   6 refused, 6 complied           0.5         0.25  (6 of 24 overridden)
    model-b women     24/24   agree                           1.0         1.0
    model-b jewish     0/24   agree                           0.0         0.0
    model-b black      0/24   6 refused, 6 complied           0.5         0.25

So the judge misses refusals for black people only: its false-compliance rate is 1.0 there and 0 elsewhere
(the test across groups rejects), and the corrected model x group heatmap differs from the judge-only one.
Per model: corrected DR 0.5, gap 1.0 (women - jewish); judge only 0.4167.
"""
from __future__ import annotations

from pathlib import Path

from bench.synthetic import synthetic_probes
from core.store import CompletionRecord, Store, VerdictRecord

GROUPS = ("women", "jewish", "black")
MODELS = ("model-a", "model-b")
PER_CELL = 24
JUDGE_REFUSED = {"women": True, "jewish": False, "black": False}
CORRECTED = {"women": 1.0, "jewish": 0.0, "black": 0.5}
JUDGE_ONLY = {"women": 1.0, "jewish": 0.0, "black": 0.25}
RUN = "r1"


def build(path: Path, label: bool = True, per_cell: int | None = None, fraction: float | None = 0.5) -> dict:
    """Create the database and draw the sample (`fraction` of each stratum, or `per_cell`); `label` imports the
    human labels of the table above. Returns the sample's completion ids in queue order and the human labels."""
    store = Store(path)
    pool = [p for p in synthetic_probes(3000) if p.language == "en" and p.kind == "attack" and p.group in GROUPS]
    probes = [p for group in GROUPS for p in [q for q in pool if q.group == group][:PER_CELL]]
    store.add_probes(probes)
    store.create_run(RUN, {"targets": list(MODELS), "judges": ["refusal"]}, [p.probe_id for p in probes])
    store.add_run_targets(RUN, list(MODELS))
    records, verdicts = [], []
    for model in MODELS:
        for probe in probes:
            record = CompletionRecord(RUN, probe.probe_id, model, f"answer of {model} to {probe.group}")
            records.append(record)
            verdicts.append(VerdictRecord(record.completion_id, "refusal",
                                          "refused" if JUDGE_REFUSED[probe.group] else "complied"))
    store.save_results(records, verdicts)
    store.set_run_status(RUN, "completed")
    if per_cell is not None:
        fraction = None
    store.draw_review_sample(RUN, per_cell=per_cell, fraction=fraction, seed=0)
    sheet = store.sample_sheet(RUN)
    labels = {}
    for (model, group), part in sheet.groupby(["model", "group"], sort=False):
        for index, completion_id in enumerate(part["completion_id"]):
            if group == "black":
                labels[completion_id] = "refused" if index < len(part) // 2 else "complied"
            else:
                labels[completion_id] = "refused" if JUDGE_REFUSED[group] else "complied"
    if label:
        store.import_human_verdicts([(i + 2, cid, lab, "") for i, (cid, lab) in enumerate(labels.items())],
                                    annotator="tester", source="labels.csv")
    return {"sample": list(sheet["completion_id"]), "labels": labels, "completions": [r.completion_id for r in records]}
