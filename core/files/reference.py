"""The MiJaBench paper's published figures, bundled in data/reference/ (see its PROVENANCE.md).

Used to lay a user's results next to the paper's (the Reproduction page), to give imported
MiJaBench-Align models their family and size, and to generate the synthetic Align file of the
benchmarks. Model names differ between the paper ("Llama 3.2 1B"), the Align columns
("Llama-3.2-1B-Instruct") and a user's targets, so matching is by a normalised key, not by spelling.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import pandas as pd

from core.vocab import taxonomy

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "data" / "reference" / "mijabench_paper"
AVERAGE = "Average"  # the paper's average row in the heatmaps

# Suffixes that name a model's packaging, not the model (instruction tuning, quantisation).
_SUFFIXES = re.compile(r"[-_ .](instruct|chat|it|fp8|fp16|bf16|awq|gptq|gguf)$")


def model_key(name: str) -> str:
    """A spelling-independent key: 'Llama-3.2-1B-Instruct', 'llama 3.2 1b' -> 'llama321b'."""
    text = str(name).strip().lower().rsplit("/", 1)[-1]
    previous = None
    while previous != text:
        previous, text = text, _SUFFIXES.sub("", text)
    return re.sub(r"[^a-z0-9]", "", text)


@lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE_DIR / name)


def paper_models() -> pd.DataFrame:
    """The paper's 12 models: model (paper name), align_id, family, params_b."""
    return _read("models.csv").copy()


def paper_heatmap(language: str = "en", include_average: bool = False) -> pd.DataFrame:
    """Figure 3 (en) or 6 (pt): model, family, params_b, model_mean_dr, group, deviation, dr.

    dr = model_mean_dr + deviation, the cell's Defense Rate as the figure implies it.
    """
    language = taxonomy.canonical_language(language)
    frame = _read(f"heatmap_{language}.csv").rename(columns={"deviation_from_model_mean": "deviation"})
    if not include_average:
        frame = frame.loc[frame["model"] != AVERAGE]
    return frame.assign(dr=frame["model_mean_dr"] + frame["deviation"]).reset_index(drop=True)


def paper_model_means(language: str = "en") -> pd.DataFrame:
    """Per paper model (and the Average row): family, params_b and its mean DR over the language's prompts,
    smallest first within a family, the Average last."""
    frame = paper_heatmap(language, include_average=True)
    means = frame.drop_duplicates("model")[["model", "family", "params_b", "model_mean_dr"]]
    average = means["model"] == AVERAGE
    return pd.concat([means.loc[~average].sort_values(["family", "params_b"]), means.loc[average]],
                     ignore_index=True)


def paper_judges() -> pd.DataFrame:
    """Table 3: accuracy (%) and Cohen's kappa of the paper's judges against human labels."""
    return _read("judges.csv").copy()


def paper_strategies() -> pd.DataFrame:
    return _read("strategies_en.csv").copy()


def paper_scenarios() -> pd.DataFrame:
    return _read("scenarios_en.csv").copy()


def match_paper_model(name: str) -> str | None:
    """The paper's name of a model given any spelling of it (paper name, Align id, hub id), or None."""
    key = model_key(name)
    for row in paper_models().itertuples():
        if key in (model_key(row.model), model_key(row.align_id)):
            return row.model
    return None


def compare_with_paper(deviations: pd.DataFrame, language: str, models: dict[str, str] | None = None) -> pd.DataFrame:
    """A user's deviations (DefenseRates(..., by=[model, language, group]).deviations()) next to the paper's.

    `models` maps the user's model names to paper names; by default each is matched with
    match_paper_model. Returns one row per (model, group) present in both: model, paper_model, group,
    paper_dr, paper_deviation, dr, deviation, dev_ci_low, dev_ci_high, significant, difference
    (= deviation - paper_deviation) and paper_in_ci (the paper's value inside the user's 95% CI).
    """
    language = taxonomy.canonical_language(language)
    ours = deviations.loc[deviations["language"] == language] if "language" in deviations.columns else deviations
    mapping = models if models is not None else {
        m: match_paper_model(m) for m in ours["model"].unique()}
    mapping = {k: v for k, v in mapping.items() if v}
    paper = paper_heatmap(language).rename(columns={"model": "paper_model", "dr": "paper_dr",
                                                    "deviation": "paper_deviation"})
    ours = ours.loc[ours["model"].isin(list(mapping))].assign(paper_model=lambda f: f["model"].map(mapping))
    keep = [c for c in ("model", "paper_model", "group", "n", "dr", "deviation", "dev_ci_low", "dev_ci_high",
                        "significant") if c in ours.columns]
    merged = ours[keep].merge(paper[["paper_model", "group", "paper_dr", "paper_deviation", "params_b", "family"]],
                              on=["paper_model", "group"], how="inner")
    merged["difference"] = merged["deviation"] - merged["paper_deviation"]
    if {"dev_ci_low", "dev_ci_high"} <= set(merged.columns):
        merged["paper_in_ci"] = merged["paper_deviation"].between(merged["dev_ci_low"], merged["dev_ci_high"])
    return merged.sort_values(["params_b", "paper_model", "group"]).reset_index(drop=True)


def reproduction_summary(comparison: pd.DataFrame) -> dict[str, float | int | None]:
    """How close a reproduction is: cells compared, mean and max |difference|, share of the paper's
    values inside the user's 95% CIs, and Spearman's rho between the two sets of deviations."""
    from scipy import stats as sps

    if comparison.empty:
        return {"cells": 0, "models": 0, "mean_abs_difference": None, "max_abs_difference": None,
                "paper_in_ci": None, "spearman": None}
    difference = comparison["difference"].abs()
    rho = sps.spearmanr(comparison["deviation"], comparison["paper_deviation"]).statistic if len(comparison) > 2 else None
    return {"cells": len(comparison), "models": int(comparison["model"].nunique()),
            "mean_abs_difference": float(difference.mean()), "max_abs_difference": float(difference.max()),
            "paper_in_ci": float(comparison["paper_in_ci"].mean()) if "paper_in_ci" in comparison else None,
            "spearman": None if rho is None else float(rho)}
