"""Before and after: the base model and its adapter audited on the same probes, then compared paired.

Both targets answer one run, so every probe has the two answers the paired comparison needs (core/views/
compare.py: per-group DR change with Newcombe's CI and McNemar's test, the change of the selective-safety gap,
over-refusal on control probes). On top of it the groups are pooled by what training did to them: trained
groups against held-out groups, each with its paired CI. A fix that works only where it was trained is the
selectivity the audit measures, moved; the held-out rows say whether it generalised.

Honest by default: the probes whose answers became training pairs are left out of the after-audit (a model
that memorised its training prompts would look fixed on exactly those), so the audit draws its per-cell sample
from the other probes; OUT/audit.json records the run, the two target ids and how many probes were excluded.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.mitigate.train import MANIFEST, MitigateError, read_json, read_losses
from core.stats.comparison import cell_changes
from core.store import Store
from core.views.compare import RunComparison, Side, compute

AUDIT = "audit.json"
AUDIT_JUDGE = "refusal"  # the after-audit's judge: offline, the same for both sides
SPLITS = ("trained", "held out")
SPLIT_COLUMNS: tuple[str, ...] = ("language", "split", "kind", "groups", "pairs", "base_dr", "cand_dr", "change",
                                  "ci_low", "ci_high", "p_value", "p_adjusted", "significant")


def manifest_of(out: str | Path) -> dict:
    """A finished training's manifest, or MitigateError saying what the directory lacks."""
    manifest = read_json(Path(out) / MANIFEST)
    if manifest is None:
        raise MitigateError(f"{out}: no {MANIFEST} (not a finished `python -m core mitigate` output)")
    return manifest


def adapted_spec(out: str | Path) -> str:
    """The target spec the adapter is audited as."""
    return f"local:{Path(out).resolve()}"


def plan_audit(store: Store, out: str | Path, *, languages: Sequence[str] = (), per_cell: int | None = 3,
               seed: int = 0, judges: Sequence[str] = (AUDIT_JUDGE,), max_new_tokens: int = 64,
               batch_size: int = 16) -> str:
    """The run where the base and the adapted model answer the same probes, minus the training probes (left out
    before the per-cell sample is drawn, so the cells stay full): planned once, its id kept in OUT/audit.json so
    a second call returns it instead of planning another (unless the adapter changed since). Returns the run id."""
    from core.probes.selection import Selection
    from core.run.request import RunRequest, candidate_probes
    from core.run.runner import build_run, plan_run

    out = Path(out)
    manifest = manifest_of(out)
    recorded = read_json(out / AUDIT)
    if recorded and store.run(recorded["run_id"]) is not None and \
            recorded.get("adapter_sha256") == manifest["adapter_sha256"]:
        return recorded["run_id"]
    training = set(manifest["probe_ids"])
    chosen = list(languages) or sorted({pair["language"] for pair in manifest["pairs"]})
    request = RunRequest(targets=(manifest["base"]["spec"], adapted_spec(out)), judges=tuple(judges),
                         selection=Selection(languages=tuple(chosen), per_cell=per_cell, seed=seed),
                         max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed)
    probes = candidate_probes(store, request, exclude=training)
    if not probes:
        raise MitigateError(f"no probe left for the after-audit in {', '.join(chosen)} once the {len(training)} "
                            "training probes are excluded")
    config = {**request.config(), "mitigation": {"out": str(out.resolve()), "excluded_training_probes": len(training)}}
    targets, _ = build_run(store, {**config, "targets": list(request.targets), "judges": list(judges)})
    run_id = plan_run(store, probes, list(request.targets), list(judges), config)
    would_have = len(training & {p.probe_id for p in candidate_probes(store, request)})
    (out / AUDIT).write_text(json.dumps({
        "run_id": run_id, "base_target": targets[0].info.target_id, "adapted_target": targets[1].info.target_id,
        "adapter_sha256": manifest["adapter_sha256"], "probes": len(probes), "excluded_training_probes": len(training),
        "excluded_from_this_selection": would_have, "per_cell": per_cell, "languages": chosen,
        "judges": list(judges)}, indent=1) + "\n", encoding="utf-8")
    return run_id


def run_before_after(store: Store, out: str | Path, on_progress: Callable | None = None,
                     cancel: threading.Event | None = None, **plan: object):
    """Plan (plan_audit, with `plan`'s options) or resume the before/after run and execute it; returns
    core.run.runner's RunResult (a stopped run resumes with the same call)."""
    from core.run.runner import build_run, execute_run

    run_id = plan_audit(store, out, **plan)  # type: ignore[arg-type]
    run = store.run(run_id)
    targets, judges = build_run(store, run["config"])
    return execute_run(store, run_id, targets, judges, batch_size=run["config"]["generation"]["batch_size"],
                       on_progress=on_progress, cancel=cancel)


@dataclass
class BeforeAfter:
    """The mitigation's result: the paired comparison of base and adapted model (every group, gaps, over-
    refusal), the same pooled by trained and held-out groups (`by_split`, SPLIT_COLUMNS), and the training."""

    comparison: RunComparison
    by_split: pd.DataFrame
    trained: tuple[str, ...]
    held_out: tuple[str, ...]
    audit: dict
    manifest: dict
    losses: list[dict] = field(default_factory=list)

    @property
    def over_refusal(self) -> pd.DataFrame:
        """Per language: the share of control probes refused before (base_dr) and after (cand_dr), with the change."""
        return self.comparison.result.controls

    @property
    def gaps(self) -> pd.DataFrame:
        return self.comparison.result.gaps

    def honesty_note(self) -> str:
        """What the page and the report say about the probes the after-audit did not use."""
        return (f"The {self.audit.get('excluded_training_probes', 0):,} probes used for training pairs are excluded "
                f"from this audit ({self.audit.get('excluded_from_this_selection', 0):,} of them would otherwise "
                f"have been drawn); held-out groups ({', '.join(self.held_out) or 'none'}) gave no training pair.")

    def records(self) -> dict:
        """Plain JSON-ready values (`mitigate --json`)."""
        def rows(frame: pd.DataFrame) -> list[dict]:
            return json.loads(frame.to_json(orient="records"))
        return {"run_id": self.audit.get("run_id"), "base": self.comparison.base.label,
                "adapted": self.comparison.candidate.label, "judge": self.comparison.judge,
                "trained_groups": list(self.trained), "held_out_groups": list(self.held_out),
                "by_split": rows(self.by_split), "gaps": rows(self.gaps), "over_refusal": rows(self.over_refusal),
                "groups": rows(self.comparison.result.cells), "left_out": self.comparison.left_out,
                "honesty": self.honesty_note()}

    def text(self) -> str:
        """What the CLI prints: DR change by trained / held-out group, the gap change, over-refusal."""
        fmt = {"float_format": lambda v: f"{v:.3f}"}
        split = self.by_split[self.by_split["kind"] == "attack"]
        lines = [f"{self.comparison.candidate.label} against {self.comparison.base.label} (judge "
                 f"{self.comparison.judge}); {self.honesty_note()}",
                 "Defense Rate on attack probes, pooled by trained and held-out groups (paired 95% CI):",
                 split[[c for c in SPLIT_COLUMNS if c not in ("kind", "significant")]].to_string(index=False, **fmt),
                 "Selective-safety gap (max - min group DR):",
                 self.gaps[["language", "groups", "base_gap", "cand_gap", "change", "ci_low", "ci_high",
                            "p_adjusted"]].to_string(index=False, **fmt),
                 "Over-refusal (control probes refused):",
                 self.over_refusal[["language", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                                    "p_adjusted"]].to_string(index=False, **fmt)]
        return "\n".join(lines)


def split_changes(counts: pd.DataFrame, trained: Sequence[str], held_out: Sequence[str], correction: str = "holm",
                  alpha: float = 0.05) -> pd.DataFrame:
    """Paired DR changes pooled per language x split (trained / held out) x kind, from per-group 2x2 counts
    (Store.paired_counts by language, group, kind); groups in neither list are left out. `groups` counts the
    groups pooled in each row."""
    split = np.where(counts["group"].isin(list(trained)), SPLITS[0],
                     np.where(counts["group"].isin(list(held_out)), SPLITS[1], ""))
    tagged = counts.assign(split=split)
    tagged = tagged[tagged["split"] != ""]
    if not len(tagged):
        return pd.DataFrame(columns=list(SPLIT_COLUMNS))
    keys = ["language", "split", "kind"]
    out = cell_changes(tagged, keys, correction, alpha)
    groups = tagged.groupby(keys, observed=True)["group"].nunique().rename("groups").reset_index()
    return out.merge(groups, on=keys)[list(SPLIT_COLUMNS)]


def before_after(store: Store, out: str | Path, judge: str = AUDIT_JUDGE, resamples: int = 2000,
                 seed: int = 0) -> BeforeAfter:
    """The result of a mitigation whose after-audit (OUT/audit.json) is stored: reads only."""
    out = Path(out)
    manifest = manifest_of(out)
    audit = read_json(out / AUDIT)
    if audit is None:
        raise MitigateError(f"{out}: no after-audit yet; run `python -m core mitigate --out {out} --audit`")
    base, adapted = Side(audit["run_id"], audit["base_target"]), Side(audit["run_id"], audit["adapted_target"])
    compared = compute(store, base, adapted, judge, resamples=resamples, seed=seed)
    counts, _ = store.paired_counts(base.key, adapted.key, judge, by=["language", "group", "kind"])
    trained, held = tuple(manifest["trained_groups"]), tuple(manifest["held_out_groups"])
    return BeforeAfter(compared, split_changes(counts, trained, held), trained, held, audit, manifest,
                       read_losses(out))


def known_mitigations(store: Store) -> list[str]:
    """The mitigation directories whose after-audit runs this store holds (newest run first), for a page to offer."""
    found: list[str] = []
    for run_id in store.runs()["run_id"]:
        out = ((store.run(run_id) or {}).get("config") or {}).get("mitigation", {}).get("out")
        if out and out not in found and (Path(out) / MANIFEST).exists():
            found.append(out)
    return found
