"""A store with two versions of a model on the same probes, where the truth of the comparison is known.

Built through the real Store API from the bundled English probes (every group's 80 attack probes and 10
controls). Run r1 holds targets v1 and v2; run r2 holds v1 again (so `--base v1` alone is ambiguous) with the
same labels as r1's v1. Labels are drawn per probe from a seeded generator:

    v1: each probe refused with probability 0.6 (attacks) or 0.1 (controls)
    v2: the same answers, except that on `jewish` attack probes 70% of v1's refusals become compliances
        (a drop of about 0.42 in DR), and on every control probe a v1 compliance becomes a refusal with
        probability 0.4 (an over-refusal rise of about 0.36)

One v2 completion (a `black` attack probe) is an error, so one shared probe is left out of the pairs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from core.probes.builder import build_bundled
from core.store import CompletionRecord, Store, VerdictRecord

WORSE_GROUP = "jewish"


def build(path: Path, seed: int = 0) -> dict:
    """Create the database; returns the probes and each side's labels per probe id."""
    rng = np.random.default_rng(seed)
    probes = [p for p in build_bundled() if p.language == "en"]
    store = Store(path)
    store.add_probes(probes)
    ids = [p.probe_id for p in probes]
    v1, v2 = {}, {}
    for probe in probes:
        refused = bool(rng.random() < (0.6 if probe.kind == "attack" else 0.1))
        v1[probe.probe_id] = refused
        changed = refused
        if probe.kind == "attack" and probe.group == WORSE_GROUP and refused:
            changed = bool(rng.random() >= 0.7)
        if probe.kind == "control" and not refused:
            changed = bool(rng.random() < 0.4)
        v2[probe.probe_id] = changed
    errored = next(p.probe_id for p in probes if p.kind == "attack" and p.group == "black")
    for run_id, sides in (("r1", {"v1": v1, "v2": v2}), ("r2", {"v1": v1})):
        store.create_run(run_id, {"targets": list(sides), "judges": ["refusal"]}, ids)
        store.add_run_targets(run_id, list(sides))
        records, verdicts = [], []
        for target, labels in sides.items():
            for probe in probes:
                refused = labels[probe.probe_id]
                error = "HTTP 500" if (run_id, target, probe.probe_id) == ("r1", "v2", errored) else None
                text = None if error else f"{target} answer to {probe.probe_id}: {'no' if refused else 'sure'}"
                record = CompletionRecord(run_id, probe.probe_id, target, text, error=error)
                records.append(record)
                if error is None:
                    verdicts.append(VerdictRecord(record.completion_id, "refusal",
                                                  "refused" if refused else "complied"))
        store.save_results(records, verdicts)
        store.set_run_status(run_id, "completed")
    return {"probes": probes, "v1": v1, "v2": v2, "errored": errored}


def label_sample(path: Path, facts: dict, per_cell: int = 20) -> None:
    """Draw r1's review sample and label it as people would if the judge had misread v2's answers to the
    `WORSE_GROUP` attacks: the humans say v2 refused those exactly as v1 did (so the drop is the judge's error,
    not the model's); everywhere else the humans agree with the stored labels."""
    store = Store(path)
    store.draw_review_sample("r1", per_cell=per_cell, seed=0)
    misread = {p.probe_id for p in facts["probes"] if p.group == WORSE_GROUP and p.kind == "attack"}
    labels = []
    for line, row in enumerate(store.sample_sheet("r1").itertuples(), start=2):
        probe_id = row.completion.split(" ")[3].rstrip(":")  # "<target> answer to <probe id>: ..."
        truth = facts["v1" if row.model == "v2" and probe_id in misread else row.model][probe_id]
        labels.append((line, row.completion_id, "refused" if truth else "complied", None))
    store.import_human_verdicts(labels, annotator="test")
