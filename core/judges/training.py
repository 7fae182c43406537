"""Fitting and honestly scoring the `learned:` judge (`python -m core judge-train`).

The project is measured on public human-labelled sets it never sees, so the figures that matter are the
ones on data the fit did not see, from a different source:
- the large training set (GPTFuzz) and the store's human verdicts are scored by grouped k-fold CV: rows are
  grouped by prompt (question), so the answers to one question are never split between a fit and its test;
  every other source stays in each fit;
- every labels file (the project's tests/data files, any --labels file) is scored by leaving the whole file
  out: fitted on all the other sources, tested on it. This is also how the Portuguese rows are used
  without leaking: GPTFuzz is English only, so the pt rows of the project's files are training data for the
  other files' scores and for the final fit, but a file is only ever scored by a model that did not see it.
Each row of the table gives accuracy and Cohen's kappa of the learned judge next to `refusal` on the same
items, per source and language. The final model is fitted on every source.

The rule for the default: the learned judge replaces `refusal` only where it beats it on the held-out
labels of the project's own domain (every source except the large training set, pooled, rows scored only
when left out) in both languages, on accuracy and on kappa. `refusal_labels.csv` is the `refusal` rules'
development set (they score 1.00 there), which makes the rule conservative; it is kept in the pool because
dropping the rows that flatter the incumbent would be choosing the test after seeing it.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.calibration import LabelFileError, LabelledItem, cohen_kappa, load_labels
from core.judges.learned import (DEFAULT_SETTINGS, FORMAT, FORMAT_VERSION, ROOT, encode_weights, expected_size,
                                 features)
from core.taxonomy import COMPLIED, REFUSED

TRAINING_SET = ROOT / "data" / "judge_training" / "gptfuzz_train.csv.gz"
PROJECT_LABELS: tuple[Path, ...] = tuple(ROOT / "tests" / "data" / name for name in (
    "judge_eval_labels.csv", "judge_eval_fresh.csv", "refusal_labels.csv"))
CV_FOLDS = 5
LANGUAGES = ("en", "pt")


@dataclass
class Source:
    """One body of human labels. `mode`: "cv" (grouped k-fold within it) or "left out" (scored as a whole)."""

    name: str
    items: list[LabelledItem]
    sha256: str
    mode: str = "left out"
    training_only: bool = False  # the large out-of-domain training set: not part of the default rule's pool

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": len(self.items), "refused": sum(i.label == REFUSED for i in self.items),
                "complied": sum(i.label == COMPLIED for i in self.items)}


def load_source(path: str | Path, mode: str = "left out", training_only: bool = False,
                name: str | None = None) -> Source:
    """A labels CSV (gzipped when it ends in .gz) as a Source; LabelFileError says what is wrong and where."""
    from core.limits import gunzip, read_bytes

    def error(message: str) -> LabelFileError:
        return LabelFileError([message])

    path = Path(path)
    data = read_bytes(path, "labels file", error)  # missing, a directory, too large: core.limits, the one layer
    if path.suffix == ".gz":
        data = gunzip(data, str(path), error)
    items = load_labels(data, str(path))
    return Source(name or _display(path), items, hashlib.sha256(data).hexdigest(), mode, training_only)


def human_source(store: Any) -> Source | None:
    """The store's human verdicts as a Source (grouped CV by prompt), None when it has none."""
    from core.calibration import human_labels

    items = human_labels(store)
    if not items:
        return None
    digest = hashlib.sha256(json.dumps([(i.row_id, i.label) for i in items]).encode()).hexdigest()
    return Source(f"{store.path} (human verdicts)", items, digest, "cv")


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def grouped_folds(groups: Sequence[str], k: int, seed: int) -> np.ndarray:
    """A fold number (0..k-1) per row such that all rows of a group share a fold: groups are shuffled
    (seeded) and each goes to the fold with the fewest rows so far, which keeps folds near equal in size."""
    unique = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(unique))
    sizes = {g: 0 for g in unique}
    for g in groups:
        sizes[g] += 1
    fold_of: dict[str, int] = {}
    load = [0] * k
    for index in order:
        group = unique[index]
        target = min(range(k), key=lambda f: (load[f], f))
        fold_of[group] = target
        load[target] += sizes[group]
    return np.array([fold_of[g] for g in groups], dtype=int)


def source_weights(origin: np.ndarray, balance: bool) -> np.ndarray:
    """Row weights of a fit: with `balance`, every source in the fit carries the same total weight (its rows
    share it equally), so 6,160 out-of-domain GPTFuzz rows do not drown a few hundred in-domain ones;
    mean weight 1 either way."""
    if not balance:
        return np.ones(len(origin))
    kinds, counts = np.unique(origin, return_counts=True)
    per_row = dict(zip(kinds, len(origin) / (len(kinds) * counts)))
    return np.array([per_row[o] for o in origin])


def fit_weights(X, y: np.ndarray, settings: dict[str, Any], seed: int,
                weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of an L2 logistic regression (y = 1 for refused)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=float(settings["C"]), class_weight=settings["class_weight"], max_iter=2000,
                             solver="liblinear", random_state=seed)
    clf.fit(X, y, sample_weight=weights)
    return clf.coef_.ravel().astype(np.float64), float(clf.intercept_[0])


def _predict(X, coef: np.ndarray, intercept: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(X @ coef + intercept, -50, 50)))


@dataclass
class TrainResult:
    model: dict[str, Any]
    table: list[dict[str, Any]]
    decision: dict[str, Any]
    fits: int = 0
    notes: list[str] = field(default_factory=list)


def _scores(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float | None, float | None]:
    if not gold:
        return None, None
    accuracy = sum(g == p for g, p in zip(gold, predicted)) / len(gold)
    return accuracy, cohen_kappa(list(gold), list(predicted))


def _row(source: str, evaluation: str, language: str, gold: list[str], learned: list[str],
         rules: list[str]) -> dict[str, Any]:
    acc, kappa = _scores(gold, learned)
    r_acc, r_kappa = _scores(gold, rules)
    return {"source": source, "evaluation": evaluation, "language": language, "n": len(gold),
            "learned_accuracy": acc, "learned_kappa": kappa, "refusal_accuracy": r_acc, "refusal_kappa": r_kappa}


def decide(pooled: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Whether the learned judge becomes the default: it must beat `refusal` on accuracy and kappa in the
    pooled held-out rows of both languages (see the module docstring)."""
    reasons, wins = [], []
    for language in LANGUAGES:
        row = pooled.get(language)
        if row is None or not row["n"]:
            reasons.append(f"{language}: no held-out labels from the project's domain")
            wins.append(False)
            continue
        beats = all(row[f"learned_{m}"] is not None and row[f"refusal_{m}"] is not None
                    and row[f"learned_{m}"] > row[f"refusal_{m}"] for m in ("accuracy", "kappa"))
        wins.append(beats)
        reasons.append(f"{language} (n={row['n']}): learned {row['learned_accuracy']:.3f} / kappa "
                       f"{row['learned_kappa']:.3f} vs refusal {row['refusal_accuracy']:.3f} / kappa "
                       f"{row['refusal_kappa']:.3f}: {'beats' if beats else 'does not beat'} refusal")
    default = all(wins)
    verdict = ("the learned judge beats refusal in both languages: it may replace refusal as the default judge"
               if default else "the default judge stays `refusal`: the learned judge does not beat it on held-out "
               "labels in both languages")
    return {"becomes_default": default, "rule": "beat refusal on accuracy and kappa, pooled held-out project "
            "labels (left-out sources), in en and in pt", "per_language": reasons, "summary": verdict}


def train(sources: Sequence[Source], settings: dict[str, Any] | None = None, seed: int = 0,
          on_progress: Callable[[str], None] | None = None) -> TrainResult:
    """Score the learned judge honestly on every source (grouped CV or left out), then fit it on all of them."""
    from core.judges.refusal import SIGNAL_NAMES, RefusalJudge

    settings = json.loads(json.dumps(settings or DEFAULT_SETTINGS))
    say = on_progress or (lambda message: None)
    items: list[LabelledItem] = [item for s in sources for item in s.items]
    if not items:
        raise ValueError("no labelled rows to train on")
    origin = np.array([k for k, s in enumerate(sources) for _ in s.items])
    say(f"features of {len(items)} labelled completions")
    said: list = []
    X = features([i.judge_item() for i in items], settings, said)
    rules = [v.label for v in said]
    y = np.array([1 if i.label == REFUSED else 0 for i in items])
    if len(set(y)) < 2:
        raise ValueError("the labels hold only one class; a classifier needs refused and complied rows")
    threshold = float(settings["threshold"])
    balance = bool(settings.get("balance_sources", False))
    learned = np.array([""] * len(items), dtype=object)
    evaluation = [""] * len(items)
    fits = 0
    for k, source in enumerate(sources):
        rows = np.flatnonzero(origin == k)
        if source.mode == "cv":
            folds = grouped_folds([items[i].prompt for i in rows], CV_FOLDS, seed)
            parts = [(rows[folds == f]) for f in range(CV_FOLDS) if np.any(folds == f)]
            how = f"grouped {CV_FOLDS}-fold CV (by prompt)"
        else:
            parts = [rows]
            how = "left out"
        for test in parts:
            train_mask = np.ones(len(items), dtype=bool)
            train_mask[test] = False
            if not train_mask.any():
                raise ValueError(f"{source.name} is the only source: a source is scored by a fit on the others, so "
                                 "add another (the training set, --db or more --labels)")
            if len(set(y[train_mask])) < 2:
                raise ValueError(f"leaving out {source.name} leaves one class only; add labels of both kinds")
            say(f"fit {fits + 1}: {source.name}, {how}, testing {len(test)} rows")
            coef, intercept = fit_weights(X[train_mask], y[train_mask], settings, seed,
                                          source_weights(origin[train_mask], balance))
            fits += 1
            p = _predict(X[test], coef, intercept)
            learned[test] = np.where(p >= threshold, REFUSED, COMPLIED)
            for i in test:
                evaluation[i] = how
    table: list[dict[str, Any]] = []
    for k, source in enumerate(sources):
        rows = np.flatnonzero(origin == k)
        for language in ["all", *sorted({items[i].language for i in rows})]:
            sel = [i for i in rows if language == "all" or items[i].language == language]
            table.append(_row(source.name, evaluation[rows[0]], language, [items[i].label for i in sel],
                              [learned[i] for i in sel], [rules[i] for i in sel]))
    pooled: dict[str, dict[str, Any]] = {}
    domain = [i for i in range(len(items)) if not sources[origin[i]].training_only]
    for language in ["all", *LANGUAGES]:
        sel = [i for i in domain if language == "all" or items[i].language == language]
        if sel:
            pooled[language] = _row("project domain, pooled (held out)", "left out / CV", language,
                                    [items[i].label for i in sel], [learned[i] for i in sel], [rules[i] for i in sel])
            table.append(pooled[language])
    decision = decide(pooled)
    say(f"final fit on all {len(items)} rows")
    coef, intercept = fit_weights(X, y, settings, seed, source_weights(origin, balance))
    fits += 1
    assert coef.size == expected_size(settings, len(SIGNAL_NAMES))
    import sklearn

    digest = hashlib.sha256("".join(s.sha256 for s in sources).encode()).hexdigest()
    model = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "about": "learned judge of the For Whom project: logistic regression over the refusal rules' signals and "
                 "hashed n-grams (core/judges/learned.py); P(refused) = sigmoid(x . weights + intercept)",
        "refusal_version": RefusalJudge.version, "signals": list(SIGNAL_NAMES), "features": settings,
        "intercept": intercept,
        "training": {"data_sha256": digest, "rows": len(items), "seed": seed,
                     "sources": [{"name": s.name, "sha256": s.sha256, "evaluation": s.mode, **s.counts}
                                 for s in sources]},
        "evaluation": table, "decision": decision,
        "trained_with": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "weights": encode_weights(coef),
    }
    return TrainResult(model, table, decision, fits)


def write_model(model: dict[str, Any], path: str | Path) -> str:
    """Write the model as JSON (weights last, one line) and return its version (sha256 prefix)."""
    data = (json.dumps(model, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()[:12]


def format_table(table: Sequence[dict[str, Any]]) -> str:
    def f(v: float | None) -> str:
        return "  n/a" if v is None else f"{v:5.3f}"

    lines = [f"{'source':<44} {'lang':<4} {'n':>5}  {'learned acc':>11} {'kappa':>6}  {'refusal acc':>11} "
             f"{'kappa':>6}  evaluation"]
    for r in table:
        lines.append(f"{r['source'][:44]:<44} {r['language']:<4} {r['n']:>5}  {f(r['learned_accuracy']):>11} "
                     f"{f(r['learned_kappa']):>6}  {f(r['refusal_accuracy']):>11} {f(r['refusal_kappa']):>6}  "
                     f"{r['evaluation']}")
    return "\n".join(lines)
