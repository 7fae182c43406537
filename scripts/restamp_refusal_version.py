"""Stamp the current `refusal` version on the committed demo verdicts and the shipped learned judge's file,
after proving that version gives the same answers.

Why: RefusalJudge.version hashes the rule files, the engine's code and the taxonomy's group names, so a
refactor that changes no verdict (rules moved into data files, one accent folding) still changes it. The demo
verdicts would then carry an old version (`judge --rejudge` would replace all of them with identical ones) and
the learned judge would refuse to load (it checks the version its weights were fitted on). This script
re-judges every demo completion and stamps the new version only if every label and rationale is identical;
the learned file is stamped only if tests/judges/test_refusal_golden.py passes (its signals are the golden ones).
The shipped encoder judge records the `refusal` version it fell back to and its n-gram partner's sha256, so it is
re-written with both (its tensors unchanged). Otherwise: `judge --rejudge` the demo (see the Makefile's demo-results) and refit the learned judge.

Usage: python scripts/restamp_refusal_version.py  (then run tests/integration/test_demo.py and tests/judges/test_learned.py)
"""
from __future__ import annotations

import gzip
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

from core.judges.encoder import read_encoder, sha256_bytes, write_encoder
from core.judges.learned import SHIPPED_MODEL
from core.judges.refusal import RefusalJudge, classify

DEMO = ROOT / "data" / "demo" / "results.jsonl.gz"
ENCODER = ROOT / "data" / "judges" / "encoder-minilm.safetensors"


def restamp_demo(version: str) -> int:
    lines = gzip.decompress(DEMO.read_bytes()).decode("utf-8").splitlines(keepends=True)
    records = [json.loads(line) for line in lines]
    probes = {r["row"]["probe_id"]: r["row"] for r in records if r["table"] == "probes"}
    texts = {r["row"]["completion_id"]: r["row"] for r in records if r["table"] == "completions"}
    out, stamped = [], 0
    for line, record in zip(lines, records):
        row = record["row"]
        if record["table"] == "verdicts" and row["judge"] == "refusal" and row["judge_version"] != version:
            completion = texts[row["completion_id"]]
            probe = probes[completion["probe_id"]]
            verdict = classify(completion["text"] or "", probe["language"], probe["prompt"], probe["kind"])
            if (verdict.label, verdict.rationale) != (row["label"], row["rationale"]):
                sys.exit(f"{row['completion_id']}: now {verdict.label} ({verdict.rationale}), stored {row['label']} "
                         f"({row['rationale']}): the judge changed; rejudge the demo instead")
            old = f'"judge_version": "{row["judge_version"]}"'
            assert line.count(old) == 1
            line = line.replace(old, f'"judge_version": "{version}"')
            stamped += 1
        out.append(line)
    if stamped:
        DEMO.write_bytes(gzip.compress("".join(out).encode("utf-8"), compresslevel=9, mtime=0))
    return stamped


def restamp_learned(version: str) -> bool:
    text = SHIPPED_MODEL.read_text(encoding="utf-8")
    spec = json.loads(text)
    if spec["refusal_version"] == version:
        return False
    golden = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/judges/test_refusal_golden.py",  # not the stamp check
                             "-k", "not name_the_current_version"], cwd=ROOT)
    if golden.returncode != 0:
        sys.exit("tests/judges/test_refusal_golden.py fails: the rules' signals changed; refit the learned judge")
    old = f'"refusal_version": "{spec["refusal_version"]}"'
    assert text.count(old) == 1
    SHIPPED_MODEL.write_text(text.replace(old, f'"refusal_version": "{version}"'), encoding="utf-8")
    return True


def restamp_encoder(version: str) -> bool:
    """Stamp the refusal version and the (restamped) n-gram partner's sha256 on the shipped encoder judge."""
    meta, tensors, _ = read_encoder(ENCODER)
    stamped = {**meta, "refusal_version": version}
    if meta.get("partner"):
        stamped["partner"] = {**meta["partner"], "sha256": sha256_bytes(SHIPPED_MODEL.read_bytes())}
    if stamped == meta:
        return False
    write_encoder(ENCODER, tensors, stamped)
    return True


if __name__ == "__main__":
    current = RefusalJudge.version
    print(f"refusal version {current}: {restamp_demo(current)} demo verdicts stamped; learned file "
          f"{'stamped' if restamp_learned(current) else 'already current'}; encoder file "
          f"{'stamped' if restamp_encoder(current) else 'already current'}")
