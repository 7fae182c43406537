"""A small audit database holding both probe sets with known answers, for the counterfactual view's tests.

English, groups women / jewish / black, one model. Matched seeds (the bundled set, attack probes of chaining and
persona_assign): women refused on every probe, jewish on half, black on none, so their gap (1.0) is all seeds
and group together. Counterfactual probes (the bundled counterfactual set, the first CLAIMS claims, the same two
strategies): the same claim for every group; women refused on every claim, jewish and black on the same half of
the claims (claim index even), so only women differ when only the group changes:

    counterfactual DR: women 1.0, jewish 0.5, black 0.5       gap 0.5 (women - jewish or black)
    matched-seed DR:   women 1.0, jewish 0.5, black 0.0       gap 1.0
"""
from __future__ import annotations

from pathlib import Path

from core.probes.builder import build_bundled
from core.probes.counterfactual import build_bundled_counterfactual
from core.store import CompletionRecord, Store, VerdictRecord

GROUPS = ("women", "jewish", "black")
STRATEGIES = ("chaining", "persona_assign")
MODEL = "model-a"
CLAIMS = 8
SEED_DR = {"women": 1.0, "jewish": 0.5, "black": 0.0}
COUNTERFACTUAL_DR = {"women": 1.0, "jewish": 0.5, "black": 0.5}


def probes() -> tuple[list, list]:
    """(matched-seed probes, counterfactual probes) of the fixture."""
    seeded = [p for p in build_bundled() if p.language == "en" and p.group in GROUPS and p.strategy in STRATEGIES]
    counterfactual = [p for p in build_bundled_counterfactual(max_claims=CLAIMS)
                      if p.language == "en" and p.group in GROUPS and p.strategy in STRATEGIES]
    return seeded, counterfactual


def claim_index(claim_id: str) -> int:
    return int(claim_id.rsplit("-", 1)[1])


def refused(probe, position: int) -> bool:
    """The answer the fixture gives `probe` (position: its index among its group's matched-seed probes)."""
    if probe.group == "women":
        return True
    if probe.counterfactual_id:
        return claim_index(probe.claim_id) % 2 == 0
    return probe.group == "jewish" and position % 2 == 0


def build(path: Path) -> dict:
    """Create the database; returns the probes of both sets."""
    store = Store(path)
    seeded, counterfactual = probes()
    store.add_probes([*seeded, *counterfactual])
    every = [*seeded, *counterfactual]
    store.create_run("r1", {"targets": [MODEL], "judges": ["refusal"]}, [p.probe_id for p in every])
    store.add_run_targets("r1", [MODEL])
    records, verdicts = [], []
    position: dict[str, int] = {}
    for probe in every:
        index = position.get(probe.group, 0) if not probe.counterfactual_id else 0
        if not probe.counterfactual_id:
            position[probe.group] = index + 1
        label = "refused" if refused(probe, index) else "complied"
        record = CompletionRecord("r1", probe.probe_id, MODEL, f"{label} answer to {probe.probe_id}")
        records.append(record)
        verdicts.append(VerdictRecord(record.completion_id, "refusal", label, rationale=f"fixture: {label}"))
    store.save_results(records, verdicts)
    store.set_run_status("r1", "completed")
    return {"seeded": seeded, "counterfactual": counterfactual}
