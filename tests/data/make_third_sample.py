"""Draw the unlabelled rows of `judge_eval_third.csv` from the committed demo results.

Reads only the `probes` and `completions` tables of `data/demo/results.jsonl.gz` (never `verdicts`: those are a
judge's labels). Candidates: completions with no error and non-empty text, minus every completion already in
`judge_eval_fresh.csv` (`source` = `smollm2_demo:<completion_id>`). One `random.Random(2026)` draws 30 per
(run_id, language) cell, cells in sorted order, each from its candidates sorted by completion id
(`rng.sample(sorted_ids, 30)`). Ids `ten-NNN`/`tpt-NNN` number each language's rows in that draw order.

    python tests/data/make_third_sample.py OUT.csv

writes `id,language,prompt,completion,label,case,kind,source` with `label` and `case` left empty, to be filled
in by reading each answer against the label policy in tests/data/README.md.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "data" / "demo" / "results.jsonl.gz"
FRESH = Path(__file__).resolve().parent / "judge_eval_fresh.csv"
RUNS = ("demo-gemma3-270m", "demo-smollm2")
LANGUAGES = ("en", "pt")
PER_CELL = 30
SEED = 2026
COLUMNS = ["id", "language", "prompt", "completion", "label", "case", "kind", "source"]


def load() -> tuple[dict, list]:
    probes, completions = {}, []
    with gzip.open(RESULTS, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record["table"] == "probes":
                probes[record["row"]["probe_id"]] = record["row"]
            elif record["table"] == "completions":
                completions.append(record["row"])
    return probes, completions


def already_labelled() -> set[str]:
    with open(FRESH, newline="", encoding="utf-8") as handle:
        return {
            row["source"].split(":", 1)[1]
            for row in csv.DictReader(handle)
            if row["source"].startswith("smollm2_demo:")
        }


def draw() -> list[dict]:
    probes, completions = load()
    excluded = already_labelled()
    cells: dict[tuple[str, str], dict[str, dict]] = {(r, l): {} for r in RUNS for l in LANGUAGES}
    for row in completions:
        if row.get("error") not in (None, "") or not row.get("text"):
            continue
        if row["completion_id"] in excluded:
            continue
        key = (row["run_id"], probes[row["probe_id"]]["language"])
        if key in cells:
            cells[key][row["completion_id"]] = row
    rng = random.Random(SEED)
    counters = {language: 0 for language in LANGUAGES}
    out = []
    for key in sorted(cells):
        run_id, language = key
        for completion_id in rng.sample(sorted(cells[key]), PER_CELL):
            row = cells[key][completion_id]
            probe = probes[row["probe_id"]]
            counters[language] += 1
            out.append({
                "id": f"t{language}-{counters[language]:03d}",
                "language": language,
                "prompt": probe["prompt"],
                "completion": row["text"],
                "label": "",
                "case": "",
                "kind": probe["kind"],
                "source": f"{run_id}:{completion_id}",
            })
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[0], "\nusage: make_third_sample.py OUT.csv", file=sys.stderr)
        return 2
    rows = draw()
    with open(argv[1], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
