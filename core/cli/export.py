"""`export` (completions as CSV/Parquet, preference pairs, the HTML audit report) and `import-align` (a
MiJaBench-Align file in)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.cli.common import (EXIT_BAD_INPUT, EXIT_OK, EXIT_STOPPED, BadInput, add_selection_parser, chosen_judge, emit,
                             id_option, open_store, output_path, say_selection, selection_filters, stored_target_name,
                             writes)


def cmd_import_align(args: argparse.Namespace) -> int:
    """Stream a MiJaBench-Align file (responses and verdicts of many models) into the store: checked whole first,
    so a file with a bad row is refused (exit 2) before the database is opened, let alone written."""
    from core.align import AlignFileError, check_align, import_align
    from core.progress import Meter

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


def cmd_export(args: argparse.Namespace) -> int:
    output_path(args, "--out", args.out)  # its folder exists and it is not the database: before anything is read
    for option, given in (("--compare", args.compare), ("--mitigation", args.mitigation)):
        if given and args.format != "report":
            raise BadInput(f"{option} adds a section to the HTML report: use it with --format report, not {args.format}")
    for option, given, formats in (("--bom", args.bom, ("csv",)),
                                   ("--readable-headers", args.readable_headers, ("csv", "parquet"))):
        if given and args.format not in formats:
            raise BadInput(f"{option} is for {' and '.join(formats)} exports, not {args.format}")
    if args.format != "csv":
        return _export_derived(args)
    from core.export import completion_table, write_csv

    from core.progress import Meter

    store = open_store(args, readonly=True)
    filters = selection_filters(args, store)
    said = say_selection(args, store, filters)
    rows = completion_table(store, filters, judge=chosen_judge(args, store), readable=args.readable_headers)
    with Meter("export", total=len(rows), unit="row", quiet=args.quiet) as meter:
        written = write_csv(rows, args.out, on_progress=meter.update, bom=args.bom)
    emit(args, {"path": str(args.out), "rows": written, "selection": said}, f"wrote {written} rows to {args.out}")
    return EXIT_OK


def _report_comparison(args: argparse.Namespace, store, judge: str):
    """`export --format report --compare BASE CANDIDATE`: the paired comparison the report's section draws."""
    from core.analyses import compare as paired
    from core.compare import CompareError

    sides = store.run_target_counts()
    run_id = args.runs[0] if len(args.runs) == 1 else None
    try:
        base, candidate = (paired.resolve_side(sides, stored_target_name(name), run_id, role)
                           for name, role in zip(args.compare, ("base", "candidate")))
        return paired.compute(store, base, candidate, judge)
    except CompareError as exc:
        raise BadInput(f"--compare: {exc}") from None


def _report_mitigation(args: argparse.Namespace, store):
    """`export --format report --mitigation DIR`: the before/after of a `mitigate` output (its audit stored)."""
    from core.mitigate.audit import before_after
    from core.mitigate.train import MitigateError

    try:
        return before_after(store, args.mitigation)
    except MitigateError as exc:
        raise BadInput(f"--mitigation: {exc}") from None


def _export_derived(args: argparse.Namespace) -> int:
    """Parquet (one row per completion), preference pairs (JSONL for DPO) or the HTML audit report."""
    from core import export

    store = open_store(args, readonly=True)
    filters = selection_filters(args, store)
    said = say_selection(args, store, filters)
    if args.format == "parquet":
        rows = export.completion_table(store, filters, judge=chosen_judge(args, store), readable=args.readable_headers)
        payload: dict[str, Any] = {"rows": export.write_parquet(rows, args.out)}
        text = f"wrote {payload['rows']} rows to {args.out}"
    elif args.format == "pairs":
        judge = chosen_judge(args, store)
        payload = export.write_pairs(store.judged(judge, filters, with_text=True), args.out,
                                     per_group=args.per_group, seed=args.seed, judge=judge)
        text = (f"wrote {payload['pairs']} preference pairs ({payload['per_group']} per group, "
                f"{len(payload['groups'])} groups) to {args.out}")
        if payload["groups_without_pairs"]:
            text += f"; no pair possible for {', '.join(payload['groups_without_pairs'])}"
    else:
        from core.report import write_report

        judge = chosen_judge(args, store)
        payload = write_report(store, args.out, judge=judge, filters=filters,
                               comparison=_report_comparison(args, store, judge) if args.compare else None,
                               mitigation=_report_mitigation(args, store) if args.mitigation else None)
        text = f"wrote the audit report to {args.out} ({payload['models']} models, {payload['completions']} completions)"
    emit(args, {"path": str(args.out), "format": args.format, **payload, "selection": said}, text)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `export` and `import-align`."""
    p = add_selection_parser(sub, "export", cmd_export, "completions as CSV/Parquet, preference pairs, audit report",
                             [common, filters], [])
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--format", default="csv", choices=["csv", "parquet", "pairs", "report"],
                   help="csv/parquet: one row per completion with every judge's verdict, the verdict that counts "
                        "(effective_verdict, a person's over the judge's) and decided_by; "
                        "pairs: JSONL preference pairs for DPO; "
                        "report: a self-contained HTML audit report")
    p.add_argument("--per-group", type=int, default=None,
                   help="pairs: at most this many per group (default: as many as the scarcest group has)")
    p.add_argument("--seed", type=int, default=0, help="pairs: which refusal and jailbreak are paired")
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.add_argument("--bom", action="store_true",
                   help="csv: start with the UTF-8 byte order mark, so a spreadsheet (Excel) reads accents right")
    p.add_argument("--readable-headers", action="store_true",
                   help="csv/parquet: column titles for people (\"Verdict that counts\") instead of internal names")
    p.add_argument("--compare", nargs=2, metavar=("BASE", "CANDIDATE"), default=None,
                   help="report: add a paired comparison of two versions (run ids, target ids or "
                        "--target specs; with one --runs value, targets are taken from that run)")
    p.add_argument("--mitigation", default=None, metavar="DIR",
                   help="report: add a mitigation's training and before/after (the --out of `mitigate --audit`)")

    align = sub.add_parser("import-align", parents=[common], help="store a MiJaBench-Align file (responses + verdicts)")
    align.add_argument("file", type=Path, help=".parquet, .arrow, .csv, .tsv or .jsonl")
    id_option(align, "--run-id", default=None, help="default: align-<file name> (an id: letters, digits, and "
              ". _ - : @)")
    align.add_argument("--skip-bad-rows", action="store_true", help="store the good rows even if some are bad")
    align.add_argument("--quiet", action="store_true", help="no progress bar")
    align.set_defaults(func=cmd_import_align)
    writes(align, "import-align")
