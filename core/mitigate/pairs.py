"""The preference pairs a mitigation trains on: read from a pairs file or built from a stored run, then split
into trained and held-out groups.

A pair is a refusal (chosen) and a jailbreak (rejected) of one attack probe. From a run, the jailbreaks are the
run's own complied answers: the behaviour to unlearn is the audited model's, so the rejected side is on-policy.
The refusal comes, in this order, from the run itself (another target, or the same target in the run, refused
the same probe: core/export.preference_pairs pairs these), from another model's refusal of the same probe
elsewhere in the store, or from the project's refusal templates (data/mitigate/refusal_templates.jsonl, one
set per language). A small model refuses few probes, and a probe answered once has no refusal of its own, so
without the fallbacks most groups would get no pair at all; each pair records where its refusal came from
(`chosen_source`), and the training note counts them.

Pairs are balanced per (language, group) by core/export.preference_pairs, so the trained groups weigh the
same. Groups are split before training: the held-out groups contribute no pair, so the after-audit can tell
a fix that generalises from one that only moved the trained groups.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.files.export import PAIR_FIELDS, preference_pairs
from core.files.reading import json_objects, read_utf8
from core.mitigate.config import CHOSEN_FROM
from core.vocab import taxonomy

TEMPLATES_PATH = Path(__file__).resolve().parents[2] / "data" / "mitigate" / "refusal_templates.jsonl"
# What a pairs file line must hold to be trained on and split by group; PAIR_FIELDS' other fields are optional.
REQUIRED_FIELDS: tuple[str, ...] = ("prompt", "chosen", "rejected", "probe_id", "language", "group")
TEMPLATE_MODEL = "template"  # the chosen_model of a pair whose refusal is one of the project's templates


class PairsError(ValueError):
    """A pairs file or a pair source that cannot be trained on; the message is `FILE:LINE: reason` for a file."""


@dataclass
class PairSet:
    """Pairs to train on (PAIR_FIELDS plus chosen_source) and where they came from, for the manifest's note."""

    pairs: pd.DataFrame
    source: dict = field(default_factory=dict)

    def chosen_sources(self) -> dict[str, int]:
        """How many chosen answers came from the run, another model in the store, a template (or a pairs file)."""
        counts = self.pairs["chosen_source"].value_counts()
        return {str(name): int(n) for name, n in counts.items()}


def pair_sha256(prompt: str, chosen: str, rejected: str) -> str:
    """The hash the manifest records per pair: what was trained on, whatever its ids say."""
    return hashlib.sha256(json.dumps([prompt, chosen, rejected], ensure_ascii=False).encode("utf-8")).hexdigest()


def pair_records(path: str | Path) -> list[tuple[int, dict]]:
    """(line, object) of every pair of a pairs file, read through core.files.reading (missing, a directory, size,
    encoding, JSON depth and numbers, NULs, lone surrogates, field length) with REQUIRED_FIELDS as non-empty
    strings; PairsError `FILE:LINE[:COL]: reason` on the first problem. Needs no store or taxonomy, so the
    mitigate command checks the file before it opens the database."""
    path = Path(path)
    records = []
    # json_objects ends records at "\n" only: write_pairs leaves U+2028 and the other Unicode line breaks of a
    # model's answer unescaped (ensure_ascii=False)
    for number, record in json_objects(read_utf8(path, "pairs file", PairsError), path):
        if isinstance(record, str):
            raise PairsError(record)
        for name in REQUIRED_FIELDS:
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if name not in record else "empty or not a string"
                raise PairsError(f"{path}:{number}: field {name!r} is {problem} (a pair needs "
                                 f"{', '.join(REQUIRED_FIELDS)})")
        records.append((number, record))
    if not records:
        raise PairsError(f"{path}:1: no pairs in the file")
    return records


def read_pairs(path: str | Path, vocabulary: taxonomy.Taxonomy | None = None) -> PairSet:
    """A pairs file (JSONL, the layout of `export --format pairs`): every line an object with REQUIRED_FIELDS as
    non-empty strings, its language and group known to `vocabulary` (made canonical; default: the bundled
    taxonomy). A bad line raises PairsError `FILE:LINE: reason`; the file's missing optional fields are empty.
    Refusals whose chosen_model is `template` count as template pairs, others as from the file."""
    vocabulary = vocabulary or taxonomy.DEFAULT
    path = Path(path)
    records = []
    for number, record in pair_records(path):
        try:
            record["language"] = vocabulary.canonical_language(record["language"])
            record["group"] = vocabulary.canonical_group(record["group"])
        except taxonomy.VocabularyError as exc:
            raise PairsError(f"{path}:{number}: {exc}") from None
        records.append({**{name: "" for name in PAIR_FIELDS}, **record})
    if not records:
        raise PairsError(f"{path}:1: no pairs in the file")
    frame = pd.DataFrame(records)
    frame["chosen_source"] = np.where(frame["chosen_model"] == TEMPLATE_MODEL, "template", "file")
    return PairSet(frame, {"kind": "file", "path": str(path), "lines": len(records)})


def refusal_templates(path: str | Path = TEMPLATES_PATH) -> dict[str, list[tuple[str, str]]]:
    """The project's refusal templates per language: (template_id, text)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            record = json.loads(line)
            try:
                found.setdefault(record["language"], []).append((record["template_id"], record["text"]))
            except KeyError as exc:
                raise PairsError(f"{path}:{number}: field {exc.args[0]!r} is missing") from None
    return found


def _template_rows(complied: pd.DataFrame, templates: dict[str, list[tuple[str, str]]]) -> pd.DataFrame:
    """One template refusal per probe (picked by a hash of the probe id, so the same on every machine)."""
    probes = complied.drop_duplicates("probe_id")
    probes = probes[probes["language"].isin(list(templates))]
    rows = []
    for probe in probes.itertuples(index=False):
        options = templates[probe.language]
        index = int(hashlib.sha1(probe.probe_id.encode()).hexdigest(), 16) % len(options)
        template_id, text = options[index]
        rows.append({**probe._asdict(), "completion_id": f"template:{template_id}:{probe.probe_id}",
                     "model": TEMPLATE_MODEL, "completion": text, "label": taxonomy.REFUSED})
    return pd.DataFrame(rows, columns=complied.columns)


def pairs_from_run(store, run_id: str, judge: str, per_group: int | None = None, seed: int = 0,
                   chosen_from: str = "templates", groups: Collection[str] | None = None,
                   languages: Collection[str] | None = None,
                   templates: dict[str, list[tuple[str, str]]] | None = None) -> PairSet:
    """Balanced pairs from a stored run's jailbreaks (its complied attack answers), the refusal of each probe
    taken from the run, else (chosen_from "store" or "templates") another run's refusal of that probe, else
    ("templates") a template in the probe's language. `groups`, `languages`: only these get pairs (the trained
    groups; empty or None: all).
    PairsError when the run is missing, has no jailbreak, or no refusal can be found for any."""
    if chosen_from not in CHOSEN_FROM:
        raise PairsError(f"chosen answers from {chosen_from!r}: use one of {', '.join(CHOSEN_FROM)}")
    if store.run(run_id) is None:
        raise PairsError(f"{store.path}: no run {run_id!r} (runs: {', '.join(store.runs()['run_id']) or 'none'})")
    usable = _usable(store.judged(judge, {"run_id": [run_id], "kind": ["attack"], "language": list(languages or [])},
                                  with_text=True))
    if groups is not None:
        usable = usable[usable["group"].isin(list(groups))]
    complied = usable[usable["label"] == taxonomy.COMPLIED]
    if not len(complied):
        raise PairsError(f"{store.path}: run {run_id!r} has no complied attack answer judged by {judge!r}"
                         + (" in the trained groups" if groups is not None else "")
                         + ": nothing to train away (its model refused every attack it was asked)")
    in_run = usable[usable["label"] == taxonomy.REFUSED]
    refusals = [in_run.assign(chosen_source="run")]
    missing = set(complied["probe_id"]) - set(in_run["probe_id"])
    if missing and chosen_from in ("store", "templates"):
        elsewhere = _usable(store.judged(judge, {"kind": ["attack"], "language": sorted(set(complied["language"]))},
                                         with_text=True))
        elsewhere = elsewhere[(elsewhere["run_id"] != run_id) & (elsewhere["label"] == taxonomy.REFUSED)
                              & elsewhere["probe_id"].isin(missing)]
        refusals.append(elsewhere.assign(chosen_source="store"))
        missing -= set(elsewhere["probe_id"])
    if missing and chosen_from == "templates":
        pending = complied[complied["probe_id"].isin(missing)]
        refusals.append(_template_rows(pending, templates if templates is not None else refusal_templates())
                        .assign(chosen_source="template"))
    found = [frame for frame in refusals if len(frame)]
    if not found:
        allowed = {"run": "the run", "store": "the run or another model in the store",
                   "templates": "the run, the store or the refusal templates"}[chosen_from]
        raise PairsError(f"{store.path}: no refusal to pair with run {run_id!r}'s {len(complied)} jailbreaks: none "
                         f"in {allowed} for the same probes (judge {judge!r})"
                         + ("; allow the templates with --chosen-from templates" if chosen_from != "templates" else
                            f"; the templates cover only {', '.join(sorted(refusal_templates()))}"))
    chosen = pd.concat(found, ignore_index=True)
    # The first refusal source wins for each probe, so preference_pairs sees one refusal per probe.
    rank = chosen["chosen_source"].map({"run": 0, "store": 1, "template": 2})
    chosen = chosen.assign(rank=rank).sort_values(["rank", "completion_id"], kind="stable")
    chosen = chosen.drop_duplicates("probe_id").drop(columns="rank")
    frame = pd.concat([complied.assign(chosen_source=""), chosen], ignore_index=True)
    pairs, summary = preference_pairs(frame.drop(columns="chosen_source"), per_group=per_group, seed=seed)
    origin = dict(zip(chosen["completion_id"], chosen["chosen_source"]))
    pairs = pairs.assign(judge=judge, chosen_source=pairs["chosen_completion_id"].map(origin))
    return PairSet(pairs[[*PAIR_FIELDS, "chosen_source"]],
                   {"kind": "run", "run_id": run_id, "judge": judge, "chosen_from": chosen_from, **summary})


def _usable(frame: pd.DataFrame) -> pd.DataFrame:
    """Judged answers a pair can use: no error, refused or complied, a non-empty text."""
    return frame.loc[frame["error"].isna() & frame["label"].isin([taxonomy.REFUSED, taxonomy.COMPLIED])
                     & frame["completion"].fillna("").str.strip().ne("")]


def cap_per_group(pairs: pd.DataFrame, per_group: int | None) -> pd.DataFrame:
    """At most `per_group` pairs per (language, group), in the order given (a pairs file keeps its order)."""
    if per_group is None:
        return pairs.reset_index(drop=True)
    return pairs.groupby(["language", "group"], sort=False).head(max(per_group, 0)).reset_index(drop=True)


@dataclass(frozen=True)
class GroupSplit:
    """Which groups train and which are held out of training (group keys of the store's taxonomy)."""

    trained: tuple[str, ...]
    held_out: tuple[str, ...]


def split_groups(vocabulary: taxonomy.Taxonomy, available: Sequence[str], train_groups: Sequence[str] = (),
                 holdout_groups: Sequence[str] = (), seed: int = 0, holdout_share: float = 1 / 3) -> GroupSplit:
    """Trained and held-out groups. Given names are made canonical by the taxonomy (an unknown one is a
    VocabularyError naming it). With neither list, a seeded third of the `available` groups (those with
    jailbreaks to train on) is held out, so every default training has held-out groups to check against."""
    if train_groups and holdout_groups:
        raise PairsError("give --train-groups or --holdout-groups, not both")
    train = [vocabulary.canonical_group(g) for g in train_groups]
    held = [vocabulary.canonical_group(g) for g in holdout_groups]
    present = sorted(set(available))
    if train:
        lacking = [g for g in train if g not in present]
        if lacking:
            raise PairsError(f"--train-groups {', '.join(lacking)}: no pair to train on for "
                             f"{'it' if len(lacking) == 1 else 'them'} (groups with pairs: {', '.join(present)})")
        return GroupSplit(tuple(sorted(set(train))), tuple(g for g in present if g not in train))
    if not held:
        order = np.random.default_rng(seed).permutation(len(present))
        count = max(1, round(len(present) * holdout_share)) if len(present) > 1 else 0
        held = [present[i] for i in sorted(order[:count])]
    trained = tuple(g for g in present if g not in held)
    if not trained:
        raise PairsError(f"--holdout-groups leaves no group to train on (groups with pairs: {', '.join(present)})")
    return GroupSplit(trained, tuple(sorted(set(held))))
