"""`verdicts export|import`: human labels out and in as CSV sheets."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import EXIT_BAD_INPUT, EXIT_OK, BadInput, emit, existing_store, output_path, writes


def cmd_verdicts_export(args: argparse.Namespace) -> int:
    """The review sample as a spreadsheet-safe labelling sheet (CSV), to a file or stdout."""
    from core.files.export import write_csv

    store = existing_store(args, readonly=True, run_id=args.run_id)
    sheet = store.sample_sheet(args.run_id)
    if sheet.empty:
        raise BadInput(f"no review sample{' for ' + args.run_id if args.run_id else ''} in {store.path}; draw one "
                       "first: python -m core review sample --run-id RUN --fraction 0.05 --seed 0")
    labelled = int((sheet["label"] != "").sum())
    if args.out is None:
        write_csv(sheet, sys.stdout)
        print(f"{len(sheet)} sampled completions ({labelled} labelled), in queue order", file=sys.stderr)
        return EXIT_OK
    written = write_csv(sheet, output_path(args, "--out", args.out))
    emit(args, {"path": str(args.out), "rows": written, "labelled": labelled},
         f"wrote {written} sampled completions ({labelled} labelled) to {args.out}: fill `label` (refused or "
         "complied) from the top down, without skipping (the queue order is random, so any top part stays a "
         f"random sample), then: python -m core verdicts import {args.out} --annotator NAME")
    return EXIT_OK


def _unescaped(value: str) -> str:
    """Undo core.files.export's formula neutralising (a leading apostrophe before = + - @), so a note read back from
    an exported sheet equals the stored one and a re-import changes nothing."""
    from core.files.export import FORMULA_PREFIXES

    return value[1:] if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_PREFIXES) else value


def _read_label_sheet(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, completion_id, label, note) per row of a CSV with columns completion_id, label[, note], read through
    core.files.reading (the one reading layer): every problem is BadInput `FILE:LINE[:COL]: reason`, before the database
    is opened.

    Line numbers are those a text editor shows (a quoted cell may span lines: a row is named by its first); a quote
    left open is named where it opened (it would otherwise swallow the rest of the sheet into one note). Blank rows
    are skipped; a sheet with a header and no rows, a missing column, a NUL, a cell longer than the field limit, or
    a file that is not UTF-8 is refused.
    """
    from core.files.reading import CSVTable, read_utf8

    text = read_utf8(path, "labels sheet", BadInput)  # a byte-order mark (spreadsheets write one) is dropped
    table = CSVTable(text, str(path), BadInput, what="rows")
    header = table.header
    names = [name.strip().lower() for name in header]
    missing = [name for name in ("completion_id", "label") if name not in names]
    if missing:
        raise BadInput(f"{path}:1: missing column {', '.join(missing)} (the header has "
                       f"{', '.join(map(repr, header)) or 'nothing'}; needed: completion_id, label, optional note)")
    where = {name: names.index(name) for name in ("completion_id", "label", "note") if name in names}
    rows: list[tuple[int, str, str, str]] = []
    for line, record in table.rows():
        def cell(name: str) -> str:
            index = where.get(name)
            return _unescaped(record[index]) if index is not None and index < len(record) else ""

        rows.append((line, cell("completion_id"), cell("label"), cell("note")))
    return rows


def cmd_verdicts_import(args: argparse.Namespace) -> int:
    """Store human labels from a CSV (completion_id, label, note): all rows or none, idempotent."""
    from core.store import VerdictImportError

    rows = _read_label_sheet(args.file)
    store = existing_store(args)
    try:
        result = store.import_human_verdicts(rows, args.annotator, as_random_sample=args.as_random_sample,
                                             source=str(args.file))
    except VerdictImportError as exc:
        for problem in exc.problems[:50]:
            print(f"error: {problem}", file=sys.stderr)
        if len(exc.problems) > 50:
            print(f"error: ... and {len(exc.problems) - 50} more", file=sys.stderr)
        print(f"error: {len(exc.problems)} bad rows in {args.file}; nothing was stored (fix them and import again)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    text = (f"{args.file}: {result['labelled']} labels ({result['changed']} new or changed, {result['unchanged']} "
            f"already stored), {result['blank']} rows without a label skipped")
    if args.as_random_sample:
        text += f"; {result['sampled']} completions are now the review sample of {', '.join(result['runs'])}"
    emit(args, {"file": str(args.file), **result}, text)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `verdicts export|import`."""
    verdicts = sub.add_parser("verdicts", help="human verdicts in and out (CSV sheets)") \
        .add_subparsers(dest="verdicts_command", required=True)
    sheet = verdicts.add_parser("export", parents=[common], help="the review sample as a sheet to label in a "
                                "spreadsheet (completion_id, run_id, model, language, group, kind, prompt, "
                                "completion, label, note)")
    sheet.add_argument("--sample", action="store_true", required=True, help="export the review sample")
    sheet.add_argument("--run-id", default=None, help="only this run's sample")
    sheet.add_argument("--out", type=Path, default=None, help="CSV file (default: stdout)")
    sheet.set_defaults(func=cmd_verdicts_export)
    labels = verdicts.add_parser("import", parents=[common], help="store human verdicts from a CSV with columns "
                                 "completion_id, label (refused/complied), optional note; all rows or none")
    labels.add_argument("file", type=Path)
    labels.add_argument("--annotator", default="", help="who labelled them (stored with every verdict)")
    labels.add_argument("--as-random-sample", action="store_true",
                        help="these labels are a random sample drawn elsewhere: make them their runs' review "
                             "sample (refused where a run has one)")
    labels.set_defaults(func=cmd_verdicts_import)
    writes(labels, "verdicts import")
