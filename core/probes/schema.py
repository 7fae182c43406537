"""The probe: one prompt sent to a model, with everything needed to slice results by it."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Probe:
    probe_id: str
    language: str
    group: str
    seed_text: str
    scenario_category: str
    scenario: str
    strategy: str
    prompt: str
    kind: str  # "attack" or "control"
    source: str  # "mijabench", "builtin", "custom" or "counterfactual"
    # Probes of one counterfactual_id fill the same claim, scenario, strategy and template for every group of a
    # taxonomy, so they differ only in the group's words (core/probes/counterfactual.py); claim_id is the claim
    # template they came from (the unit resampled by the matched statistics, core/stats/matched.py). Empty otherwise.
    counterfactual_id: str = ""
    claim_id: str = ""
    taxonomy: str = "mijabench"  # the name of the taxonomy the probe's group and language belong to

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


PROBE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Probe))
# Columns a probe file may leave out (the default shown above): MiJaBench files have none of them.
OPTIONAL_PROBE_FIELDS: tuple[str, ...] = ("counterfactual_id", "claim_id", "taxonomy")


def probe_id_for(language: str, group: str, strategy: str, prompt: str, source: str) -> str:
    """A stable id from what makes a probe unique, so rebuilding or re-importing never duplicates it."""
    key = "\x1f".join((language, group, strategy, prompt))
    prefix = {"mijabench": "mjb", "builtin": "fw", "custom": "cus", "counterfactual": "cf"}.get(source, "p")
    return f"{prefix}-{hashlib.sha1(key.encode('utf-8')).hexdigest()[:16]}"
