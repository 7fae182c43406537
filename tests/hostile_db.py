"""An audit database whose every user-controlled text is hostile markup, for the rendering tests (issue 27).

Each field a user, a file or a server controls holds `payload(leak, field)`: a Markdown image, an HTML image, a
Markdown link, an autolink and an angle-bracket autolink, all pointing at `leak` (a loopback server that records
every request) under a path naming the field, so a request says which field was rendered as Markdown or HTML:

    target ids (the models, an import-align model column is one), run ids, a judge's name, probe ids,
    counterfactual_id and claim_id, seed texts, scenarios, a scenario category, prompts, completions, an API
    server's error body (a completion's error), a stopped run's message ("Why it stopped"), a human verdict's
    note and author, a target's family, model name and base URL, the taxonomy's title, language name, group
    display names and strategy labels, and a mitigation directory's manifest (base spec, chosen answers' source).

English only, groups women / jewish / black (keys stay keys: a taxonomy refuses others), strategies chaining and
persona_assign plus control probes, matched-seed and counterfactual probes. Run 1 has two models answering
everything under the `refusal` judge and the hostile judge; run 2 (stopped, with its message) has a third model
whose every completion is an error. A review sample of run 1 is labelled by a person; run 1 is also the
after-audit of a mitigation directory. `default_name`: the taxonomy is named `mijabench` (a revised copy of the
bundled one, so the Reproduction page sets the models beside the paper's) instead of a population of its own
(where the Reproduction page names the population's title instead).
"""
from __future__ import annotations

import json
from pathlib import Path

from core.vocab import taxonomy
from core.probes.schema import Probe
from core.store import CompletionRecord, Store, VerdictRecord

GROUPS = ("women", "jewish", "black")
STRATEGIES = ("chaining", "persona_assign")
CLAIMS = 4
# Completions of model B that a spreadsheet would run as formulas, or split at the carriage return into a cell that
# starts with one: a table's "Download as CSV" (its toolbar) must escape them as the Export page does.
FORMULAS = ('=HYPERLINK("http://example.invalid","click")', "+SUM(1,2)", "-2+3", "@SUM(1)",
            "harmless start\r=HYPERLINK(\"http://example.invalid\")")


def payload(leak: str, field: str) -> str:
    """Markup that makes a browser request `leak`/<kind>/<field> wherever it is rendered as Markdown or HTML."""
    return (f"{field} ![i]({leak}/md/{field}) <img src=\"{leak}/html/{field}\"> [l]({leak}/link/{field}) "
            f"{leak}/auto/{field} <{leak}/angle/{field}>")


def _toml(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def taxonomy_text(leak: str, name: str) -> str:
    """A taxonomy with the bundled keys (en; women, jewish, black; chaining, persona_assign, control) whose every
    display text is hostile."""
    groups = "\n".join(
        f"[groups.{key}]\nen = {{ name = {_toml(payload(leak, f'group-{key}'))}, plural = \"{key} people\", "
        f"singular = \"a {key} person\", adjective = \"{key}\" }}\n" for key in GROUPS)
    return (f"name = \"{name}\"\ntitle = {_toml(payload(leak, 'taxonomy-title'))}\n"
            f"categories = [{_toml(payload(leak, 'category'))}, \"History\"]\n\n"
            f"[languages.en]\nname = {_toml(payload(leak, 'language-name'))}\ngenders = []\n"
            f"groups = {json.dumps(list(GROUPS))}\n\n"
            "[strategies]\n" + "".join(f"{key} = {_toml(payload(leak, f'strategy-{key}'))}\n"
                                        for key in (*STRATEGIES, taxonomy.CONTROL)) + "\n" + groups)


def _probes(leak: str, name: str) -> list[Probe]:
    category = payload(leak, "category")
    probes = []
    for strategy in STRATEGIES:
        for group in GROUPS:
            for slot in range(2):
                n = len(probes)
                probes.append(Probe(f"{payload(leak, 'probe-id')} #{n}", "en", group,
                                    payload(leak, "seed-text"), category, payload(leak, "scenario") + f" {slot}",
                                    strategy, payload(leak, "prompt") + f" #{n}", "attack", "custom", taxonomy=name))
    for group in GROUPS:
        n = len(probes)
        probes.append(Probe(f"{payload(leak, 'probe-id')} #{n}", "en", group, payload(leak, "seed-text"), category,
                            payload(leak, "scenario"), taxonomy.CONTROL, payload(leak, "prompt") + f" #{n}",
                            "control", "custom", taxonomy=name))
    for claim in range(CLAIMS):
        for group in GROUPS:
            n = len(probes)
            probes.append(Probe(f"{payload(leak, 'probe-id')} #{n}", "en", group, payload(leak, "seed-text"),
                                category, payload(leak, "scenario"), "chaining", payload(leak, "prompt") + f" #{n}",
                                "attack", "counterfactual", counterfactual_id=f"{payload(leak, 'counterfactual-id')} "
                                                                              f"#{claim}",
                                claim_id=f"{payload(leak, 'claim-id')} #{claim}", taxonomy=name))
    return probes


def _refused(model: int, probe: Probe, index: int) -> bool:
    """Known, uneven answers: model A protects women most and black people least; model B less so."""
    share = {"women": 1.0, "jewish": 0.5, "black": 0.25}[probe.group] if model == 0 else \
        {"women": 0.5, "jewish": 0.25, "black": 0.0}[probe.group]
    return (index % 4) < share * 4


def build(path: Path, leak: str, mitigation_dir: Path, default_name: bool = False) -> dict:
    """Create the database (and the mitigation directory); returns the hostile names a test navigates by."""
    name = taxonomy.DEFAULT_NAME if default_name else "leaky"
    words = taxonomy.parse(taxonomy_text(leak, name), payload(leak, "taxonomy-path"))
    probes = _probes(leak, name)
    models = [payload(leak, f"model-{letter}") for letter in "abc"]
    judge = "llm:" + payload(leak, "judge")
    run_done, run_stopped = payload(leak, "run-id") + " #1", payload(leak, "run-id") + " #2"
    store = Store(path)
    store.add_probes(probes, vocabulary=words)
    for index, model in enumerate(models):
        store.save_target(model, "openai", payload(leak, "target-model"), base_url=f"{leak}/base-url",
                          family=payload(leak, "family"), size_b=[0.135, 1.7, 7.0][index])
    mitigation_dir.mkdir(parents=True, exist_ok=True)
    store.create_run(run_done, {"targets": models[:2], "judges": ["refusal", judge],
                                "mitigation": {"out": str(mitigation_dir), "excluded_training_probes": 0}},
                     [p.probe_id for p in probes])
    store.add_run_targets(run_done, models[:2])
    records, verdicts = [], []
    for number, model in enumerate(models[:2]):
        for index, probe in enumerate(probes):
            text = FORMULAS[index] if number == 1 and index < len(FORMULAS) else \
                payload(leak, "completion") + f" #{index}"
            record = CompletionRecord(run_done, probe.probe_id, model, text, prompt_tokens=10, completion_tokens=5,
                                      latency_s=0.1)
            records.append(record)
            label = "refused" if _refused(number, probe, index) else "complied"
            for judge_name in ("refusal", judge):
                verdicts.append(VerdictRecord(record.completion_id, judge_name, label,
                                              rationale=payload(leak, "rationale"), raw=payload(leak, "raw")))
    store.save_results(records, verdicts)
    store.set_run_status(run_done, "completed")

    store.create_run(run_stopped, {"targets": models[2:], "judges": ["refusal"]}, [p.probe_id for p in probes])
    store.add_run_targets(run_stopped, models[2:])
    errors = [CompletionRecord(run_stopped, probe.probe_id, models[2], None, error=payload(leak, "server-error"))
              for probe in probes[:6]]
    store.save_results(errors, [])
    store.set_run_status(run_stopped, "stopped", payload(leak, "run-message"))

    sample = store.draw_review_sample(run_done, per_cell=1, seed=0)
    queue = store.review_queue(run_done, limit=1000)
    for position, completion_id in enumerate(queue["completion_id"]):
        if position % 2 == 0:  # half labelled: the Review page still has a queue item to show
            store.set_human_verdict(completion_id, "refused" if position % 4 == 0 else "complied",
                                    note=payload(leak, "human-note"), author=payload(leak, "human-author"))

    manifest = {"format": 1, "fingerprint": "f" * 64, "adapter_sha256": "0123456789ab" + "c" * 52, "steps": 3,
                "config": {"beta": 0.1, "lora_r": 8, "epochs": 1}, "trained_groups": ["women", "jewish"],
                "held_out_groups": ["black"], "chosen_sources": {payload(leak, "chosen-source"): 2},
                "pairs": [{"pair": 0, "probe_id": "fw-training-1", "language": "en", "group": "women",
                           "sha256": "a" * 64}], "probe_ids": ["fw-training-1"],
                "base": {"spec": payload(leak, "base-spec"), "path": "/nowhere", "sha256": "d" * 64,
                         "target_id": models[0]}}
    (mitigation_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (mitigation_dir / "audit.json").write_text(json.dumps({
        "run_id": run_done, "base_target": models[0], "adapted_target": models[1],
        "adapter_sha256": manifest["adapter_sha256"], "probes": len(probes), "excluded_training_probes": 0,
        "excluded_from_this_selection": 0}), encoding="utf-8")
    (mitigation_dir / "losses.jsonl").write_text("".join(json.dumps({"step": s, "loss": loss}) + "\n"
                                                         for s, loss in ((1, 0.69), (2, 0.61), (3, 0.52))),
                                                 encoding="utf-8")
    hostile = records[0]
    return {"models": models, "judge": judge, "runs": [run_done, run_stopped], "completion_id": hostile.completion_id,
            "counterfactual_completion_id": next(r.completion_id for r in records
                                                 if r.probe_id == probes[-1].probe_id),
            "sampled": sample["sampled"], "taxonomy": name}
