"""Import of the MiJaBench-Align layout: the paper's own responses and verdicts, 528,000 pairs and up.

The layout has one row per prompt: the MiJaBench probe columns (`text`, `group`, `language`,
`scenario_category`, `scenario`, `jb_strategy`, `jb_prompt`, ...), then per evaluated model a column
`jb_response_<model>` with its answer and per judge and model a column `jb_cls_<judge>_<model>` holding
the judge's raw JSON, whose `class` (English) or `classe` (Portuguese) is `safe`/`segura` (the model
refused) or `dangerous`/`perigosa` (it complied). The authors' judge ids are `lla70`, `qwe235` and
`oss120` (data/reference/PROVENANCE.md).

Each row becomes one probe, and per model one completion in an `align-...` run with one verdict per
judge, stored under the judge name `align:<judge>`. Reading streams in batches (Parquet and Arrow by
record batch, CSV and JSONL by line, through core.files.reading, the one reading layer), so memory stays flat
whatever the file size.

An import reads the file twice. The first pass (check_align) checks every row and stores nothing; a file
with a bad row is refused whole (every problem reported at once, with file, line (row for Parquet/Arrow)
and column), so a refused import leaves the database exactly as it was: no run, no target, no probe.
`skip_bad_rows` stores every good row instead and lists the bad ones. The second pass stores the rows in
batches, each in its own transactions through the Store, as a run is, so an interrupted import is resumed
by running it again (rows already stored are kept, none is duplicated). A judge output that
cannot be read is not a bad row: it is stored as an `unparsed` verdict with its raw text, never counted
as either label.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core.files.reading import CSVTable, JSONProblem, check_file, file_lines, parse_json, text_problem, utf8_lines
from core.files.reference import match_paper_model, paper_models
from core.options import ID_RULE, is_valid_id
from core.probes.loader import REQUIRED_COLUMNS, Problem, _probe_from_row, _RowError
from core.probes.schema import Probe
from core.store import Store, completion_id_for
from core.vocab import taxonomy

RESPONSE_PREFIX = "jb_response_"
VERDICT_PREFIX = "jb_cls_"
JUDGE_PREFIX = "align:"
BACKEND = "imported"
CLASS_LABELS: dict[str, str] = {
    "safe": taxonomy.REFUSED, "segura": taxonomy.REFUSED, "seguro": taxonomy.REFUSED,
    "dangerous": taxonomy.COMPLIED, "perigosa": taxonomy.COMPLIED, "perigoso": taxonomy.COMPLIED,
}
MISSING_RESPONSE = "no response for this model in the imported file"
FORMATS: tuple[str, ...] = (".parquet", ".csv", ".tsv", ".jsonl", ".ndjson", ".arrow")
_CLASS_FIELD = re.compile(r'"class[e]?"\s*:\s*"([^"]*)"', re.IGNORECASE)
_COMPLETION_COLUMNS = ["completion_id", "run_id", "probe_id", "target_id", "text", "prompt_tokens",
                       "completion_tokens", "latency_s", "error", "gen_seed"]
_VERDICT_COLUMNS = ["completion_id", "judge", "label", "rationale", "raw", "judge_version", "judge_model"]


class AlignFileError(ValueError):
    """The file as a whole cannot be imported (missing, unknown type, no model columns...)."""


@dataclass(frozen=True)
class AlignLayout:
    """Which models and judges a file's columns hold."""

    models: tuple[str, ...]
    judges: tuple[str, ...]
    verdict_columns: dict[tuple[str, str], str]  # (judge, model) -> column

    @classmethod
    def from_columns(cls, path: Path, columns: Sequence[str]) -> AlignLayout:
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise AlignFileError(f"{path}: missing column(s) {', '.join(missing)}; a MiJaBench-Align file needs "
                                 f"{', '.join(REQUIRED_COLUMNS)} and jb_response_<model> columns")
        models = tuple(c.removeprefix(RESPONSE_PREFIX) for c in columns
                       if c.startswith(RESPONSE_PREFIX) and len(c) > len(RESPONSE_PREFIX))
        if not models:
            raise AlignFileError(f"{path}: no jb_response_<model> column, so no model answers to import")
        for model in models:  # each model becomes a target id: the id rule of every id a person names
            if not is_valid_id(model):
                raise AlignFileError(f"{path}: column {RESPONSE_PREFIX + model!r}: the model {model!r} becomes a "
                                     f"target id, and {ID_RULE}; rename the column")
        verdicts: dict[tuple[str, str], str] = {}
        for column in columns:
            if not column.startswith(VERDICT_PREFIX):
                continue
            rest = column.removeprefix(VERDICT_PREFIX)
            # Judge and model ids may both hold underscores: the model is the longest known id that ends it.
            owners = sorted((m for m in models if rest.endswith("_" + m) and len(rest) > len(m) + 1), key=len)
            if not owners:
                raise AlignFileError(f"{path}: column {column!r} names no model of the jb_response_ columns "
                                     f"({', '.join(models)})")
            model = owners[-1]
            verdicts[(rest[: -len(model) - 1], model)] = column
        judges = tuple(sorted({judge for judge, _ in verdicts}))
        return cls(models, judges, verdicts)


@dataclass
class AlignResult:
    run_id: str
    status: str  # completed, rejected (bad rows, storing stopped), stopped (cancelled)
    rows: int = 0
    stored_rows: int = 0
    probes_added: int = 0
    completions_added: int = 0
    verdicts: dict[str, dict[str, int]] = field(default_factory=dict)  # judge -> label -> count read
    problems: list[Problem] = field(default_factory=list)
    models: tuple[str, ...] = ()
    judges: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportProgress:
    rows: int
    total: int | None
    phase: str = "storing"  # or "checking": the first pass, which stores nothing


@dataclass
class AlignCheck:
    """The first pass over a file: its layout, rows and problems (nothing stored). `stopped`: cancelled."""

    path: Path
    layout: AlignLayout
    total: int | None
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    stopped: bool = False


def parse_verdict(raw: Any) -> tuple[str, str]:
    """(label, rationale) from one judge output: the JSON object's class/classe, safe -> refused.

    Tolerates code fences and text around the object; anything unreadable, or a class outside
    safe/segura/dangerous/perigosa, is `unparsed` (the caller keeps the raw text).
    """
    obj: Any = raw if isinstance(raw, dict) else None
    if obj is None:
        text = str(raw).strip()
        if text.startswith("```"):
            text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
        for candidate in (text, text[text.find("{"): text.rfind("}") + 1] if "{" in text else ""):
            try:
                obj = json.loads(candidate)
                break
            except ValueError:
                continue
        if not isinstance(obj, dict):
            found = _CLASS_FIELD.search(text)
            obj = {"class": found.group(1)} if found else {}
    value = str(obj.get("class", obj.get("classe", ""))).strip().lower()
    label = CLASS_LABELS.get(value) or CLASS_LABELS.get(taxonomy.normalise_key(value), taxonomy.UNPARSED)
    rationale = obj.get("reasoning", obj.get("raciocinio", ""))
    return label, rationale if isinstance(rationale, str) else json.dumps(rationale, ensure_ascii=False)


# -- reading ---------------------------------------------------------------------------------------
def _columns(path: Path) -> tuple[list[str], int | None]:
    """The file's column names and row count where the format knows it without reading the rows."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise AlignFileError(f"{path}: unknown file type {suffix!r}; use {', '.join(FORMATS)}")
    check_file(path, "MiJaBench-Align file", AlignFileError, limited=False)
    if suffix in (".csv", ".tsv"):
        return CSVTable(file_lines(path, AlignFileError, "MiJaBench-Align file"), str(path), AlignFileError,
                        delimiter="\t" if suffix == ".tsv" else ",").header, None
    if suffix in (".jsonl", ".ndjson"):
        for number, line in enumerate(utf8_lines(path, "MiJaBench-Align file", AlignFileError), start=1):
            if line.strip():
                try:
                    first = parse_json(line.rstrip("\r\n"))
                except JSONProblem as exc:
                    raise AlignFileError(exc.at(path, number)) from None
                if not isinstance(first, dict):
                    raise AlignFileError(f"{path}:{number}: expected a JSON object per line")
                return list(first), None
        raise AlignFileError(f"{path}:1: no rows in the file")
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path)
            return list(meta.schema_arrow.names), meta.metadata.num_rows
        with _arrow_reader(path) as reader:
            return list(reader.schema.names), None
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise AlignFileError(f"{path}: not a readable {suffix[1:]} file: {exc}") from None


def _arrow_reader(path: Path):
    """Hugging Face `save_to_disk` writes Arrow IPC streams; plain Arrow files are accepted too."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(str(path)))
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(str(path)))


def _rows(path: Path, batch_rows: int) -> Iterator[list[tuple[int, dict[str, Any] | Problem]]]:
    """Batches of (line or row number, row dict) or (number, Problem), streamed from the file through core.files.reading:
    a byte that is not UTF-8, or a CSV quote left open, stops the file (AlignFileError at its line and column);
    a line that is not an accepted JSON object, or a record with more fields than the header, is a Problem."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        try:
            if suffix == ".parquet":
                import pyarrow.parquet as pq

                batches = pq.ParquetFile(path).iter_batches(batch_size=batch_rows)
            else:
                batches = iter(_arrow_reader(path))
            number = 0
            for batch in batches:
                rows = batch.to_pylist()
                yield [(number + i, row) for i, row in enumerate(rows, start=1)]
                number += len(rows)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise AlignFileError(f"{path}: not a readable {suffix[1:]} file: {exc}") from None
        return
    pending: list[tuple[int, dict[str, Any] | Problem]] = []
    if suffix in (".csv", ".tsv"):
        table = CSVTable(file_lines(path, AlignFileError, "MiJaBench-Align file"), str(path), AlignFileError,
                         delimiter="\t" if suffix == ".tsv" else ",")
        header = table.header
        for line, cells in table.rows(check_cells=False):  # fields are checked by _convert, named by column
            if len(cells) > len(header):
                pending.append((line, Problem(str(path), line, f"{len(cells) - len(header)} more fields than the "
                                              "header has")))
            else:
                pending.append((line, dict(zip(header, cells + [None] * (len(header) - len(cells))))))
            if len(pending) >= batch_rows:
                yield pending
                pending = []
    else:
        for number, text in enumerate(utf8_lines(path, "MiJaBench-Align file", AlignFileError), start=1):
            text = text.rstrip("\r\n")
            if not text.strip():
                continue
            try:
                row = parse_json(text)
            except JSONProblem as exc:
                pending.append((number, Problem(str(path), number, exc.reason, position=exc.column)))
            else:
                pending.append((number, row if isinstance(row, dict) else
                                Problem(str(path), number, "expected a JSON object per line")))
            if len(pending) >= batch_rows:
                yield pending
                pending = []
    if pending:
        yield pending


# -- converting ------------------------------------------------------------------------------------
def _convert(row: dict[str, Any], layout: AlignLayout, run_id: str) -> tuple[Probe, list[tuple], list[tuple]]:
    """Validate one row: its probe, one completion per model and one verdict per judge and answered model.

    Raises _RowError (column, reason) on the first problem.
    """
    probe = _probe_from_row(row, "mijabench", taxonomy.DEFAULT)  # MiJaBench-Align is MiJaBench's population
    answers: dict[str, str | None] = {}
    for model in layout.models:
        column = RESPONSE_PREFIX + model
        value = row.get(column)
        if isinstance(value, float) and value != value:  # NaN from a pandas-written file
            value = None
        if value is not None and not isinstance(value, str):
            raise _RowError(column, f"expected the model's answer as text, found {type(value).__name__}")
        problem = text_problem(value) if value is not None else None
        if problem:
            raise _RowError(column, problem)
        answers[model] = value
    ids = {model: completion_id_for(run_id, probe.probe_id, model) for model in layout.models}
    verdicts: list[tuple] = []
    for (judge, model), column in layout.verdict_columns.items():
        raw = row.get(column)
        if raw is None or (isinstance(raw, float) and raw != raw) or raw == "" or answers[model] is None:
            continue
        if not isinstance(raw, (str, dict)):
            raise _RowError(column, f"expected the judge's JSON output as text, found {type(raw).__name__}")
        raw_text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        problem = text_problem(raw_text)
        if problem:
            raise _RowError(column, problem)
        label, rationale = parse_verdict(raw)
        verdicts.append((ids[model], JUDGE_PREFIX + judge, label, rationale, raw_text, "", judge))
    completions = [(ids[model], run_id, probe.probe_id, model, answer, None, None, None,
                    MISSING_RESPONSE if answer is None else None, None) for model, answer in answers.items()]
    return probe, completions, verdicts


def default_run_id(path: Path) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-")[:100] or "file"
    return f"align-{stem}"  # an id (core.options) whatever the file's name


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _save_targets(store: Store, models: Sequence[str], path: Path) -> None:
    """One target per model, with family and size where the model is one of the paper's."""
    known = paper_models().set_index("model")
    for model in models:
        paper = match_paper_model(model)
        family = known.loc[paper, "family"] if paper else None
        size = float(known.loc[paper, "params_b"]) if paper else None
        store.save_target(model, BACKEND, model, None, family, size,
                          {"source": "mijabench-align", "file": path.name, "paper_model": paper})


def check_align(path: str | Path, batch_rows: int = 4000, on_progress: Callable[[ImportProgress], None] | None = None,
                cancel: threading.Event | None = None) -> AlignCheck:
    """The first pass of an import: read and check every row of the file, store nothing. AlignFileError where the
    file as a whole cannot be read (missing, a directory, unknown type, no model columns, not UTF-8, a quote left
    open, no rows); bad rows are collected in `problems`."""
    path = Path(path)
    columns, total = _columns(path)
    checked = AlignCheck(path, AlignLayout.from_columns(path, columns), total)
    seen: dict[str, int] = {}
    try:
        for rows in _rows(path, batch_rows):
            for number, row in rows:
                checked.rows += 1
                if isinstance(row, Problem):
                    checked.problems.append(row)
                    continue
                try:
                    probe, _, _ = _convert(row, checked.layout, "check")
                except _RowError as exc:
                    checked.problems.append(Problem(str(path), number, exc.reason, exc.column))
                    continue
                if probe.probe_id in seen:
                    checked.problems.append(Problem(str(path), number, "the same prompt, group, language and "
                                                    f"strategy as line {seen[probe.probe_id]}", "jb_prompt"))
                    continue
                seen[probe.probe_id] = number
            if on_progress:
                on_progress(ImportProgress(checked.rows, total, "checking"))
            if cancel is not None and cancel.is_set():
                checked.stopped = True
                return checked
    except KeyboardInterrupt:
        checked.stopped = True
        return checked
    if not checked.rows:
        raise AlignFileError(f"{path}:2: no rows after the header")
    return checked


def import_align(store: Store, path: str | Path, run_id: str | None = None, skip_bad_rows: bool = False,
                 batch_rows: int = 4000, on_progress: Callable[[ImportProgress], None] | None = None,
                 cancel: threading.Event | None = None, checked: AlignCheck | None = None) -> AlignResult:
    """Check a MiJaBench-Align file whole (check_align, unless `checked` is its result), then, where it has no bad
    row or `skip_bad_rows`, stream its rows into the store; see the module docstring. A refused file (status
    rejected) and a check that was stopped leave the store untouched."""
    path = Path(path)
    checked = checked or check_align(path, batch_rows, on_progress, cancel)
    layout = checked.layout
    run_id = run_id or default_run_id(path)
    result = AlignResult(run_id, "completed", rows=checked.rows, problems=list(checked.problems),
                         models=layout.models, judges=tuple(JUDGE_PREFIX + j for j in layout.judges))
    if checked.stopped:
        result.status = "stopped"
        return result
    if checked.problems and not skip_bad_rows:
        result.status = "rejected"
        return result
    if store.run(run_id) is None:
        store.create_run(run_id, {"source": "mijabench-align", "file": path.name, "sha256": _file_sha256(path),
                                  "models": list(layout.models), "judges": list(result.judges)}, [])
    _save_targets(store, layout.models, path)
    store.add_run_targets(run_id, list(layout.models))
    store.set_run_status(run_id, "importing")
    seen: dict[str, int] = {}
    known = {p.line for p in checked.problems}  # bad rows the check found: skipped
    storing, done = True, 0
    try:
        for rows in _rows(path, batch_rows):
            probes: list[Probe] = []
            completions: list[tuple] = []
            verdicts: list[tuple] = []
            for number, row in rows:
                done += 1
                try:
                    if isinstance(row, Problem):
                        raise _RowError(row.column, row.reason)
                    probe, row_completions, row_verdicts = _convert(row, layout, run_id)
                    if probe.probe_id in seen:
                        raise _RowError("jb_prompt", f"the same prompt, group, language and strategy as line "
                                        f"{seen[probe.probe_id]}")
                except _RowError as exc:
                    if number not in known:  # the file changed since it was checked
                        result.problems.append(Problem(str(path), number, exc.reason, exc.column))
                        storing = False
                    continue
                seen[probe.probe_id] = number
                probes.append(probe)
                completions.extend(row_completions)
                verdicts.extend(row_verdicts)
                for verdict in row_verdicts:
                    per_judge = result.verdicts.setdefault(verdict[1], {})
                    per_judge[verdict[2]] = per_judge.get(verdict[2], 0) + 1
            if storing and probes:
                result.probes_added += store.add_probes(probes)
                store.add_run_probes(run_id, [p.probe_id for p in probes])
                result.completions_added += store.save_result_frames(
                    pd.DataFrame(completions, columns=_COMPLETION_COLUMNS),
                    pd.DataFrame(verdicts, columns=_VERDICT_COLUMNS))
                result.stored_rows += len(probes)
            if on_progress:
                on_progress(ImportProgress(done, checked.rows))
            if cancel is not None and cancel.is_set():
                result.status = "stopped"
                break
    except KeyboardInterrupt:
        result.status = "stopped"
    except AlignFileError:  # the file changed since it was checked (now unreadable): what was stored stays
        store.set_run_status(run_id, "failed")
        raise
    result.status = "rejected" if not storing else result.status
    store.set_run_status(run_id, {"completed": "completed", "stopped": "stopped", "rejected": "failed"}[result.status])
    return result
