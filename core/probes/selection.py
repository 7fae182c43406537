"""Which probes a run sends: filters plus a per-cell sample that is the same on every machine."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from core.probes.schema import Probe
from core.vocab import taxonomy


@dataclass(frozen=True)
class Selection:
    """A probe selection. Empty tuples mean "all"; per_cell=None keeps every matching probe.

    A cell is (language, group, strategy): the unit the Defense Rate is compared across.
    """

    languages: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    scenario_categories: tuple[str, ...] = ()
    per_cell: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "languages", _keys(self.languages, taxonomy.canonical_language))
        object.__setattr__(self, "groups", _keys(self.groups, taxonomy.canonical_group))
        object.__setattr__(self, "strategies", _keys(self.strategies, taxonomy.canonical_strategy))
        object.__setattr__(self, "scenario_categories",
                           tuple(taxonomy.canonical_category(v) for v in self.scenario_categories))
        if self.per_cell is not None and self.per_cell < 1:
            raise taxonomy.VocabularyError(f"per_cell must be at least 1, got {self.per_cell}")

    def to_dict(self) -> dict:
        return asdict(self)


def _keys(values: Sequence[str], canonical: Callable[[str], str]) -> tuple[str, ...]:
    """Values made canonical by the default taxonomy; one it does not know passes through when it is already a
    plain key (lower case, `_`), since it may be a custom taxonomy's (`roma`, `ro`): the caller that knows the
    store's taxonomy (the CLI, the Run page) validates it there. Any other spelling is still an error."""
    keys = []
    for value in values:
        try:
            keys.append(canonical(value))
        except taxonomy.VocabularyError:
            if not taxonomy.KEY.match(str(value)) or taxonomy.normalise_key(value) != value:
                raise
            keys.append(value)
    return tuple(keys)



def _rank(seed: int, probe: Probe) -> str:
    """The sampling order within a cell. Counterfactual probes rank by their counterfactual_id, so per_cell=k
    keeps the same k counterfactual ids in every group's cell: the siblings stay whole, and the group
    comparison stays paired."""
    return hashlib.sha1(f"{seed}:{probe.counterfactual_id or probe.probe_id}".encode()).hexdigest()


def select(probes: Sequence[Probe], selection: Selection) -> list[Probe]:
    """Filter probes and keep at most per_cell of each cell, chosen by a seeded hash of the probe id (of the
    counterfactual id for counterfactual probes)."""
    def keep(p: Probe) -> bool:
        return ((not selection.languages or p.language in selection.languages)
                and (not selection.groups or p.group in selection.groups)
                and (not selection.strategies or p.strategy in selection.strategies)
                and (not selection.scenario_categories or p.scenario_category in selection.scenario_categories))

    cells: dict[tuple[str, str, str], list[Probe]] = defaultdict(list)
    for probe in probes:
        if keep(probe):
            cells[(probe.language, probe.group, probe.strategy)].append(probe)
    chosen: list[Probe] = []
    for key in sorted(cells):
        members = sorted(cells[key], key=lambda p: _rank(selection.seed, p))
        chosen.extend(members if selection.per_cell is None else members[: selection.per_cell])
    return chosen
