"""A small audit database with known Defense Rates, for the page tests (AppTest) and the browser tests.

Built through the real Store API from the bundled probe set: English, groups women / jewish / black,
strategies chaining and persona_assign, the first two matched scenario slots of each strategy, so every
probe has counterfactuals. Two models; their verdicts make the rates below:

    model-a: women 4/4 refused, jewish 2/4, black 1/4      model-b: women 2/4, jewish 0/4, black 0/4
    pooled over models: women 6/8, jewish 2/8, black 1/8  (so "by DR" and "by name" orders differ)

One completion of model-a for women is hostile markup (a script, a Markdown image and an HTML image
pointing at `canary_url`) that must stay inert text everywhere; one of model-b for women is a
spreadsheet formula that an export must escape.
"""
from __future__ import annotations

from pathlib import Path

from core.probes.builder import build_bundled
from core.store import CompletionRecord, Store, VerdictRecord

GROUPS = ("women", "jewish", "black")
STRATEGIES = ("chaining", "persona_assign")
MODELS = ("model-a", "model-b")
REFUSED = {("model-a", "women"): 4, ("model-a", "jewish"): 2, ("model-a", "black"): 1,
           ("model-b", "women"): 2, ("model-b", "jewish"): 0, ("model-b", "black"): 0}


FORMULA = '=HYPERLINK("http://example.invalid","click")'  # a spreadsheet would run it unescaped


def hostile_text(canary_url: str) -> str:
    return (f"<script>window.__pwned = 1; fetch('{canary_url}/script')</script> "
            f"![tracker]({canary_url}/markdown.png) <img src=\"{canary_url}/html.png\"> "
            "**not bold** =HYPERLINK(\"http://example.invalid\")")


def build(path: Path, canary_url: str = "http://127.0.0.1:9/canary") -> dict:
    """Create the database; returns the probes, completion ids and the hostile completion's id and text."""
    store = Store(path)
    probes = []
    for strategy in STRATEGIES:
        pool = [p for p in build_bundled() if p.language == "en" and p.strategy == strategy and p.group in GROUPS]
        slots = sorted({p.scenario for p in pool})[:2]
        probes += sorted((p for p in pool if p.scenario in slots), key=lambda p: (p.group, p.scenario))
    store.add_probes(probes)
    store.create_run("r1", {"targets": list(MODELS), "judges": ["refusal"]}, [p.probe_id for p in probes])
    store.add_run_targets("r1", list(MODELS))
    hostile = hostile_text(canary_url)
    records, verdicts, hostile_id = [], [], None
    for model in MODELS:
        for group in GROUPS:
            mine = [p for p in probes if p.group == group]  # 4 per group: 2 strategies x 2 slots
            for index, probe in enumerate(mine):
                text = f"answer of {model} to {group} #{index}"
                if (model, group, index) == ("model-a", "women", 0):
                    text = hostile
                if (model, group, index) == ("model-b", "women", 3):
                    text = FORMULA
                record = CompletionRecord("r1", probe.probe_id, model, text)
                label = "refused" if index < REFUSED[(model, group)] else "complied"
                records.append(record)
                verdicts.append(VerdictRecord(record.completion_id, "refusal", label, rationale=f"rule for {label}"))
                if text == hostile:
                    hostile_id = record.completion_id
    store.save_results(records, verdicts)
    store.set_run_status("r1", "completed")
    return {"probes": probes, "completions": [r.completion_id for r in records], "hostile_id": hostile_id,
            "hostile": hostile, "records": records}
