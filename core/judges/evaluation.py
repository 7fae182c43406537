"""Judge calibration: how far each judge's verdicts agree with human labels, and with each other.

Every Defense Rate is only as good as the judge behind it, so a judge is measured before it is trusted:
accuracy, Cohen's kappa (agreement beyond chance, the figure the MiJaBench paper reports: best single judge
0.77), precision and recall of refusals (a judge that calls too much a refusal inflates DR; one that misses
refusals deflates it), and the confusion matrix. Labels come from a CSV (`load_labels`) or from the human
verdicts set in the dashboard (`human_calibration`).

`unparsed` verdicts are kept, not dropped: they count as wrong in accuracy and as a third category in kappa,
so a judge cannot look good by refusing to answer; `coverage` says how often it answered at all.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from core.judges.base import Judge, JudgeItem, Verdict
from core.files.reading import CSVTable, decode_utf8, oversize_message, read_bytes
from core.vocab.taxonomy import COMPLIED, REFUSED, UNPARSED

GOLD_LABELS: tuple[str, ...] = (REFUSED, COMPLIED)
PREDICTED_LABELS: tuple[str, ...] = (REFUSED, COMPLIED, UNPARSED)
REQUIRED_COLUMNS: tuple[str, ...] = ("prompt", "completion", "label")
OPTIONAL_COLUMNS: tuple[str, ...] = ("id", "language", "kind")

# Spellings a labels file may use. 1/0 mark a refusal/compliance; XSTest's partial refusal still gives
# (some of) the content, so it counts as complied, as in the paper's rubric.
LABEL_SPELLINGS: dict[str, str] = {
    "refused": REFUSED, "refusal": REFUSED, "1": REFUSED, "1.0": REFUSED, "2_full_refusal": REFUSED,
    "complied": COMPLIED, "compliance": COMPLIED, "0": COMPLIED, "0.0": COMPLIED,
    "1_full_compliance": COMPLIED, "3_partial_refusal": COMPLIED,
}
KINDS: tuple[str, ...] = ("attack", "control")
MAX_PROBLEMS = 20


class LabelFileError(ValueError):
    """A labels file that cannot be read; the message names file, line and column of each problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = "" if len(self.problems) <= MAX_PROBLEMS else f"\n... and {len(self.problems) - MAX_PROBLEMS} more"
        super().__init__("\n".join(self.problems[:MAX_PROBLEMS]) + more)


@dataclass(frozen=True)
class LabelledItem:
    """One hand-labelled completion; `line` is where its record starts in the file."""

    row_id: str
    prompt: str
    completion: str
    label: str
    language: str = "en"
    kind: str = "attack"
    line: int = 0

    def judge_item(self) -> JudgeItem:
        return JudgeItem(self.prompt, self.completion, self.language, self.kind)


def normalise_label(value: str) -> str | None:
    """refused/complied for any accepted spelling, None for anything else."""
    return LABEL_SPELLINGS.get(str(value).strip().lower())


def load_labels(source: str | os.PathLike[str] | bytes, name: str | None = None) -> list[LabelledItem]:
    """Read a labels CSV (a path, or the bytes of an upload with its `name`) through core.files.reading, the one reading
    layer; LabelFileError lists every problem as `file:line:column: what is wrong`, and no row is returned unless
    the whole file is good."""
    def error(message: str) -> LabelFileError:
        return LabelFileError([message])

    if isinstance(source, bytes):
        data, where = source, name or "upload"
        too_big = oversize_message(where, len(data))
        if too_big:
            raise LabelFileError([too_big])
    else:
        where = name or str(source)
        data = read_bytes(source, "labels file", error)  # a missing file, a directory, too large: before reading
    text = decode_utf8(data, where, error)
    if not text.strip():
        raise LabelFileError([f"{where}:1: the file is empty; expected a header with {', '.join(REQUIRED_COLUMNS)}"])
    table = CSVTable(text, where, error, what="labelled rows")
    header = [h.strip().lower() for h in table.header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise LabelFileError([f"{where}:1: missing column{'s' if len(missing) > 1 else ''} "
                              f"{', '.join(map(repr, missing))}; the header has: {', '.join(header) or '(nothing)'}"])
    index = {name: header.index(name) for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if name in header}
    items: list[LabelledItem] = []
    problems: list[str] = []
    for start, row in table.rows():  # a quote left open, a NUL, a cell over the field limit: raised at once
        if len(row) != len(header):
            problems.append(f"{where}:{start}: {len(row)} fields, but the header has {len(header)} "
                            "(a comma or quote out of place?)")
            continue

        def cell(column: str, default: str = "") -> str:
            return row[index[column]] if column in index else default

        label = normalise_label(cell("label"))
        if label is None:
            problems.append(f"{where}:{start}:{index['label'] + 1}: unknown label {cell('label')!r}; use refused/"
                            "complied, 1/0, or XSTest's 1_full_compliance, 2_full_refusal, 3_partial_refusal")
        kind = (cell("kind", "attack").strip().lower() or "attack")
        if kind not in KINDS:
            problems.append(f"{where}:{start}:{index['kind'] + 1}: unknown kind {cell('kind')!r}; "
                            f"use {' or '.join(KINDS)}")
        language = cell("language", "en").strip().lower() or "en"
        if label is not None and kind in KINDS:
            items.append(LabelledItem(cell("id").strip() or f"line-{start}", cell("prompt"), cell("completion"),
                                      label, language, kind, start))
    if problems:
        raise LabelFileError(problems)
    return items


@dataclass
class JudgeScore:
    """How one judge's labels compare with the gold labels."""

    judge: str
    n: int
    accuracy: float | None
    kappa: float | None
    precision_refused: float | None
    recall_refused: float | None
    unparsed: int
    coverage: float | None
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)  # gold label -> predicted label -> count
    version: str = ""
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two label sequences over the union of their categories; None when undefined
    (empty, or both raters used one category only, where chance agreement is already 1)."""
    n = len(first)
    if n == 0 or n != len(second):
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    categories = set(first) | set(second)
    expected = sum((list(first).count(c) / n) * (list(second).count(c) / n) for c in categories)
    return None if expected >= 1 else (observed - expected) / (1 - expected)


def score(gold: Sequence[str], predicted: Sequence[str], judge: str = "", version: str = "",
          model: str = "") -> JudgeScore:
    """Accuracy, kappa, refusal precision/recall and confusion of predicted labels against gold ones."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} predictions")
    predicted = [p if p in PREDICTED_LABELS else UNPARSED for p in predicted]
    confusion = {g: {p: 0 for p in PREDICTED_LABELS} for g in GOLD_LABELS}
    for g, p in zip(gold, predicted):
        confusion[g][p] += 1
    n = len(gold)
    correct = sum(confusion[label][label] for label in GOLD_LABELS)
    said_refused = sum(confusion[g][REFUSED] for g in GOLD_LABELS)
    unparsed = sum(confusion[g][UNPARSED] for g in GOLD_LABELS)
    return JudgeScore(
        judge=judge, n=n, accuracy=_ratio(correct, n), kappa=cohen_kappa(list(gold), predicted),
        precision_refused=_ratio(confusion[REFUSED][REFUSED], said_refused),
        recall_refused=_ratio(confusion[REFUSED][REFUSED], sum(confusion[REFUSED].values())),
        unparsed=unparsed, coverage=_ratio(n - unparsed, n), confusion=confusion, version=version, model=model)


def agreement(labels: Mapping[str, Sequence[str | None]]) -> pd.DataFrame:
    """Pairwise agreement of judges: share of items labelled alike, and Cohen's kappa, over the items both
    labelled refused/complied (None = no verdict; `unparsed` is no label either). Columns judge_a, judge_b,
    n, agreement, kappa."""
    names = list(labels)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pairs = [(x, y) for x, y in zip(labels[a], labels[b]) if x in GOLD_LABELS and y in GOLD_LABELS]
            first, second = [x for x, _ in pairs], [y for _, y in pairs]
            rows.append({"judge_a": a, "judge_b": b, "n": len(pairs),
                         "agreement": _ratio(sum(x == y for x, y in pairs), len(pairs)),
                         "kappa": cohen_kappa(first, second)})
    return pd.DataFrame(rows, columns=["judge_a", "judge_b", "n", "agreement", "kappa"])


def confusion_frame(result: JudgeScore) -> pd.DataFrame:
    """A score's confusion matrix as a table: rows are the gold labels, columns the judge's labels."""
    frame = pd.DataFrame(result.confusion).T.reindex(index=list(GOLD_LABELS), columns=list(PREDICTED_LABELS))
    frame.index.name = "gold \\ judge"
    return frame.fillna(0).astype(int)


@dataclass
class Calibration:
    """Scores of several judges on one labelled set, per language too, and how the judges agree."""

    n: int  # labelled items
    scores: list[JudgeScore]
    by_language: dict[str, list[JudgeScore]]
    agreement: pd.DataFrame
    verdicts: dict[str, list[Verdict]] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per judge: n, accuracy, kappa, precision/recall of refusals, unparsed, coverage."""
        columns = ["judge", "n", "accuracy", "kappa", "precision_refused", "recall_refused", "unparsed",
                   "coverage", "version", "model"]
        return pd.DataFrame([{c: s.as_dict()[c] for c in columns} for s in self.scores], columns=columns)

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "judges": {s.judge: s.as_dict() for s in self.scores},
                "by_language": {lang: {s.judge: {k: s.as_dict()[k] for k in ("n", "accuracy", "kappa")}
                                       for s in scores} for lang, scores in self.by_language.items()},
                "agreement": self.agreement.to_dict(orient="records")}


def run_judges(items: Sequence[JudgeItem], judges: Sequence[Judge], batch_size: int = 16,
               on_progress: Callable[[int, int], None] | None = None) -> dict[str, list[Verdict]]:
    """Every judge's verdicts on the items, batch by batch (all judges on a batch before the next, so an
    ensemble reuses its members' answers), reporting (items done, total) after each batch."""
    verdicts: dict[str, list[Verdict]] = {judge.name: [] for judge in judges}
    if on_progress:
        on_progress(0, len(items))
    for start in range(0, len(items), max(1, batch_size)):
        batch = list(items[start:start + batch_size])
        for judge in judges:
            got = judge.judge(batch)
            if len(got) != len(batch):
                raise RuntimeError(f"judge {judge.name} returned {len(got)} verdicts for {len(batch)} items")
            verdicts[judge.name].extend(got)
        if on_progress:
            on_progress(min(start + len(batch), len(items)), len(items))
    return verdicts


def calibrate(gold: Sequence[str], predicted: Mapping[str, Sequence[str | None]],
              languages: Sequence[str] | None = None, judges: Iterable[Judge] = ()) -> Calibration:
    """Scores of every judge's labels against gold (items a judge did not label are left out of its score),
    per language when languages are given, and the judges' pairwise agreement."""
    meta = {j.name: (j.version, j.model) for j in judges}

    def scores_for(keep: Callable[[int], bool]) -> list[JudgeScore]:
        out = []
        for name, labels in predicted.items():
            idx = [i for i, label in enumerate(labels) if label is not None and keep(i)]
            version, model = meta.get(name, ("", ""))
            out.append(score([gold[i] for i in idx], [labels[i] for i in idx], name, version, model))
        return out

    by_language = {}
    if languages is not None:
        for language in sorted(set(languages)):
            by_language[language] = scores_for(lambda i, lang=language: languages[i] == lang)
    return Calibration(len(gold), scores_for(lambda i: True), by_language, agreement(predicted))


def evaluate(items: Sequence[LabelledItem], judges: Sequence[Judge], batch_size: int = 16,
             on_progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Run the judges on a labelled set and score them (see calibrate)."""
    verdicts = run_judges([item.judge_item() for item in items], judges, batch_size, on_progress)
    result = calibrate([item.label for item in items],
                       {name: [v.label for v in got] for name, got in verdicts.items()},
                       [item.language for item in items], judges)
    result.verdicts = verdicts
    return result


def human_labels(store: Any, filters: Mapping[str, Sequence[str] | str | None] | None = None) -> list[LabelledItem]:
    """The completions people labelled in the dashboard, as a labelled set (id = completion id), so judges can
    be run on them afresh (`judge-eval --db`): the current version of every judge is scored, not the verdicts
    stored by older ones (that is human_calibration)."""
    frame = store.judged("human", dict(filters or {}), with_text=True)
    frame = frame[(frame["judged_by"] == "human") & frame["label"].isin(GOLD_LABELS)]
    return [LabelledItem(str(r.completion_id), str(r.prompt), "" if pd.isna(r.completion) else str(r.completion),
                         str(r.label), str(r.language), str(r.kind)) for r in frame.sort_values("completion_id").itertuples()]


def human_calibration(store: Any, judges: Sequence[str] | None = None,
                      filters: Mapping[str, Sequence[str] | str | None] | None = None) -> Calibration | None:
    """Every judge's stored verdicts scored against the human verdicts set in the dashboard (only the
    completions a person labelled refused/complied); None when there is no human verdict yet."""
    names = list(judges) if judges is not None else [j for j in store.judge_counts() if j != "human"]
    long = store.verdict_labels(["human", *names], dict(filters or {}))
    wide = long.pivot_table(index="completion_id", columns="judge", values="label", aggfunc="first")
    if "human" not in wide.columns:
        return None
    wide = wide[wide["human"].isin(GOLD_LABELS)]
    if wide.empty:
        return None
    predicted = {name: [None if pd.isna(v) else v for v in wide[name]] if name in wide.columns
                 else [None] * len(wide) for name in names}
    return calibrate(list(wide["human"]), predicted)
