"""`import-align`: store a MiJaBench-Align file (the paper's responses and verdicts) as runs (core/files/align.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, BadInput, emit, id_option, open_store, writes


def cmd_import_align(args: argparse.Namespace) -> int:
    """Stream a MiJaBench-Align file (responses and verdicts of many models) into the store: checked whole first,
    so a file with a bad row is refused (exit 2) before the database is opened, let alone written."""
    from core.files.align import AlignFileError, check_align, import_align
    from core.run.progress import Meter

    with Meter("import-align", unit="row", quiet=args.quiet) as meter:
        def progress(update) -> None:
            meter.update(update.rows, update.total, note=update.phase)

        try:
            checked = check_align(args.file, on_progress=progress)
            if checked.stopped:
                print("stopped while checking the file; nothing was stored", file=sys.stderr)
                return EXIT_STOPPED
            if checked.problems and not args.skip_bad_rows:
                result = None
            else:
                store = open_store(args)
                result = import_align(store, args.file, run_id=args.run_id, skip_bad_rows=args.skip_bad_rows,
                                      on_progress=progress, checked=checked)
        except AlignFileError as exc:
            raise BadInput(str(exc)) from None
    problems = checked.problems if result is None else result.problems
    for problem in problems[:50]:
        print(f"{'skipped' if args.skip_bad_rows else 'error'}: {problem}", file=sys.stderr)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more", file=sys.stderr)
    if result is None:
        print(f"error: {len(problems)} of {checked.rows} rows rejected; nothing was stored (fix them and import "
              "again, or pass --skip-bad-rows to store every good row)", file=sys.stderr)
        return EXIT_BAD_INPUT
    payload = {"file": str(args.file), "run_id": result.run_id, "status": result.status, "rows": result.rows,
               "stored_rows": result.stored_rows, "rejected": len(result.problems), "probes_added": result.probes_added,
               "completions_added": result.completions_added, "models": list(result.models),
               "judges": list(result.judges), "verdicts_read": result.verdicts}
    emit(args, payload, f"{args.file}: {result.rows} rows, {result.stored_rows} stored ({result.completions_added} new "
                        f"completions of {len(result.models)} models, judges {', '.join(result.judges) or 'none'}) "
                        f"in run {result.run_id}; {len(result.problems)} rejected")
    if result.status == "rejected":
        print(f"error: the file changed while it was imported: {len(result.problems)} bad rows; storing stopped "
              f"({result.stored_rows} rows stored). Fix it and import again (stored rows are kept, none is "
              "duplicated).", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.status == "stopped":
        print("stopped; run the same command again to finish the import", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `import-align`."""
    align = sub.add_parser("import-align", parents=[common], help="store a MiJaBench-Align file (responses + verdicts)")
    align.add_argument("file", type=Path, help=".parquet, .arrow, .csv, .tsv or .jsonl")
    id_option(align, "--run-id", default=None, help="default: align-<file name> (an id: letters, digits, and "
              ". _ - : @)")
    align.add_argument("--skip-bad-rows", action="store_true", help="store the good rows even if some are bad")
    align.add_argument("--quiet", action="store_true", help="no progress bar")
    align.set_defaults(func=cmd_import_align)
    writes(align, "import-align")
