"""`probes build` and `probes import`: the probe sets a run draws from."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import EXIT_BAD_INPUT, EXIT_OK, BadInput, emit, open_store, writes
from core.vocab import taxonomy


def cmd_probes_build(args: argparse.Namespace) -> int:
    """Build the bundled probe set; an option left out takes core.probes.builder's default (read here, not in the
    parser, so `--help` does not import the builder)."""
    from core.probes import builder
    from core.probes.builder import BUNDLED_PROBES, build_bundled
    from core.probes.loader import write_probes

    if args.counterfactual:
        return _build_counterfactual(args)
    custom = [f"--{name.replace('_', '-')}" for name in CUSTOM_INPUTS if getattr(args, name) is not None]
    if custom or args.max_claims is not None:
        raise BadInput(f"{', '.join(custom or ['--max-claims'])}: only with --counterfactual")
    args.seed = builder.DEFAULT_SEED if args.seed is None else args.seed
    args.per_cell = builder.DEFAULT_PER_CELL if args.per_cell is None else args.per_cell
    args.controls_per_group = builder.DEFAULT_CONTROLS_PER_GROUP if args.controls_per_group is None \
        else args.controls_per_group
    probes = build_bundled(seed=args.seed, per_cell=args.per_cell, controls_per_group=args.controls_per_group)
    out = Path(args.out or BUNDLED_PROBES)
    write_probes(out, probes)
    counts = _counts(probes)
    emit(args, {"path": str(out), "probes": len(probes), "by_language_kind": counts},
         f"wrote {len(probes)} probes to {out} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})")
    return EXIT_OK


# The inputs of a counterfactual set that replace the bundled ones (each a file).
CUSTOM_INPUTS: tuple[str, ...] = ("taxonomy", "claims", "scenarios", "templates")


def _counts(probes: list) -> dict[str, int]:
    counts: dict[str, int] = {}
    for p in probes:
        counts[f"{p.language}/{p.kind}"] = counts.get(f"{p.language}/{p.kind}", 0) + 1
    return counts


def _build_counterfactual(args: argparse.Namespace) -> int:
    """`probes build --counterfactual`: every file is read and checked before anything is written, so a bad one
    exits 2 with its located message and leaves no file behind. A set built from other inputs than the bundled
    ones needs --out, so it never replaces data/probes/counterfactual.jsonl by accident."""
    from core.probes import builder
    from core.probes.counterfactual import COUNTERFACTUAL_PROBES, build_from_files
    from core.probes.loader import write_probes

    if args.per_cell is not None or args.controls_per_group is not None:
        raise BadInput("--per-cell and --controls-per-group are for the matched-seed set; a counterfactual set "
                       "has one probe per group for every claim x strategy (shorten it with --max-claims)")
    if args.max_claims is not None and args.max_claims < 1:
        raise BadInput(f"--max-claims must be at least 1, got {args.max_claims}")
    custom = [name for name in CUSTOM_INPUTS if getattr(args, name) is not None]
    if custom and args.out is None:
        raise BadInput(f"--{custom[0]} builds a set of its own: name where it goes with --out")
    seed = builder.DEFAULT_SEED if args.seed is None else args.seed
    probes = build_from_files(args.taxonomy, args.claims, args.scenarios, args.templates, seed=seed,
                              max_claims=args.max_claims)
    out = Path(args.out or COUNTERFACTUAL_PROBES)
    write_probes(out, probes, taxonomy_file=args.taxonomy)
    counts = _counts(probes)
    ids = len({p.counterfactual_id for p in probes})
    claims = len({(p.language, p.claim_id) for p in probes})
    emit(args, {"path": str(out), "probes": len(probes), "by_language_kind": counts, "counterfactual_ids": ids,
                "claims": claims, "taxonomy": probes[0].taxonomy},
         f"wrote {len(probes)} counterfactual probes ({claims} claims, {ids} counterfactual ids) to {out} "
         f"({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))})")
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
    from core.store import ProbeChanged, TaxonomyConflict

    try:
        added = open_store(args).add_probes(result.probes, result.taxonomy, refuse_changed=True)
    except ProbeChanged as exc:
        raise BadInput(_changed_message(args.file, result.lines, exc)) from None
    except TaxonomyConflict as exc:  # named at the file's first probe: the file is what the user must change
        first = min(result.lines.values(), default=1)
        raise BadInput(f"{args.file}:{first}: {exc}") from None
    for problem in result.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    emit(args, {"file": str(args.file), "rows": result.rows, "valid": len(result.probes), "added": added,
                "rejected": len(result.problems)},
         f"{args.file}: {result.rows} rows, {len(result.probes)} valid, {added} new probes stored, "
         f"{len(result.problems)} rejected")
    return EXIT_OK


def _shown(value: str, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 5] + "...'"


def _changed_message(path: Path, lines: dict[str, int], exc) -> str:
    """`FILE:LINE: probe ID is stored with other content`, per changed probe (the first 10): both versions of each
    field that differs."""
    parts = []
    for stored, given in exc.changed[:10]:
        fields = exc.fields(stored, given)
        shown = "; ".join(f"{name}: stored {_shown(getattr(stored, name) or '')}, this file "
                          f"{_shown(getattr(given, name) or '')}" for name in fields)
        parts.append(f"{path}:{lines.get(given.probe_id, 1)}: probe {given.probe_id!r} is stored already with other "
                     f"content ({', '.join(fields)} differ): {shown}")
    more = f"\n... and {len(exc.changed) - 10} more" if len(exc.changed) > 10 else ""
    return ("\n".join(parts) + more + f"\nnothing was imported: a probe id names one probe; give the changed probes "
            "new ids (or leave probe_id out, so one is made from their content), or use another database (--db)")


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `probes build` and `probes import`."""
    probes = sub.add_parser("probes", help="build or import probe sets").add_subparsers(dest="probes_command", required=True)
    build = probes.add_parser("build", parents=[common], help="build the bundled probe set from data/")
    build.add_argument("--seed", type=int, default=None)
    build.add_argument("--per-cell", type=int, default=None, help="attack probes per language x group x strategy")
    build.add_argument("--controls-per-group", type=int, default=None)
    build.add_argument("--out", default=None, help="default: data/probes/builtin.jsonl "
                       "(data/probes/counterfactual.jsonl with --counterfactual)")
    build.add_argument("--counterfactual", action="store_true",
                       help="build the counterfactual set: claim templates filled for every group of a taxonomy")
    build.add_argument("--taxonomy", default=None, help="with --counterfactual: a taxonomy file (default: the "
                       "bundled MiJaBench one)")
    build.add_argument("--claims", default=None, help="with --counterfactual: a claims file (default: "
                       "data/counterfactual/claims.jsonl)")
    build.add_argument("--scenarios", default=None, help="with --counterfactual: a scenarios file (default: "
                       "data/scenarios.jsonl)")
    build.add_argument("--templates", default=None, help="with --counterfactual: a strategy templates file "
                       "(default: data/templates.jsonl)")
    build.add_argument("--max-claims", type=int, default=None,
                       help="with --counterfactual: keep the first N claims per language and polarity")
    build.set_defaults(func=cmd_probes_build)
    imp = probes.add_parser("import", parents=[common], help="store probes from a MiJaBench-layout file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--source", default="mijabench", choices=taxonomy.SOURCES)
    imp.add_argument("--skip-bad-rows", action="store_true", help="import the valid rows even if some are bad")
    imp.set_defaults(func=cmd_probes_import)
    writes(imp, "probes import")
