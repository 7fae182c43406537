"""`probes build` and `probes import`: the probe sets a run draws from."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import taxonomy
from core.cli.common import EXIT_BAD_INPUT, EXIT_OK, emit, open_store


def cmd_probes_build(args: argparse.Namespace) -> int:
    """Build the bundled probe set; an option left out takes core.probes.builder's default (read here, not in the
    parser, so `--help` does not import the builder)."""
    from core.probes import builder
    from core.probes.builder import BUNDLED_PROBES, build_bundled
    from core.probes.loader import write_probes

    args.seed = builder.DEFAULT_SEED if args.seed is None else args.seed
    args.per_cell = builder.DEFAULT_PER_CELL if args.per_cell is None else args.per_cell
    args.controls_per_group = builder.DEFAULT_CONTROLS_PER_GROUP if args.controls_per_group is None \
        else args.controls_per_group
    probes = build_bundled(seed=args.seed, per_cell=args.per_cell, controls_per_group=args.controls_per_group)
    out = Path(args.out or BUNDLED_PROBES)
    write_probes(out, probes)
    counts: dict[str, int] = {}
    for p in probes:
        counts[f"{p.language}/{p.kind}"] = counts.get(f"{p.language}/{p.kind}", 0) + 1
    emit(args, {"path": str(out), "probes": len(probes), "by_language_kind": counts},
         f"wrote {len(probes)} probes to {out} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})")
    return EXIT_OK


def cmd_probes_import(args: argparse.Namespace) -> int:
    from core.probes.loader import load_probes

    result = load_probes(args.file, default_source=args.source)
    if result.problems and not args.skip_bad_rows:
        for problem in result.problems[:50]:
            print(f"error: {problem}", file=sys.stderr)
        more = len(result.problems) - 50
        if more > 0:
            print(f"error: ... and {more} more", file=sys.stderr)
        print(f"error: {len(result.problems)} of {result.rows} rows rejected; nothing was imported "
              f"(fix them, or pass --skip-bad-rows to import the {len(result.probes)} good rows)", file=sys.stderr)
        return EXIT_BAD_INPUT
    added = open_store(args).add_probes(result.probes, result.taxonomy)
    for problem in result.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    emit(args, {"file": str(args.file), "rows": result.rows, "valid": len(result.probes), "added": added,
                "rejected": len(result.problems)},
         f"{args.file}: {result.rows} rows, {len(result.probes)} valid, {added} new probes stored, "
         f"{len(result.problems)} rejected")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `probes build` and `probes import`."""
    probes = sub.add_parser("probes", help="build or import probe sets").add_subparsers(dest="probes_command", required=True)
    build = probes.add_parser("build", parents=[common], help="build the bundled probe set from data/")
    build.add_argument("--seed", type=int, default=None)
    build.add_argument("--per-cell", type=int, default=None, help="attack probes per language x group x strategy")
    build.add_argument("--controls-per-group", type=int, default=None)
    build.add_argument("--out", default=None, help="default: data/probes/builtin.jsonl")
    build.set_defaults(func=cmd_probes_build)
    imp = probes.add_parser("import", parents=[common], help="store probes from a MiJaBench-layout file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", default="mijabench", choices=taxonomy.SOURCES)
    imp.add_argument("--skip-bad-rows", action="store_true", help="import the valid rows even if some are bad")
    imp.set_defaults(func=cmd_probes_import)
