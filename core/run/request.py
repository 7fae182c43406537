"""What a run is asked to do: the request the dashboard's Run page and the CLI's `run` both build, the probes it
would send, and how long it is expected to take, before anything is written.

The stored config has the same shape from either surface, so a run planned by one resumes from the other.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.judges import DEFAULT_JUDGES
from core.options import check_numbers
from core.probes.builder import BUNDLED_PROBES
from core.probes.counterfactual import COUNTERFACTUAL_PROBES
from core.probes.loader import load_probes
from core.probes.schema import Probe
from core.probes.selection import Selection, select
from core.run.eta import Prior, prior
from core.store import Store
from core.targets import TARGETS
from core.vocab import taxonomy

# Generation speed of the default local model on this project's 2-core machines (SmolLM2-135M, batched),
# used for the estimate shown before a run starts. API targets have no fixed speed: no estimate.
LOCAL_TOKENS_PER_S = 170.0
# The probe sets a run draws from: a bundled set (with the stored probes of its kind) or the stored probes alone.
PROBE_SETS: dict[str, str] = {"builtin": "Matched seeds", "counterfactual": "Counterfactual", "stored": "Stored only"}
_BUNDLED_SETS: dict[str, Path] = {"builtin": BUNDLED_PROBES, "counterfactual": COUNTERFACTUAL_PROBES}


@dataclass(frozen=True)
class RunRequest:
    """What the Run page asks for; the stored config has the same shape as the CLI's, so either resumes it."""

    targets: tuple[str, ...]
    judges: tuple[str, ...] = DEFAULT_JUDGES
    selection: Selection = field(default_factory=Selection)
    sources: tuple[str, ...] = ()
    max_new_tokens: int = 64
    batch_size: int = 16
    temperature: float = 0.0
    seed: int = 0
    probe_set: str = "builtin"  # one of PROBE_SETS

    def __post_init__(self) -> None:
        if self.probe_set not in PROBE_SETS:
            raise ValueError(f"unknown probe set {self.probe_set!r}; known: {', '.join(PROBE_SETS)}")
        # the same rules, and messages, as the CLI's options (core.options): OptionError, a ValueError
        check_numbers(max_new_tokens=self.max_new_tokens, batch_size=self.batch_size, temperature=self.temperature,
                      seed=self.seed, per_cell=self.selection.per_cell)

    def config(self) -> dict[str, Any]:
        return {"selection": self.selection.to_dict(), "sources": list(self.sources), "probe_set": self.probe_set,
                "generation": {"max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size,
                               "temperature": self.temperature, "seed": self.seed}}


def candidate_probes(store: Store | None, request: RunRequest, exclude: Collection[str] = ()) -> list[Probe]:
    """The probes a request would send: the request's probe set, filtered, then sampled per cell.

    `builtin` is the bundled matched-seed set with the stored probes that are not counterfactual, `counterfactual`
    the bundled counterfactual set with the stored counterfactual probes (so neither set draws in the other's
    probes once both have been run), `stored` the stored probes alone. A bundled set is pooled only when the
    store holds the default taxonomy's population: a store of another taxonomy has its groups, not MiJaBench's.
    Reads only, so the page can show the count before anything is written (store None: no database yet,
    the bundled probes alone). `exclude`: probe ids left out before the per-cell sample is drawn (a mitigation's
    training probes), so the cells stay full from the other probes.
    """
    sel = request.selection
    bundled_file = _BUNDLED_SETS.get(request.probe_set)
    default_population = store is None or store.taxonomy().name == taxonomy.DEFAULT_NAME
    bundled = load_probes(bundled_file, default_source=request.probe_set).probes \
        if bundled_file is not None and default_population else []
    stored = [] if store is None else store.probes({"language": sel.languages, "group": sel.groups,
                                                    "strategy": sel.strategies,
                                                    "scenario_category": sel.scenario_categories})
    if request.probe_set != "stored":
        counterfactual = request.probe_set == "counterfactual"
        stored = [p for p in stored if bool(p.counterfactual_id) == counterfactual]
    pool = {p.probe_id: p for p in [*bundled, *stored]}
    excluded = set(exclude)
    probes = [p for p in pool.values() if p.probe_id not in excluded]
    if request.sources:
        probes = [p for p in probes if p.source in request.sources]
    return select(probes, sel)


# What loading a local model costs before its first answer on these machines (reading and converting the weights),
# added to the guess: a guess of generation time alone said "15 s" for an audit that took four minutes.
LOCAL_LOAD_S = 30.0


def speed_of(store: Store | None, spec: str) -> Prior | None:
    """A target's speed measured in its latest earlier run in this store (core.run.eta.prior), found by its target id
    (a built-in name's id, a saved target's name), or None."""
    if store is None:
        return None
    from core.targets import BUILTIN_TARGETS

    return prior(store.target_speed(BUILTIN_TARGETS.get(spec, spec)))


def estimate_seconds(probes: int, targets: Sequence[str], max_new_tokens: int,
                     store: Store | None = None) -> tuple[float | None, str]:
    """(seconds, what the figure rests on) for a run of `probes` probes on `targets`. Each target's speed measured in
    its earlier runs in `store` where it has some ("measured"); else, for a model computed here, a guess: every
    answer at full length at LOCAL_TOKENS_PER_S plus loading the model; an API target without earlier runs has no
    fixed speed (None)."""
    if not probes or not targets:
        return None, "nothing to send"
    total, measured, guessed = 0.0, [], []
    for spec in targets:
        earlier = speed_of(store, spec)
        if earlier is not None:
            total += probes * earlier.seconds_per_answer
            measured.append(f"{spec}: {earlier.seconds_per_answer:.2f} s per answer in run {earlier.run_id}")
            continue
        kind = TARGETS.find(spec)
        if kind is None or not kind[0].traits.get("in_process"):
            return None, (f"{spec} has no earlier run here to measure its speed on (an API's speed varies); the "
                          "ETA below is measured from the first batch")
        total += probes * max_new_tokens / LOCAL_TOKENS_PER_S + LOCAL_LOAD_S
        guessed.append(spec)
    said = []
    if measured:
        said.append("measured in earlier runs (" + "; ".join(measured) + ")")
    if guessed:
        said.append(f"a guess for {', '.join(guessed)} (no earlier run here): every answer at its full length at "
                    f"{LOCAL_TOKENS_PER_S:.0f} tokens/s on 2 CPU cores plus {LOCAL_LOAD_S:.0f} s to load the model")
    return total, "; ".join(said) + ". Once the run starts, the ETA is measured from its own batches."
