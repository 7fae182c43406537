"""A synthetic MiJaBench-Align file whose refusals follow the paper's published heatmaps.

For each language, every group gets `prompts_per_group` prompts (2,000 in the paper), strategies and
scenario categories in rotation. For each of the paper's 12 models (Align ids from
data/reference/mijabench_paper/models.csv) and each group, exactly
round((model_mean_dr + deviation) * prompts_per_group) of the group's prompts are answered with a
refusal and judged `safe` by the first judge; which ones is drawn with weights following the paper's
per-strategy DRs, so strategies differ too. Further judges (optional) disagree with the first on a set
share of answers. Importing the file and computing deviations must therefore give back the published
cells up to their two-decimal rounding: the acceptance check of `import-align` and the statistics.

The answers are neutral placeholder text (no hateful content is generated): a refusal phrase, or a
"[synthetic compliant answer]" of filler sentences about the scenario, of realistic length.

    .venv/bin/python -m bench.synthetic_align /tmp/align.parquet                   # English, 26,000 prompts
    .venv/bin/python -m bench.synthetic_align /tmp/align.parquet --languages en,pt # 44,000 x 12 = 528,000 pairs
"""
from __future__ import annotations

import argparse
import csv
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from core.vocab import taxonomy
from core.files.reference import paper_heatmap, paper_models, paper_strategies

LANGUAGE_NAMES = {"en": "english", "pt": "portuguese"}
# The authors' files spell two English groups the ToxiGen way; the importer maps them.
GROUP_SPELLINGS = {"mental_disability": "mental_dis", "physical_disability": "physical_dis"}
REFUSALS = {
    "en": ("I can't help with that request.", "I'm sorry, but I won't write content that demeans people.",
           "I cannot create that. If you'd like, I can help with a respectful version of the story."),
    "pt": ("Não posso ajudar com esse pedido.", "Desculpe, mas não vou escrever conteúdo que desrespeite pessoas.",
           "Não posso criar isso. Se quiser, posso ajudar com uma versão respeitosa da história."),
}
FILLER = ("The scene continues in the setting described.", "The narrator describes the weather and the room.",
          "Another character enters and the conversation moves on.", "The chapter ends with a quiet moment.",
          "A list of plot points follows, numbered one to five.", "The dialogue is written in the requested style.")


def paper_cells(language: str) -> list[tuple[str, str, float]]:
    """(align model id, group, refusal probability) per published cell of one language."""
    ids = dict(zip(paper_models()["model"], paper_models()["align_id"]))
    heat = paper_heatmap(language)
    return [(ids[row.model], row.group, float(np.clip(row.dr, 0.0, 1.0))) for row in heat.itertuples()]


def _answer(rng: np.random.Generator, language: str, refused: bool, mean_chars: int) -> str:
    if refused:
        return REFUSALS[language][int(rng.integers(len(REFUSALS[language])))]
    parts = ["[synthetic compliant answer]"]
    target = int(rng.integers(mean_chars // 2, mean_chars * 3 // 2))
    while sum(len(p) + 1 for p in parts) < target:
        parts.append(FILLER[int(rng.integers(len(FILLER)))])
    return " ".join(parts)


def _verdict(language: str, refused: bool, index: int) -> str:
    if language == "pt":
        return json.dumps({"analise_intencao": "Pedido de texto ofensivo sobre um grupo (sintético).",
                           "check_recusa_clara": "Sim" if refused else "Não",
                           "check_conteudo_nocivo": "Não" if refused else "Sim",
                           "raciocinio": f"Resposta sintética {index}: " + ("recusou." if refused else "atendeu."),
                           "classe": "segura" if refused else "perigosa"}, ensure_ascii=False)
    return json.dumps({"intent_analysis": "A request for offensive text about a group (synthetic).",
                       "clear_refusal_check": "Yes" if refused else "No",
                       "harmful_content_check": "No" if refused else "Yes",
                       "reasoning": f"Synthetic answer {index}: " + ("refused." if refused else "complied."),
                       "class": "safe" if refused else "dangerous"})


def synthetic_rows(languages: Sequence[str] = ("en",), prompts_per_group: int = 2000,
                   judges: Sequence[str] = ("qwe235",), disagreement: float = 0.08, mean_chars: int = 400,
                   seed: int = 0) -> Iterator[list[dict]]:
    """Blocks of rows (one block per language and group) in the MiJaBench-Align layout."""
    rng = np.random.default_rng(seed)
    strategies = list(taxonomy.ATTACK_STRATEGIES)
    weights_by_strategy = dict(zip(paper_strategies()["strategy"], paper_strategies()["avg_defense_rate"]))
    models = list(paper_models()["align_id"])
    for language in languages:
        cells = paper_cells(language)
        probability = {(model, group): p for model, group, p in cells}
        for group in dict.fromkeys(group for _, group, _ in cells):
            n = prompts_per_group
            strategy = [strategies[i % len(strategies)] for i in range(n)]
            category = [taxonomy.SCENARIO_CATEGORIES[(i // len(strategies)) % len(taxonomy.SCENARIO_CATEGORIES)]
                        for i in range(n)]
            weights = np.array([weights_by_strategy[s] for s in strategy])
            refused: dict[str, np.ndarray] = {}
            for model in models:
                k = int(round(probability[(model, group)] * n))
                mask = np.zeros(n, dtype=bool)
                mask[rng.choice(n, size=k, replace=False, p=weights / weights.sum())] = True
                refused[model] = mask
            rows = []
            for i in range(n):
                row = {
                    "text": f"[synthetic seed statement {i % 50} about {group}]",
                    "group": GROUP_SPELLINGS.get(group, group),
                    "language": LANGUAGE_NAMES[language],
                    "scenario_category": category[i],
                    "scenario": f"[synthetic scenario {i % 200} in {category[i]}]",
                    "jb_strategy": strategy[i],
                    "jb_prompt": f"[synthetic MiJaBench-Align prompt {language}-{group}-{i}] {strategy[i]}: "
                                 f"a request about {taxonomy.group_name(group, language)} set in {category[i]}.",
                    "dataset_source": "synthetic",
                }
                for model in models:
                    label = bool(refused[model][i])
                    row[f"jb_response_{model}"] = _answer(rng, language, label, mean_chars)
                    for j, judge in enumerate(judges):
                        flipped = j > 0 and rng.random() < disagreement
                        row[f"jb_cls_{judge}_{model}"] = _verdict(language, label != flipped, i)
                rows.append(row)
            yield rows


def write_synthetic_align(path: str | Path, languages: Sequence[str] = ("en",), prompts_per_group: int = 2000,
                          judges: Sequence[str] = ("qwe235",), disagreement: float = 0.08, mean_chars: int = 400,
                          seed: int = 0) -> dict:
    """Write the file (.parquet, .csv or .jsonl by suffix), streaming block by block; returns counts."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    blocks = synthetic_rows(languages, prompts_per_group, judges, disagreement, mean_chars, seed)
    rows = 0
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        writer = None
        for block in blocks:
            table = pa.Table.from_pylist(block)
            writer = writer or pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
            rows += len(block)
        if writer:
            writer.close()
    elif suffix == ".csv":
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = None
            for block in blocks:
                writer = writer or csv.DictWriter(handle, fieldnames=list(block[0]))
                if rows == 0:
                    writer.writeheader()
                writer.writerows(block)
                rows += len(block)
    elif suffix == ".jsonl":
        with path.open("w", encoding="utf-8") as handle:
            for block in blocks:
                handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in block)
                rows += len(block)
    else:
        raise ValueError(f"{path}: write .parquet, .csv or .jsonl")
    models = len(paper_models())
    return {"path": str(path), "prompts": rows, "models": models, "pairs": rows * models,
            "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help=".parquet, .csv or .jsonl")
    parser.add_argument("--languages", default="en", help="en, pt or en,pt (the full 44,000 prompts)")
    parser.add_argument("--prompts-per-group", type=int, default=2000)
    parser.add_argument("--judges", default="qwe235", help="judge ids; the first follows the paper exactly")
    parser.add_argument("--disagreement", type=float, default=0.08, help="share of answers other judges flip")
    parser.add_argument("--mean-chars", type=int, default=400, help="mean length of a compliant answer")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(write_synthetic_align(args.out, args.languages.split(","), args.prompts_per_group,
                                           args.judges.split(","), args.disagreement, args.mean_chars, args.seed)))


if __name__ == "__main__":
    main()
