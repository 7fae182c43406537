"""A mitigation whose truth is known: a store with an after-audit run of a base and an adapted model, and the
mitigation directory (manifest.json, audit.json, losses.jsonl) `python -m core mitigate --audit` would leave.

Built through the real Store API from the bundled English probes of five groups. Labels per probe, seeded:

    base:    each attack probe refused with probability 0.5, each control probe with probability 0.1
    adapted: the base's answers, except that on the trained groups' attack probes a base compliance becomes a
             refusal with probability 0.6, and on every control probe a base compliance becomes a refusal with
             probability 0.2 (the fix over-refuses a little); held-out groups' attacks are unchanged.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.probes.builder import build_bundled
from core.store import CompletionRecord, Store, VerdictRecord

TRAINED = ("black", "jewish", "women")
HELD_OUT = ("asian", "latino")
BASE, ADAPTED, RUN = "smollm2-135m-instruct", "adapter-0123456789ab", "after-audit"


def build(db: Path, out: Path, seed: int = 0) -> dict:
    """Create the store and the mitigation directory; returns the probes and both sides' labels."""
    rng = np.random.default_rng(seed)
    probes = [p for p in build_bundled() if p.language == "en" and p.group in TRAINED + HELD_OUT]
    base, adapted = {}, {}
    for probe in probes:
        refused = bool(rng.random() < (0.5 if probe.kind == "attack" else 0.1))
        after = refused
        if not refused and probe.kind == "attack" and probe.group in TRAINED:
            after = bool(rng.random() < 0.6)
        if not refused and probe.kind == "control":
            after = bool(rng.random() < 0.2)
        base[probe.probe_id], adapted[probe.probe_id] = refused, after
    out.mkdir(parents=True, exist_ok=True)
    store = Store(db)
    store.add_probes(probes)
    config = {"targets": ["smollm2", f"local:{out}"], "judges": ["refusal"],
              "mitigation": {"out": str(out), "excluded_training_probes": 2}}
    store.create_run(RUN, config, [p.probe_id for p in probes])
    store.add_run_targets(RUN, [BASE, ADAPTED])
    records, verdicts = [], []
    for target, labels in ((BASE, base), (ADAPTED, adapted)):
        for probe in probes:
            record = CompletionRecord(RUN, probe.probe_id, target, f"{target}: {'no' if labels[probe.probe_id] else 'ok'}")
            records.append(record)
            verdicts.append(VerdictRecord(record.completion_id, "refusal",
                                          "refused" if labels[probe.probe_id] else "complied"))
    store.save_results(records, verdicts)
    store.set_run_status(RUN, "completed")
    pairs = [{"pair": 0, "probe_id": "fw-training-1", "language": "en", "group": "black", "sha256": "a" * 64},
             {"pair": 1, "probe_id": "fw-training-2", "language": "en", "group": "women", "sha256": "b" * 64}]
    manifest = {"format": 1, "fingerprint": "f" * 64, "adapter_sha256": "0123456789ab" + "c" * 52, "steps": 3,
                "config": {"beta": 0.1, "lora_r": 8, "epochs": 1}, "trained_groups": list(TRAINED),
                "held_out_groups": list(HELD_OUT), "chosen_sources": {"template": 2}, "pairs": pairs,
                "probe_ids": ["fw-training-1", "fw-training-2"],
                "base": {"spec": "smollm2", "path": "/nowhere", "sha256": "d" * 64, "target_id": BASE}}
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (out / "audit.json").write_text(json.dumps({
        "run_id": RUN, "base_target": BASE, "adapted_target": ADAPTED, "adapter_sha256": manifest["adapter_sha256"],
        "probes": len(probes), "excluded_training_probes": 2, "excluded_from_this_selection": 2}), encoding="utf-8")
    (out / "losses.jsonl").write_text("".join(json.dumps({"step": s, "loss": loss}) + "\n"
                                              for s, loss in ((1, 0.693), (2, 0.61), (3, 0.52))), encoding="utf-8")
    return {"probes": probes, "base": base, "adapted": adapted}
