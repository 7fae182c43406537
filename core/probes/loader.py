"""Read probe files in the MiJaBench layout (CSV, JSONL or Parquet) into Probes.

The MiJaBench release has one row per prompt with the columns `text` (the seed statement), `group`,
`language`, `scenario_category`, `scenario`, `jb_strategy`, `jb_prompt` and `dataset_source`. The
project's own builder writes the same layout (plus `probe_id`, `kind` and `source`), so one loader
reads both. Every bad row is reported with file, line and reason instead of being guessed at: a
mislabelled group would silently distort the very disparity the audit measures.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.files.reading import (CSVTable, JSONProblem, check_file, decode_utf8, json_lines, parse_json, read_bytes,
                                text_problem)
from core.probes.schema import Probe, probe_id_for
from core.vocab import taxonomy

REQUIRED_COLUMNS: tuple[str, ...] = ("text", "group", "language", "jb_strategy", "jb_prompt")
OPTIONAL_COLUMNS: tuple[str, ...] = ("scenario_category", "scenario", "dataset_source", "probe_id", "kind", "source",
                                     "counterfactual_id", "claim_id", "taxonomy")
MAX_PROMPT_CHARS = 200_000


@dataclass(frozen=True)
class Problem:
    """One rejected row: where it is and why."""

    path: str
    line: int
    reason: str
    column: str = ""
    position: int | None = None  # the character's column within the line, where known (JSON)

    def __str__(self) -> str:
        where = (f"{self.path}:{self.line}" + (f":{self.position}" if self.position else "")
                 + (f" (column {self.column})" if self.column else ""))
        return f"{where}: {self.reason}"


@dataclass
class LoadResult:
    probes: list[Probe] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    taxonomy: taxonomy.Taxonomy = taxonomy.DEFAULT  # the one the rows were validated against (and name)
    lines: dict[str, int] = field(default_factory=dict)  # probe_id -> the line it was read from


class ProbeFileError(ValueError):
    """The file as a whole cannot be read (missing, wrong format, missing columns)."""


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """Yield (line number, row dict) or (line, Problem) for each record of the file, read through core.files.reading (the
    one reading layer: missing file, directory, size, encoding, JSON depth and numbers, CSV quoting)."""
    suffix = path.suffix.lower()
    check_file(path, "probe file", ProbeFileError)
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise ProbeFileError(f"{path}: not a readable Parquet file: {exc}") from None
        _check_columns(path, table.column_names)
        for index, row in enumerate(table.to_pylist(), start=1):
            yield index, row  # "line" is the 1-based row number for Parquet
        return
    if suffix not in (".jsonl", ".ndjson", ".json", ".csv", ".tsv"):
        raise ProbeFileError(f"{path}: unknown probe file type {suffix!r}; use .csv, .jsonl or .parquet")
    text = decode_utf8(read_bytes(path, "probe file", ProbeFileError), str(path), ProbeFileError)
    if suffix in (".jsonl", ".ndjson", ".json"):
        seen_columns = False
        for number, line in json_lines(text):
            try:
                row = parse_json(line)
            except JSONProblem as exc:
                yield number, Problem(str(path), number, exc.reason, position=exc.column)
                continue
            if not isinstance(row, dict):
                yield number, Problem(str(path), number, "expected a JSON object per line")
                continue
            if not seen_columns:
                _check_columns(path, row.keys(), number)
                seen_columns = True
            yield number, row
        return
    # strict quoting: a quote left open (a truncated file) stops the file, named where it opened
    table = CSVTable(text, str(path), ProbeFileError, delimiter="\t" if suffix == ".tsv" else ",", what="probes")
    header = table.header
    _check_columns(path, header)
    for line, cells in table.rows(check_cells=False):  # each field is checked by _text, named by its column
        if len(cells) > len(header):
            yield line, Problem(str(path), line, f"{len(cells) - len(header)} more fields than the header has")
            continue
        yield line, dict(zip(header, cells + [None] * (len(header) - len(cells))))


def _check_columns(path: Path, columns: Iterable[str], line: int = 1) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in set(columns)]
    if missing:
        raise ProbeFileError(f"{path}:{line}: missing column(s) {', '.join(missing)}; a probe file needs "
                             f"{', '.join(REQUIRED_COLUMNS)}")


def _text(row: dict[str, Any], column: str) -> str:
    """A text field of a row, stripped; _RowError where it is not text (an object, a list, true/false) or holds
    what no text field may (core.files.reading.text_problem: a NUL, a lone surrogate, more than the field limit)."""
    value = row.get(column)
    if value is None:
        return ""
    if isinstance(value, (dict, list, bool)):
        found = {dict: "a JSON object", list: "a JSON array", bool: f"{str(value).lower()}"}[type(value)]
        raise _RowError(column, f"expected text, found {found}")
    value = str(value)
    problem = text_problem(value)
    if problem:
        raise _RowError(column, problem)
    return value.strip()


def _probe_from_row(row: dict[str, Any], default_source: str, vocabulary: taxonomy.Taxonomy) -> Probe:
    """Validate one row against the set's taxonomy; raise (column, reason) as a _RowError on the first problem."""
    def fail(column: str, reason: str) -> None:
        raise _RowError(column, reason)

    def vocab(column: str, convert) -> str:
        try:
            return convert(_text(row, column))
        except taxonomy.VocabularyError as exc:
            fail(column, str(exc))
            raise  # unreachable

    language = vocab("language", vocabulary.canonical_language)
    group = vocab("group", vocabulary.canonical_group)
    if group not in vocabulary.languages[language].groups:
        fail("group", f"group {group!r} is not audited in {language!r} by taxonomy {vocabulary.name!r} "
             f"({vocabulary.path}); its {language} groups: {', '.join(vocabulary.languages[language].groups)}")
    strategy = vocab("jb_strategy", vocabulary.canonical_strategy)
    category = _text(row, "scenario_category")
    if category:
        category = vocab("scenario_category", vocabulary.canonical_category)
    prompt = _text(row, "jb_prompt")
    if not prompt:
        fail("jb_prompt", "empty prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        fail("jb_prompt", f"prompt of {len(prompt):,} characters is longer than the limit of {MAX_PROMPT_CHARS:,}")
    if "\x00" in prompt:
        fail("jb_prompt", "prompt contains a NUL character")
    kind = _text(row, "kind") or ("control" if strategy == taxonomy.CONTROL else "attack")
    if kind not in taxonomy.KINDS:
        fail("kind", f"unknown kind {kind!r}; known kinds: {', '.join(taxonomy.KINDS)}")
    if (kind == "control") != (strategy == taxonomy.CONTROL):
        fail("kind", f"kind {kind!r} does not match strategy {strategy!r}")
    source = _text(row, "source") or default_source
    if source not in taxonomy.SOURCES:
        fail("source", f"unknown source {source!r}; known sources: {', '.join(taxonomy.SOURCES)}")
    probe_id = _text(row, "probe_id") or probe_id_for(language, group, strategy, prompt, source)
    return Probe(probe_id=probe_id, language=language, group=group, seed_text=_text(row, "text"),
                 scenario_category=category, scenario=_text(row, "scenario"), strategy=strategy,
                 prompt=prompt, kind=kind, source=source, counterfactual_id=_text(row, "counterfactual_id"),
                 claim_id=_text(row, "claim_id"), taxonomy=vocabulary.name)


class _RowError(ValueError):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column = column
        self.reason = reason


def _named_taxonomy(path: Path, reference: str, line: int) -> taxonomy.Taxonomy:
    """The taxonomy a probe file's `taxonomy` column names: empty or the default's name is the bundled default,
    anything else a TOML file, relative to the probe file's folder."""
    if not reference or reference == taxonomy.DEFAULT_NAME:
        return taxonomy.DEFAULT
    if not reference.endswith(".toml"):
        raise ProbeFileError(f"{path}:{line} (column taxonomy): {reference!r} is neither {taxonomy.DEFAULT_NAME!r} "
                             f"nor a taxonomy file (.toml, relative to the probe file)")
    try:
        return taxonomy.resolve(path.parent / reference)
    except taxonomy.TaxonomyError as exc:
        raise ProbeFileError(f"{path}:{line}: the taxonomy it names is not usable:\n{exc}") from None


def load_probes(path: str | Path, default_source: str = "mijabench",
                vocabulary: taxonomy.Taxonomy | None = None) -> LoadResult:
    """Read every row of a probe file; good rows become Probes, bad rows Problems (nothing is guessed).

    Rows are validated against `vocabulary` when given, else against the taxonomy the file's `taxonomy` column
    names (first row; every row must name the same one), else the bundled default. Raises ProbeFileError when
    the file as a whole is unusable (unreadable, wrong type, not UTF-8, missing columns, a bad taxonomy).
    """
    path = Path(path)
    result = LoadResult()
    seen: dict[str, int] = {}
    reference: str | None = None
    for line, record in _records(path):
        result.rows += 1
        if isinstance(record, Problem):
            result.problems.append(record)
            continue
        try:
            named = _text(record, "taxonomy")
        except _RowError as exc:
            result.problems.append(Problem(str(path), line, exc.reason, exc.column))
            continue
        if reference is None:
            reference = named
            result.taxonomy = vocabulary or _named_taxonomy(path, named, line)
        elif named != reference and vocabulary is None:
            result.problems.append(Problem(str(path), line, f"names taxonomy {named or taxonomy.DEFAULT_NAME!r}, "
                                           f"the first row {reference or taxonomy.DEFAULT_NAME!r}: one file, one "
                                           "taxonomy", "taxonomy"))
            continue
        try:
            probe = _probe_from_row(record, default_source, result.taxonomy)
        except _RowError as exc:
            result.problems.append(Problem(str(path), line, exc.reason, exc.column))
            continue
        if probe.probe_id in seen:
            result.problems.append(Problem(str(path), line, f"duplicate of the probe on line {seen[probe.probe_id]}"))
            continue
        seen[probe.probe_id] = line
        result.probes.append(probe)
    if not result.rows:
        raise ProbeFileError(f"{path}:1: no probes in the file")
    result.lines = seen
    return result


def write_probes(path: str | Path, probes: Iterable[Probe], taxonomy_file: str | Path | None = None) -> None:
    """Write probes in the MiJaBench layout (JSONL), so load_probes reads them back unchanged.

    A probe of another taxonomy than the default names `taxonomy_file` (written relative to the probe file, so
    the two travel together); the columns a MiJaBench file lacks are written only where they hold something, so
    the bundled set's file stays in the release's layout."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reference = None
    if taxonomy_file is not None and Path(taxonomy_file).resolve() != taxonomy.DEFAULT_PATH:
        reference = os.path.relpath(Path(taxonomy_file).resolve(), path.resolve().parent)
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for p in probes:
            row = {"probe_id": p.probe_id, "text": p.seed_text, "group": p.group, "language": p.language,
                   "scenario_category": p.scenario_category, "scenario": p.scenario, "jb_strategy": p.strategy,
                   "jb_prompt": p.prompt, "dataset_source": "for-whom", "kind": p.kind, "source": p.source}
            row.update({name: getattr(p, name) for name in ("counterfactual_id", "claim_id") if getattr(p, name)})
            if p.taxonomy != taxonomy.DEFAULT_NAME:
                if reference is None:
                    raise ValueError(f"probe {p.probe_id} is of taxonomy {p.taxonomy!r}: name its file (taxonomy_file)")
                row["taxonomy"] = reference
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
