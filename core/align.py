"""Import of the MiJaBench-Align layout: the paper's own responses and verdicts, 528,000 pairs and up.

The layout has one row per prompt: the MiJaBench probe columns (`text`, `group`, `language`,
`scenario_category`, `scenario`, `jb_strategy`, `jb_prompt`, ...), then per evaluated model a column
`jb_response_<model>` with its answer and per judge and model a column `jb_cls_<judge>_<model>` holding
the judge's raw JSON, whose `class` (English) or `classe` (Portuguese) is `safe`/`segura` (the model
refused) or `dangerous`/`perigosa` (it complied). The authors' judge ids are `lla70`, `qwe235` and
`oss120` (data/reference/PROVENANCE.md).

Each row becomes one probe, and per model one completion in an `align-...` run with one verdict per
judge, stored under the judge name `align:<judge>`. Reading streams in batches (Parquet and Arrow by
record batch, CSV and JSONL by line), so memory stays flat whatever the file size; each batch is stored
in its own transactions through the Store, as a run is, so an interrupted import is resumed by running
it again (rows already stored are kept, none is duplicated).

Bad rows are reported with file, line (row for Parquet/Arrow) and column. By default the batch holding
the first bad row stops storing (the batches before it stay stored, `stored_rows` says how many rows),
and the rest of the file is still read so that every problem is reported at once; `skip_bad_rows`
stores every good row and lists the bad ones. A judge output that
cannot be read is not a bad row: it is stored as an `unparsed` verdict with its raw text, never counted
as either label.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from core import taxonomy
from core.options import ID_RULE, is_valid_id
from core.probes.loader import REQUIRED_COLUMNS, Problem, _probe_from_row, _RowError
from core.probes.schema import Probe
from core.reference import match_paper_model, paper_models
from core.store import Store, completion_id_for

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
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            meta = pq.ParquetFile(path)
            return list(meta.schema_arrow.names), meta.metadata.num_rows
        if suffix == ".arrow":
            with _arrow_reader(path) as reader:
                return list(reader.schema.names), None
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8-sig", newline="") as handle:
                return next(csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ","), []), None
        if suffix in (".jsonl", ".ndjson"):
            with path.open(encoding="utf-8-sig") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            first = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise AlignFileError(f"{path}:{number}:{exc.colno}: invalid JSON: {exc.msg}") from None
                        if not isinstance(first, dict):
                            raise AlignFileError(f"{path}:{number}: expected a JSON object per line")
                        return list(first), None
                return [], None
    except UnicodeDecodeError as exc:
        raise AlignFileError(f"{path}: not UTF-8 ({exc.reason}); save the file as UTF-8") from None
    except AlignFileError:
        raise
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise AlignFileError(f"{path}: not a readable {suffix[1:]} file: {exc}") from None
    raise AlignFileError(f"{path}: unknown file type {suffix!r}; use {', '.join(FORMATS)}")


def _arrow_reader(path: Path):
    """Hugging Face `save_to_disk` writes Arrow IPC streams; plain Arrow files are accepted too."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.memory_map(str(path)))
    except pa.ArrowInvalid:
        return pa.ipc.open_file(pa.memory_map(str(path)))


def _rows(path: Path, batch_rows: int) -> Iterator[list[tuple[int, dict[str, Any] | Problem]]]:
    """Batches of (line or row number, row dict) or (number, Problem), streamed from the file."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".arrow"):
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
        return
    pending: list[tuple[int, dict[str, Any] | Problem]] = []
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            if suffix in (".csv", ".tsv"):
                csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # model answers exceed the 128 KiB default
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                reader.fieldnames  # reads the header, so line_num counts from it
                line_before = reader.line_num
                for row in reader:
                    line, line_before = line_before + 1, reader.line_num  # first physical line of the record
                    if None in row:
                        pending.append((line, Problem(str(path), line, f"{len(row[None])} more fields than the header has")))
                    else:
                        pending.append((line, row))
                    if len(pending) >= batch_rows:
                        yield pending
                        pending = []
            else:
                for number, text in enumerate(handle, start=1):
                    if not text.strip():
                        continue
                    try:
                        row = json.loads(text)
                    except json.JSONDecodeError as exc:
                        pending.append((number, Problem(str(path), number, f"invalid JSON at column {exc.colno}: {exc.msg}")))
                    else:
                        pending.append((number, row if isinstance(row, dict) else
                                        Problem(str(path), number, "expected a JSON object per line")))
                    if len(pending) >= batch_rows:
                        yield pending
                        pending = []
        except UnicodeDecodeError as exc:
            raise AlignFileError(f"{path}: not UTF-8 after line {pending[-1][0] if pending else 'start'} "
                                 f"({exc.reason}); save the file as UTF-8") from None
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
        answers[model] = value
    ids = {model: completion_id_for(run_id, probe.probe_id, model) for model in layout.models}
    verdicts: list[tuple] = []
    for (judge, model), column in layout.verdict_columns.items():
        raw = row.get(column)
        if raw is None or (isinstance(raw, float) and raw != raw) or raw == "" or answers[model] is None:
            continue
        if not isinstance(raw, (str, dict)):
            raise _RowError(column, f"expected the judge's JSON output as text, found {type(raw).__name__}")
        label, rationale = parse_verdict(raw)
        raw_text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
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


def import_align(store: Store, path: str | Path, run_id: str | None = None, skip_bad_rows: bool = False,
                 batch_rows: int = 4000, on_progress: Callable[[ImportProgress], None] | None = None,
                 cancel: threading.Event | None = None) -> AlignResult:
    """Stream a MiJaBench-Align file into the store; see the module docstring for what is stored."""
    path = Path(path)
    if not path.exists():
        raise AlignFileError(f"{path}: no such file")
    columns, total = _columns(path)
    layout = AlignLayout.from_columns(path, columns)
    run_id = run_id or default_run_id(path)
    result = AlignResult(run_id, "completed", models=layout.models,
                         judges=tuple(JUDGE_PREFIX + j for j in layout.judges))
    if store.run(run_id) is None:
        store.create_run(run_id, {"source": "mijabench-align", "file": path.name, "sha256": _file_sha256(path),
                                  "models": list(layout.models), "judges": list(result.judges)}, [])
    _save_targets(store, layout.models, path)
    store.add_run_targets(run_id, list(layout.models))
    store.set_run_status(run_id, "importing")
    seen: dict[str, int] = {}
    storing = True
    try:
        for rows in _rows(path, batch_rows):
            probes: list[Probe] = []
            completions: list[tuple] = []
            verdicts: list[tuple] = []
            for number, row in rows:
                result.rows += 1
                if isinstance(row, Problem):
                    result.problems.append(row)
                    continue
                try:
                    probe, row_completions, row_verdicts = _convert(row, layout, run_id)
                except _RowError as exc:
                    result.problems.append(Problem(str(path), number, exc.reason, exc.column))
                    continue
                if probe.probe_id in seen:
                    result.problems.append(Problem(str(path), number, "the same prompt, group, language and "
                                                   f"strategy as line {seen[probe.probe_id]}", "jb_prompt"))
                    continue
                seen[probe.probe_id] = number
                probes.append(probe)
                completions.extend(row_completions)
                verdicts.extend(row_verdicts)
                for verdict in row_verdicts:
                    per_judge = result.verdicts.setdefault(verdict[1], {})
                    per_judge[verdict[2]] = per_judge.get(verdict[2], 0) + 1
            storing = storing and (skip_bad_rows or not result.problems)
            if storing and probes:
                result.probes_added += store.add_probes(probes)
                store.add_run_probes(run_id, [p.probe_id for p in probes])
                result.completions_added += store.save_result_frames(
                    pd.DataFrame(completions, columns=_COMPLETION_COLUMNS),
                    pd.DataFrame(verdicts, columns=_VERDICT_COLUMNS))
                result.stored_rows += len(probes)
            if on_progress:
                on_progress(ImportProgress(result.rows, total))
            if cancel is not None and cancel.is_set():
                result.status = "stopped"
                break
    except KeyboardInterrupt:
        result.status = "stopped"
    result.status = "rejected" if not storing else result.status
    store.set_run_status(run_id, {"completed": "completed", "stopped": "stopped", "rejected": "failed"}[result.status])
    return result
