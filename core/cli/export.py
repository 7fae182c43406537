"""`export`: completions as CSV/Parquet with their verdicts, preference pairs for DPO, or the HTML audit report."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from core.cli.common import (EXIT_OK, BadInput, add_selection_parser, chosen_judge, emit, open_store, output_path,
                             say_selection, selection_filters, stored_target_name)


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
    from core.files.export import completion_table, write_csv
    from core.run.progress import Meter

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
    from core.stats.comparison import CompareError
    from core.views import compare as paired

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
    from core.files import export

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
        from core.report.html import write_report

        judge = chosen_judge(args, store)
        payload = write_report(store, args.out, judge=judge, filters=filters,
                               comparison=_report_comparison(args, store, judge) if args.compare else None,
                               mitigation=_report_mitigation(args, store) if args.mitigation else None)
        text = f"wrote the audit report to {args.out} ({payload['models']} models, {payload['completions']} completions)"
    emit(args, {"path": str(args.out), "format": args.format, **payload, "selection": said}, text)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `export`."""
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
