"""Fitting and honestly scoring the offline learned judges (`python -m core judge-train`): the n-gram
`learned:` judge, and with `--encoder-out` the fine-tuned `encoder:` judge and their `average:`.

Both answer the judges' question (core/judges/base.py QUESTIONS): did the answer deliver the requested hateful
content (attack probes), did the model refuse the benign request (control probes). The labels they learn from
are of that kind: human labels (GPTFuzz, the project's files, the store's human verdicts) and the
model-labelled training-only sets of data/judge_training/ (JailbreakBench artifacts, refusal direction).

The project is measured on public human-labelled sets it never sees, so the figures that matter are the
ones on data the fit did not see. One grouped k-fold cross-validation (`folds`, 3 by default) scores every
judge on the same rows:
- a training set (`--training-set A B ...`) and the store's human verdicts are grouped by prompt: the answers
  to one question never sit on both sides of a fit;
- every labels file (the project's tests/data files, any --labels file) is one group: it is scored by fits
  that never saw any of it (the Portuguese rows of the other files do train those fits).
Each fit is made on the other folds; the table gives accuracy and Cohen's kappa per source and language for
`refusal` (the rules, not fitted), the n-gram judge, the encoder and the average, on the same items. The
encoder is fine-tuned on at most `max_rows_per_source` rows of each training-only set (a seeded sample, the
same rows in every fold; CPU time), so with an encoder the table is computed on those rows; the n-gram fits
use every row. The final models are fitted on all rows. Probabilities are calibrated on the out-of-fold
predictions (Platt scaling, core/judges/encoder.py).

Weights: every source carries the same total weight within its language, and every language at least
`min_language_share` of the total (the n-gram judge: languages equal; the encoder: a quarter), so thousands of
English training rows do not drown the project's few hundred Portuguese ones; classes are balanced.

The pool that decides the default holds only labels that no judge in the comparison was fitted or tuned on:
the learned judges are scored out of fold everywhere, and the `refusal` rules were tuned on their development
sets (`DEVELOPMENT_LABELS`: tests/data/refusal_labels.csv, where they score 1.00, and judge_eval_labels.csv, whose
misses the second round of rules was written from: 0.847 before it, 0.949 after), so a comparison that counted
those rows would score the rules on their own training data and the learned judges on unseen data. The pool is
therefore the project's held-out labels (judge_eval_fresh.csv, judge_eval_third.csv: 120 real demo answers
labelled after every judge was built, any other --labels file, the store's human verdicts), pooled, rows scored
only out of fold. The referee set (`HELD_OUT_LABELS`: judge_eval_third.csv, or a byte-identical copy) is never
fitted on at all, neither in a fold, nor in the final models, nor in the calibration: it is scored, pooled and
nothing else, so the shipped judges' figures on it are what a user's unseen answers would give (training on it
also taught the judges its extreme balance: 111 of its 120 answers are refusals, mostly broken output of tiny
models, and the n-gram judge's Portuguese accuracy on the rules' development set fell from 0.92 to 0.61). Development rows are still scored and
printed per source and language, for information; training-only sets (the model-labelled ones, and GPTFuzz,
which is out of domain) never enter the pool either. The rule for the default: a judge replaces `refusal`
only where it beats it on that pool, per language, on accuracy and on kappa. A judge with a per-language
fallback (encoder, average) uses the rules' own verdicts where it does not beat them, so in such a language it
equals `refusal`: it qualifies when it beats `refusal` in every language where it uses its model and in at
least one. The same pool decides the fallback languages.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.judges.evaluation import LabelFileError, LabelledItem, cohen_kappa, load_labels
from core.judges.learned import (DEFAULT_SETTINGS, FORMAT, FORMAT_VERSION, ROOT, encode_weights, expected_size,
                                 features)
from core.vocab.taxonomy import COMPLIED, REFUSED

TRAINING_SETS: tuple[Path, ...] = tuple(ROOT / "data" / "judge_training" / name for name in (
    "gptfuzz_train.csv.gz", "jbb_artifacts.csv.gz", "refusal_direction.csv.gz"))
TRAINING_SET = TRAINING_SETS[0]
PROJECT_LABELS: tuple[Path, ...] = tuple(ROOT / "tests" / "data" / name for name in (
    "judge_eval_labels.csv", "judge_eval_fresh.csv", "judge_eval_third.csv", "refusal_labels.csv"))
# The `refusal` rules' development sets (tests/data/README.md): refusal_labels.csv (the first rules were tuned on it)
# and judge_eval_labels.csv (the second round of rules was written from its misses): scored and shown, never in
# the deciding pool.
DEVELOPMENT_LABELS: tuple[Path, ...] = tuple(ROOT / "tests" / "data" / name for name in (
    "refusal_labels.csv", "judge_eval_labels.csv"))
# The referee (tests/data/README.md): scored and in the deciding pool, never fitted on (module docstring).
HELD_OUT_LABELS: tuple[Path, ...] = (ROOT / "tests" / "data" / "judge_eval_third.csv",)
HELD_OUT_NOTE = "held out: never fitted on"
POOL_NAME = "project domain, pooled (held out)"
DEVELOPMENT_NOTE = "the rules' development set: shown, not in the decision"
CV_FOLDS = 3
JUDGE_KEYS = ("refusal", "learned", "encoder", "average")
MIN_LANGUAGE_SHARE = {"learned": 0.5, "encoder": 0.25}
MAX_ROWS_PER_SOURCE = 900  # encoder only: rows of each training-only set it is fine-tuned and scored on
LANGUAGES = ("en", "pt")


@dataclass
class Source:
    """One body of human labels. `mode`: "cv" (grouped k-fold within it) or "left out" (scored as a whole)."""

    name: str
    items: list[LabelledItem]
    sha256: str
    mode: str = "left out"
    training_only: bool = False  # the large out-of-domain training set: not part of the default rule's pool
    development: bool = False  # the `refusal` rules were tuned on it: scored, not part of the default rule's pool
    held_out: bool = False  # the referee: scored and in the pool, never in a fit or a calibration

    @property
    def decides(self) -> bool:
        """Whether its rows enter the pool that decides the default and the fallback languages."""
        return not (self.training_only or self.development)

    @property
    def counts(self) -> dict[str, int]:
        return {"rows": len(self.items), "refused": sum(i.label == REFUSED for i in self.items),
                "complied": sum(i.label == COMPLIED for i in self.items)}


def load_source(path: str | Path, mode: str = "left out", training_only: bool = False,
                name: str | None = None, development: bool | None = None, held_out: bool | None = None) -> Source:
    """A labels CSV (gzipped when it ends in .gz) as a Source; LabelFileError says what is wrong and where.
    `development` None: the file is the rules' development set when it is one of DEVELOPMENT_LABELS or a
    byte-identical copy of one (a copy elsewhere must not slip into the deciding pool)."""
    from core.files.reading import gunzip, read_bytes

    def error(message: str) -> LabelFileError:
        return LabelFileError([message])

    path = Path(path)
    data = read_bytes(path, "labels file", error)  # missing, a directory, too large: core.files.reading, the one layer
    if path.suffix == ".gz":
        data = gunzip(data, str(path), error)
    items = load_labels(data, str(path))
    digest = hashlib.sha256(data).hexdigest()
    if development is None:
        development = is_development(path, digest)
    if held_out is None:
        held_out = is_development(path, digest, HELD_OUT_LABELS)
    return Source(name or _display(path), items, digest, mode, training_only, development, held_out)


def is_development(path: str | Path, sha256: str, files: Sequence[Path] = DEVELOPMENT_LABELS) -> bool:
    """Whether a labels file is (a copy of) one of `files`: by default the `refusal` rules' development sets."""
    resolved = Path(path).resolve()
    for dev in files:
        if resolved == dev.resolve():
            return True
        try:
            if hashlib.sha256(dev.read_bytes()).hexdigest() == sha256:
                return True
        except OSError:
            continue
    return False


def human_source(store: Any) -> Source | None:
    """The store's human verdicts as a Source (grouped CV by prompt), None when it has none."""
    from core.judges.evaluation import human_labels

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
    share it equally); mean weight 1 either way."""
    if not balance:
        return np.ones(len(origin))
    kinds, counts = np.unique(origin, return_counts=True)
    per_row = dict(zip(kinds, len(origin) / (len(kinds) * counts)))
    return np.array([per_row[o] for o in origin])


def row_weights(origin: np.ndarray, languages: np.ndarray, balance: bool = True,
                min_language_share: float = 0.5) -> np.ndarray:
    """Row weights of a fit (mean 1): within each language every source carries the same total weight (with
    `balance`), and each language carries its share of the rows but at least `min_language_share` (capped at an
    equal share), the rest shared by the others in proportion to their rows."""
    n = len(origin)
    if n == 0:
        return np.ones(0)
    langs, counts = np.unique(languages, return_counts=True)
    floor = min(float(min_language_share), 1.0 / len(langs))
    share = counts / n
    low = share < floor
    if low.any() and not low.all():
        rest = 1.0 - floor * low.sum()
        share = np.where(low, floor, share / share[~low].sum() * rest)
    weights = np.zeros(n)
    for lang, lang_share in zip(langs, share):
        in_lang = languages == lang
        inner = source_weights(origin[in_lang], balance)
        weights[in_lang] = inner / inner.sum() * lang_share * n
    return weights


def class_balanced(y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weights rescaled so refused and complied rows carry the same total weight."""
    out = weights.astype(np.float64).copy()
    for label in (0, 1):
        mask = y == label
        if mask.any():
            out[mask] *= weights.sum() / (2 * weights[mask].sum())
    return out


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
class JudgeTrainingResult:
    model: dict[str, Any]
    table: list[dict[str, Any]]
    decision: dict[str, Any]
    fits: int = 0
    notes: list[str] = field(default_factory=list)
    encoder: Any = None  # the final EncoderModel (with --encoder-out)
    encoder_meta: dict[str, Any] | None = None
    oof: dict[str, Any] = field(default_factory=dict)  # out-of-fold probabilities, for tests and reports


def _scores(gold: Sequence[str], predicted: Sequence[str]) -> tuple[float | None, float | None]:
    if not gold:
        return None, None
    accuracy = sum(g == p for g, p in zip(gold, predicted)) / len(gold)
    return accuracy, cohen_kappa(list(gold), list(predicted))


def _row(source: str, evaluation: str, language: str, gold: list[str], predicted: dict[str, list[str]]) -> dict[str, Any]:
    row: dict[str, Any] = {"source": source, "evaluation": evaluation, "language": language, "n": len(gold)}
    for key, labels in predicted.items():
        row[f"{key}_accuracy"], row[f"{key}_kappa"] = _scores(gold, labels)
    return row


def _beats(row: dict[str, Any], key: str) -> bool:
    return all(row.get(f"{key}_{m}") is not None and row.get(f"refusal_{m}") is not None
               and row[f"{key}_{m}"] > row[f"refusal_{m}"] for m in ("accuracy", "kappa"))


def _figures(row: dict[str, Any], key: str) -> str:
    return (f"{key} {row[f'{key}_accuracy']:.3f} / kappa {row[f'{key}_kappa']:.3f} vs refusal "
            f"{row['refusal_accuracy']:.3f} / kappa {row['refusal_kappa']:.3f}")


def decide(pooled: dict[str, dict[str, Any]], key: str = "learned") -> dict[str, Any]:
    """Whether a judge without a fallback becomes the default: it must beat `refusal` on accuracy and kappa in
    the pooled held-out rows of both languages (see the module docstring)."""
    reasons, wins = [], []
    for language in LANGUAGES:
        row = pooled.get(language)
        if row is None or not row["n"]:
            reasons.append(f"{language}: no held-out labels from the project's domain (development and "
                           "training-only sets do not count)")
            wins.append(False)
            continue
        beats = _beats(row, key)
        wins.append(beats)
        reasons.append(f"{language} (n={row['n']}): {_figures(row, key)}: {'beats' if beats else 'does not beat'} refusal")
    default = all(wins)
    verdict = (f"the {key} judge beats refusal in both languages: it may replace refusal as the default judge"
               if default else f"the default judge stays `refusal`: the {key} judge does not beat it on held-out "
               "labels in both languages")
    return {"becomes_default": default, "rule": "beat refusal on accuracy and kappa, pooled held-out project "
            "labels (out of fold; not the rules' development set, not the training-only sets), in en and in pt",
            "per_language": reasons, "summary": verdict}


def fallback_languages(pooled: dict[str, dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    """Languages other than the base model's own (English) where a model does not beat the rules on the
    project's held-out rows (accuracy and kappa): there its judge uses the `refusal` rules' verdicts instead. A
    language with no such rows is not listed (English is decided by the rule for the default, not by a fallback)."""
    from core.judges.encoder import BASE_LANGUAGE

    out = {}
    for language, row in pooled.items():
        if language in ("all", BASE_LANGUAGE) or not row["n"] or _beats(row, key):
            continue
        out[language] = {"n": row["n"], "reason": f"on the project's {row['n']} held-out {language} rows, "
                         f"{_figures(row, key)}: it does not beat the rules",
                         "accuracy": row[f"{key}_accuracy"], "kappa": row[f"{key}_kappa"],
                         "refusal_accuracy": row["refusal_accuracy"], "refusal_kappa": row["refusal_kappa"]}
    return out


def choose_default(pooled: dict[str, dict[str, Any]], fallback: dict[str, dict[str, Any]],
                   keys: Sequence[str]) -> dict[str, Any]:
    """The project's rule over every candidate (with its fallback applied where it has one): the candidate that
    qualifies (module docstring) with the best pooled accuracy (then kappa) becomes the default, else `refusal` stays."""
    lines, qualified = [], []
    for key in keys:
        falls = fallback.get(key, {})
        beaten, ok = 0, True
        for language in LANGUAGES:
            row = pooled.get(language)
            if row is None or not row["n"]:
                ok = False
                lines.append(f"{key}, {language}: no held-out project rows")
                continue
            if language in falls:
                lines.append(f"{key}, {language} (n={row['n']}): falls back to the rules ({_figures(row, key)})")
            elif _beats(row, key):
                beaten += 1
                lines.append(f"{key}, {language} (n={row['n']}): {_figures(row, key)}: beats refusal")
            else:
                ok = False
                lines.append(f"{key}, {language} (n={row['n']}): {_figures(row, key)}: does not beat refusal")
        if ok and beaten:
            qualified.append(key)
    def score(key: str, metric: str) -> float:
        return pooled["all"].get(f"{key}+fallback_{metric}") or pooled["all"][f"{key}_{metric}"]

    # the best pooled accuracy; kappa breaks a tie (the rule asks for both)
    best = max(qualified, key=lambda k: (score(k, "accuracy"), score(k, "kappa")), default=None) if qualified else None
    summary = (f"`{best}` beats refusal where it uses its model and is the rules where it falls back: it becomes "
               "the default judge" if best else "the default judge stays `refusal`: no candidate beats it on the "
               "project's held-out labels in every language it judges with its own model")
    return {"default": best or "refusal", "qualified": qualified, "per_candidate": lines, "summary": summary}


def _fold_groups(sources: Sequence[Source]) -> list[str]:
    groups = []
    for k, source in enumerate(sources):
        for item in source.items:
            groups.append(f"{k}\0{item.prompt}" if source.mode == "cv" else f"{k}")
    return groups


def _sample_rows(sources: Sequence[Source], origin: np.ndarray, cap: int | None, seed: int) -> np.ndarray:
    """Every row of the sources that are not training-only, and a seeded sample of at most `cap` rows of each
    training-only one (the rows the encoder is fine-tuned and scored on)."""
    keep = []
    for k, source in enumerate(sources):
        rows = np.flatnonzero(origin == k)
        if source.training_only and cap is not None and len(rows) > cap:
            rows = np.sort(np.random.default_rng([seed, k]).choice(rows, size=cap, replace=False))
        keep.append(rows)
    return np.concatenate(keep) if keep else np.zeros(0, dtype=int)


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(Path(path).resolve())


def train(sources: Sequence[Source], settings: dict[str, Any] | None = None, seed: int = 0,
          on_progress: Callable[[str], None] | None = None, folds: int = CV_FOLDS,
          encoder_settings: dict[str, Any] | None = None, max_rows_per_source: int | None = MAX_ROWS_PER_SOURCE,
          checkpoint_dir: Path | None = None, quiet: bool = True, encoder_base: Any = None) -> JudgeTrainingResult:
    """Score every judge honestly (one grouped k-fold CV, see the module docstring), then fit the n-gram judge
    (and, given `encoder_settings`, the encoder) on all rows."""
    from core.judges.refusal import SIGNAL_NAMES, RefusalJudge

    settings = json.loads(json.dumps(settings or DEFAULT_SETTINGS))
    say = on_progress or (lambda message: None)
    items: list[LabelledItem] = [item for s in sources for item in s.items]
    if not items:
        raise ValueError("no labelled rows to train on")
    origin = np.array([k for k, s in enumerate(sources) for _ in s.items])
    languages = np.array([(i.language or "en").split("-")[0] for i in items])
    say(f"features of {len(items)} labelled completions")
    said: list = []
    X = features([i.judge_item() for i in items], settings, said)
    rules = np.array([v.label for v in said], dtype=object)
    y = np.array([1 if i.label == REFUSED else 0 for i in items])
    if len(set(y)) < 2:
        raise ValueError("the labels hold only one class; a classifier needs refused and complied rows")
    fold_of = grouped_folds(_fold_groups(sources), folds, seed)
    fitted = np.array([not sources[o].held_out for o in origin], dtype=bool)  # the rows any fit may learn from
    parts = [f for f in range(folds) if np.any(fold_of == f)]
    if len(parts) < 2:
        raise ValueError(f"{sources[0].name} is the only source: a source is scored by a fit on the others, so "
                         "add another (the training set, --db or more --labels)")
    ngram_share = float(settings.get("min_language_share", MIN_LANGUAGE_SHARE["learned"]))
    settings["min_language_share"] = ngram_share
    balance = bool(settings.get("balance_sources", False))
    p_ngram = np.zeros(len(items))
    fits = 0
    for f in parts:
        train_mask = (fold_of != f) & fitted
        if len(set(y[train_mask])) < 2:
            raise ValueError(f"leaving out fold {f + 1} leaves one class only; add labels of both kinds")
        test = np.flatnonzero(fold_of == f)
        say(f"n-gram fit {fits + 1}/{len(parts)}: fold {f + 1} of {folds}, testing {len(test)} rows")
        rows = np.flatnonzero(train_mask)
        coef, intercept = fit_weights(X[rows], y[rows], settings, seed,
                                      row_weights(origin[rows], languages[rows], balance, ngram_share))
        fits += 1
        p_ngram[test] = _predict(X[test], coef, intercept)
    evaluated = np.arange(len(items))
    z_encoder = None
    encoder_model = None
    enc = None
    if encoder_settings is not None:
        from core.judges import encoder as E
        from core.run.progress import Meter

        enc = {**E.DEFAULT_ENCODER_SETTINGS, **encoder_settings}
        enc_share = float(enc.get("min_language_share", MIN_LANGUAGE_SHARE["encoder"]))
        enc["min_language_share"] = enc_share
        evaluated = _sample_rows(sources, origin, max_rows_per_source, seed)
        base_model = E.EncoderModel(enc, seed=seed, base=encoder_base)
        texts = E.texts_of([items[i].judge_item() for i in evaluated])
        test_parts = [(f, evaluated[fold_of[evaluated] == f]) for f in parts]
        test_parts = [(f, t) for f, t in test_parts if len(t)]
        train_sizes = [int(np.sum((fold_of[evaluated] != f) & fitted[evaluated])) for f, _ in test_parts] + [
            int(fitted[evaluated].sum())]
        total = len(evaluated) + sum(E.steps_of(n, enc) for n in train_sizes)
        key_base = hashlib.sha256(json.dumps([enc, seed, folds, [[s.sha256, s.held_out] for s in sources],
                                              evaluated.tolist()], sort_keys=True).encode()).hexdigest()
        z_encoder = np.full(len(items), np.nan)
        with Meter("fine-tuning the encoder", total=total, unit="step", quiet=quiet) as meter:
            done = [0]

            def tick(n: int, note: str = "") -> None:
                done[0] += n
                meter.update(done[0], note=note or None)

            say(f"encoder: frozen layers over {len(evaluated)} rows (cached for every fold)")
            local = E.bottom_cache(base_model, texts, tick=lambda n: tick(n, "caching the frozen layers"))
            cache = [None] * len(items)
            for i, state in zip(evaluated, local):
                cache[i] = state
            enc_y = y.astype(np.float64)

            def weights_for(rows: np.ndarray) -> np.ndarray:
                w = np.zeros(len(items))
                w[rows] = class_balanced(y[rows], row_weights(origin[rows], languages[rows], balance, enc_share))
                return w

            for tag, (f, test) in enumerate(test_parts, start=1):
                rows = evaluated[(fold_of[evaluated] != f) & fitted[evaluated]]
                say(f"encoder fit {tag}/{len(test_parts) + 1}: fold {f + 1} of {folds}, {len(rows)} training rows, "
                    f"testing {len(test)}")
                model = E.EncoderModel(enc, seed=seed, base=encoder_base)
                point = checkpoint_dir / f"fold{f + 1}.safetensors" if checkpoint_dir else None
                done_file = checkpoint_dir / f"fold{f + 1}-oof.json" if checkpoint_dir else None
                key = f"{key_base}:{f}"
                if done_file is not None and done_file.exists():
                    saved = json.loads(done_file.read_text())
                    if saved.get("key") == key:
                        z_encoder[test] = np.array(saved["logits"])
                        tick(E.steps_of(len(rows), enc), f"fold {f + 1} resumed")
                        fits += 1
                        continue
                E.fine_tune(model, cache, rows, enc_y, weights_for(rows), seed, tag, point, key,
                            tick=lambda n, note, f=f: tick(n, f"fold {f + 1}: {note}"))
                z_encoder[test] = E.top_logits(model, cache, test)
                fits += 1
                if done_file is not None:
                    done_file.write_text(json.dumps({"key": key, "logits": z_encoder[test].tolist()}))
            final_rows = evaluated[fitted[evaluated]]
            say(f"encoder final fit on {len(final_rows)} rows")
            encoder_model = E.EncoderModel(enc, seed=seed, base=encoder_base)
            point = checkpoint_dir / "final.safetensors" if checkpoint_dir else None
            E.fine_tune(encoder_model, cache, final_rows, enc_y, weights_for(final_rows), seed, 0, point,
                        f"{key_base}:final", tick=lambda n, note: tick(n, f"final fit: {note}"))
            fits += 1
    # calibration on the out-of-fold predictions (sources weighted equally)
    from core.judges.encoder import calibrate, fit_platt, logit

    calibrated = evaluated[fitted[evaluated]]  # the calibration is a fit too: never on the referee
    cal_w = source_weights(origin[calibrated], True)
    ngram_cal = fit_platt(logit(p_ngram[calibrated]), y[calibrated], cal_w)
    predicted: dict[str, np.ndarray] = {"refusal": rules, "learned": np.where(p_ngram >= 0.5, REFUSED, COMPLIED)}
    probabilities: dict[str, np.ndarray] = {"learned": p_ngram}
    enc_cal = avg_cal = None
    if z_encoder is not None:
        enc_cal = fit_platt(z_encoder[calibrated], y[calibrated], cal_w)
        p_enc = np.full(len(items), np.nan)
        p_enc[evaluated] = calibrate(*enc_cal, z_encoder[evaluated])
        mean = np.full(len(items), np.nan)
        mean[evaluated] = (p_enc[evaluated] + calibrate(*ngram_cal, logit(p_ngram[evaluated]))) / 2
        avg_cal = fit_platt(logit(mean[calibrated]), y[calibrated], cal_w)
        p_avg = np.full(len(items), np.nan)
        p_avg[evaluated] = calibrate(*avg_cal, logit(mean[evaluated]))
        threshold = float(enc["threshold"])
        predicted["encoder"] = np.where(p_enc >= threshold, REFUSED, COMPLIED)
        predicted["average"] = np.where(p_avg >= threshold, REFUSED, COMPLIED)
        probabilities.update(encoder=p_enc, average=p_avg)
    keys = [k for k in JUDGE_KEYS if k in predicted]
    gold = np.array([i.label for i in items], dtype=object)
    how = {k: (f"grouped {folds}-fold CV (by prompt)" if s.mode == "cv" else f"left out ({folds}-fold CV, whole file)")
           + (f"; {DEVELOPMENT_NOTE}" if s.development else "") + (f"; {HELD_OUT_NOTE}" if s.held_out else "")
           for k, s in enumerate(sources)}

    def make_rows(select: np.ndarray, name: str, evaluation: str, extra: dict[str, np.ndarray] | None = None) -> list[dict]:
        out = []
        for language in ["all", *sorted(set(languages[select]))]:
            sel = select if language == "all" else select[languages[select] == language]
            chosen = {k: list(predicted[k][sel]) for k in keys}
            for k, labels in (extra or {}).items():
                chosen[k] = list(labels[sel])
            out.append(_row(name, evaluation, language, list(gold[sel]), chosen))
        return out

    table: list[dict[str, Any]] = []
    in_eval = np.zeros(len(items), dtype=bool)
    in_eval[evaluated] = True
    for k, source in enumerate(sources):
        select = np.flatnonzero((origin == k) & in_eval)
        if len(select):
            table += make_rows(select, source.name, how[k])
    domain = np.flatnonzero(in_eval & np.array([sources[o].decides for o in origin], dtype=bool))
    pooled_rows = make_rows(domain, POOL_NAME, "out of fold; decides") if len(domain) else []
    pooled = {r["language"]: r for r in pooled_rows}
    fallback: dict[str, dict[str, Any]] = {}
    for key in ("encoder", "average"):
        if key in predicted:
            fallback[key] = fallback_languages(pooled, key)
            with_fallback = predicted[key].copy()
            for language in fallback[key]:
                mask = languages == language
                with_fallback[mask] = rules[mask]
            predicted[f"{key}+fallback"] = with_fallback
    if fallback:
        keys = [k for k in [*JUDGE_KEYS, "encoder+fallback", "average+fallback"] if k in predicted]
        table = []
        for k, source in enumerate(sources):
            select = np.flatnonzero((origin == k) & in_eval)
            if len(select):
                table += make_rows(select, source.name, how[k])
        pooled_rows = make_rows(domain, POOL_NAME, "out of fold; decides") if len(domain) else []
        pooled = {r["language"]: r for r in pooled_rows}
    table += pooled_rows
    decision = decide(pooled, "learned")
    decision["choice"] = choose_default(pooled, fallback, [k for k in ("learned", "encoder", "average") if k in predicted])
    final = np.flatnonzero(fitted)
    say(f"n-gram final fit on {'all ' if len(final) == len(items) else ''}{len(final)} rows")
    coef, intercept = fit_weights(X[final], y[final], settings, seed,
                                  row_weights(origin[final], languages[final], balance, ngram_share))
    fits += 1
    assert coef.size == expected_size(settings, len(SIGNAL_NAMES))
    import sklearn

    digest = hashlib.sha256("".join(s.sha256 for s in sources).encode()).hexdigest()
    training = {"data_sha256": digest, "rows": len(items), "seed": seed, "folds": folds,
                "sources": [{"name": s.name, "sha256": s.sha256, "evaluation": s.mode,
                             "training_only": s.training_only, "development": s.development,
                             "held_out": s.held_out, **s.counts}
                            for s in sources]}
    model = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "about": "learned judge of the For Whom project: logistic regression over the refusal rules' signals and "
                 "hashed n-grams (core/judges/learned.py); P(refused) = sigmoid(x . weights + intercept)",
        "refusal_version": RefusalJudge.version, "signals": list(SIGNAL_NAMES), "features": settings,
        "intercept": intercept, "training": training, "evaluation": table, "decision": decision,
        "trained_with": {"scikit-learn": sklearn.__version__, "numpy": np.__version__},
        "weights": encode_weights(coef),
    }
    result = JudgeTrainingResult(model, table, decision, fits,
                         oof={"rows": evaluated, "probabilities": probabilities, "fold": fold_of})
    if encoder_model is not None:
        import torch
        import transformers

        from core.judges import encoder as E

        result.encoder = encoder_model
        result.encoder_meta = {
            "format": E.FORMAT, "format_version": E.FORMAT_VERSION,
            "about": "encoder judge of the For Whom project: all-MiniLM-L6-v2 with LoRA adapters on its top layers "
                     "and a linear head (core/judges/encoder.py); P(refused) = sigmoid(a * logit + b)",
            "settings": enc,
            "base": {"package": E.BASE_PACKAGE, "version": E.BASE_VERSION, "file": E.BASE_WEIGHTS,
                     "sha256": E.BASE_SHA256},
            "calibration": {"a": enc_cal[0], "b": enc_cal[1], "fitted_on": "out-of-fold logits, sources weighted equally"},
            "fallback": fallback.get("encoder", {}),
            "partner": {"calibration": {"a": ngram_cal[0], "b": ngram_cal[1]},
                        "average_calibration": {"a": avg_cal[0], "b": avg_cal[1]},
                        "fallback": fallback.get("average", {})},
            "refusal_version": RefusalJudge.version,
            "training": {**training, "encoder_rows": int(len(evaluated)), "max_rows_per_source": max_rows_per_source,
                         "rows_sha256": hashlib.sha256(json.dumps(evaluated.tolist()).encode()).hexdigest()},
            "evaluation": table, "decision": decision,
            "trained_with": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "numpy": np.__version__, "scikit-learn": sklearn.__version__},
        }
    return result


def write_encoder_model(result: JudgeTrainingResult, path: str | Path, partner_path: str | Path) -> str:
    """Write the encoder judge file, naming the n-gram model written in the same run (its sha256 recorded)."""
    from core.judges.encoder import write_encoder

    if result.encoder is None or result.encoder_meta is None:
        raise ValueError("no encoder was trained")
    meta = json.loads(json.dumps(result.encoder_meta))
    meta["partner"]["spec"] = _relative(Path(partner_path))
    meta["partner"]["sha256"] = hashlib.sha256(Path(partner_path).read_bytes()).hexdigest()
    return write_encoder(path, result.encoder.trainable(), meta)


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
    """Accuracy and kappa per source and language, one column pair per judge in the table."""
    def f(v: float | None) -> str:
        return "  n/a" if v is None else f"{v:5.3f}"

    keys = [k for k in ("refusal", "learned", "encoder", "average", "encoder+fallback", "average+fallback")
            if table and f"{k}_accuracy" in table[0]]
    names = {"learned": "n-gram", "encoder+fallback": "enc+fb", "average+fallback": "avg+fb"}
    head = f"{'source':<44} {'lang':<4} {'n':>5} " + " ".join(f"{names.get(k, k) + ' acc':>12} {'kappa':>6}" for k in keys)
    lines = [head + "  evaluation"]
    for r in table:
        cells = " ".join(f"{f(r[f'{k}_accuracy']):>12} {f(r[f'{k}_kappa']):>6}" for k in keys)
        lines.append(f"{r['source'][:44]:<44} {r['language']:<4} {r['n']:>5} {cells}  {r['evaluation']}")
    return "\n".join(lines)
