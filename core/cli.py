"""`python -m core`: the headless interface for CI pipelines and scripts.

Exit codes: 0 ok, 2 bad input (the message says what and where), 1 failure (including a database
held by another process), 130 when stopped with Ctrl-C (the run resumes with --run-id).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core import taxonomy

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


class BadInput(ValueError):
    """Input the user must fix; printed without a traceback, exit code 2."""


def _csv_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, ensure_ascii=False, default=str) if args.json else text)


def _store(args: argparse.Namespace, readonly: bool = False):
    from core.store import Store

    return Store(args.db, readonly=readonly)


# -- probes ----------------------------------------------------------------------------------------
def cmd_probes_build(args: argparse.Namespace) -> int:
    from core.probes.builder import BUNDLED_PROBES, build_bundled
    from core.probes.loader import write_probes

    probes = build_bundled(seed=args.seed, per_cell=args.per_cell, controls_per_group=args.controls_per_group)
    out = Path(args.out or BUNDLED_PROBES)
    write_probes(out, probes)
    counts: dict[str, int] = {}
    for p in probes:
        counts[f"{p.language}/{p.kind}"] = counts.get(f"{p.language}/{p.kind}", 0) + 1
    _emit(args, {"path": str(out), "probes": len(probes), "by_language_kind": counts},
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
    added = _store(args).add_probes(result.probes)
    for problem in result.problems:
        print(f"skipped: {problem}", file=sys.stderr)
    _emit(args, {"file": str(args.file), "rows": result.rows, "valid": len(result.probes), "added": added,
                 "rejected": len(result.problems)},
          f"{args.file}: {result.rows} rows, {len(result.probes)} valid, {added} new probes stored, "
          f"{len(result.problems)} rejected")
    return EXIT_OK


# -- run -------------------------------------------------------------------------------------------
def _bundled_probes():
    from core.probes.builder import BUNDLED_PROBES
    from core.probes.loader import load_probes

    result = load_probes(BUNDLED_PROBES, default_source="builtin")
    if result.problems:
        raise BadInput("; ".join(str(p) for p in result.problems[:5]))
    return result.probes


def _resolve(args: argparse.Namespace, target_specs: Sequence[str], judge_names: Sequence[str]):
    from core.judges import resolve_judge
    from core.targets import resolve_target

    judges = [resolve_judge(name) for name in judge_names]
    targets = [resolve_target(spec, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                              temperature=args.temperature, seed=args.seed) for spec in target_specs]
    return targets, judges


def cmd_run(args: argparse.Namespace) -> int:
    from core.probes.selection import Selection, select
    from core.runner import execute_run, plan_run

    store = _store(args)
    judge_names = args.judges
    target_specs = args.target
    run = store.run(args.run_id) if args.run_id else None
    if run is None:
        try:
            selection = Selection(languages=tuple(args.languages), groups=tuple(args.groups),
                                  strategies=tuple(args.strategies), scenario_categories=tuple(args.categories),
                                  per_cell=args.per_cell, seed=args.seed)
        except taxonomy.VocabularyError as exc:
            raise BadInput(str(exc)) from None
        store.add_probes(_bundled_probes())
        candidates = store.probes({"language": selection.languages, "group": selection.groups,
                                   "strategy": selection.strategies,
                                   "scenario_category": selection.scenario_categories})
        if args.sources:
            candidates = [p for p in candidates if p.source in args.sources]
        probes = select(candidates, selection)
        if not probes:
            raise BadInput("the selection matches no probe; widen --languages/--groups/--strategies/--categories")
        config = {"selection": selection.to_dict(), "sources": args.sources,
                  "generation": {"max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
                                 "temperature": args.temperature, "seed": args.seed}}
        targets, judges = _resolve(args, target_specs, judge_names)
        run_id = plan_run(store, probes, target_specs, judge_names, config, args.run_id)
    else:
        run_id = run["run_id"]
        target_specs = run["config"]["targets"]
        judge_names = run["config"]["judges"]
        generation = run["config"]["generation"]
        args.max_new_tokens, args.batch_size = generation["max_new_tokens"], generation["batch_size"]
        args.temperature, args.seed = generation["temperature"], generation["seed"]
        print(f"resuming {run_id} with its stored configuration ({run['status']})", file=sys.stderr)
        targets, judges = _resolve(args, target_specs, judge_names)
    bar = _progress_bar(args)
    try:
        result = execute_run(store, run_id, targets, judges, batch_size=args.batch_size, on_progress=bar)
    finally:
        bar.close()
    counts = result.counts
    payload = {"run_id": run_id, "status": result.status, "added": result.added, **counts}
    _emit(args, payload,
          f"{run_id}: {result.status}; {counts['completions']}/{counts['planned']} completions "
          f"({result.added} new), {counts['verdicts']} verdicts, {counts['errors']} errors")
    if result.status == "stopped":
        print(f"stopped; resume with: python -m core run --run-id {run_id} --db {store.path}", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK if counts["completions"] == counts["planned"] and counts["errors"] < counts["completions"] \
        else EXIT_FAILURE


class _Bar:
    """A tqdm bar on stderr fed by the runner's progress callback (quiet when --quiet)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=progress.total, initial=progress.done, unit="probe", file=sys.stderr,
                            desc=progress.target_id, dynamic_ncols=True)
        self.bar.n = progress.done
        if progress.dr is not None:
            self.bar.set_postfix(dr=f"{progress.dr:.2f}", errors=progress.errors, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress_bar(args: argparse.Namespace) -> _Bar:
    return _Bar(enabled=not args.quiet)


def cmd_judge(args: argparse.Namespace) -> int:
    from core.judges import resolve_judge
    from core.runner import judge_run

    store = _store(args)
    if store.run(args.run_id) is None:
        raise BadInput(f"no run {args.run_id!r} in {store.path}")
    added = judge_run(store, args.run_id, [resolve_judge(name) for name in args.judges])
    counts = store.run_counts(args.run_id)
    _emit(args, {"run_id": args.run_id, "added": added, **counts},
          f"{args.run_id}: {added} verdicts added, {counts['verdicts']} in all")
    return EXIT_OK


# -- stats and export ------------------------------------------------------------------------------
def _filters(args: argparse.Namespace) -> dict[str, list[str]]:
    try:
        return {"model": args.models, "run_id": args.runs,
                "language": [taxonomy.canonical_language(v) for v in args.languages],
                "group": [taxonomy.canonical_group(v) for v in args.groups],
                "strategy": [taxonomy.canonical_strategy(v) for v in args.strategies],
                "kind": args.kinds}
    except taxonomy.VocabularyError as exc:
        raise BadInput(str(exc)) from None


def cmd_stats(args: argparse.Namespace) -> int:
    from core.metrics import DefenseRates, MetricsError

    frame = _store(args, readonly=True).judged(args.judge, _filters(args))
    try:
        rates = DefenseRates(frame, args.by)
    except MetricsError as exc:
        raise BadInput(str(exc)) from None
    rows = rates.records()
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(rates.table.to_string(index=False, float_format=lambda v: f"{v:.3f}") if rows else "no judged completions")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from core.export import write_csv

    rows = _store(args, readonly=True).completion_rows(_filters(args))
    written = write_csv(rows, args.out)
    _emit(args, {"path": str(args.out), "rows": written}, f"wrote {written} rows to {args.out}")
    return EXIT_OK


def cmd_dump(args: argparse.Namespace) -> int:
    counts = _store(args, readonly=True).dump(args.out)
    _emit(args, {"path": str(args.out), **counts}, f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    added = _store(args).restore(args.file)
    _emit(args, {"file": str(args.file), "added": added},
          f"restored {args.file}: " + ", ".join(f"{k} +{v}" for k, v in added.items()))
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    summary = _store(args, readonly=True).summary()
    _emit(args, summary, "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="For Whom: audit whose safety a model protects.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help="DuckDB file (default: $AUDIT_DB or data/audit.duckdb)")
    common.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--languages", type=_csv_list, default=[], help="e.g. en,pt")
    filters.add_argument("--groups", type=_csv_list, default=[], help="canonical group keys or known spellings")
    filters.add_argument("--strategies", type=_csv_list, default=[], help=", ".join(taxonomy.STRATEGIES))
    sub = parser.add_subparsers(dest="command", required=True)

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

    run = sub.add_parser("run", parents=[common, filters], help="send probes to targets, judge, store")
    run.add_argument("--target", type=_csv_list, default=["smollm2"], help="smollm2, local:PATH (comma-separated)")
    run.add_argument("--categories", type=_csv_list, default=[], help="scenario categories")
    run.add_argument("--sources", type=_csv_list, default=[], help="probe sources (builtin, mijabench, custom)")
    run.add_argument("--per-cell", type=int, default=None, help="probes per language x group x strategy")
    run.add_argument("--judges", type=_csv_list, default=["refusal"])
    run.add_argument("--run-id", default=None, help="resume this run, or name a new one")
    run.add_argument("--max-new-tokens", type=int, default=64)
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--temperature", type=float, default=0.0)
    run.add_argument("--seed", type=int, default=0, help="sampling and selection seed (recorded)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_run)

    judge = sub.add_parser("judge", parents=[common], help="add verdicts of judges to a stored run")
    judge.add_argument("--run-id", required=True)
    judge.add_argument("--judges", type=_csv_list, default=["refusal"])
    judge.set_defaults(func=cmd_judge)

    for name, func, helptext in (("stats", cmd_stats, "Defense Rates by any grouping"),
                                 ("export", cmd_export, "completions with verdicts as CSV")):
        p = sub.add_parser(name, parents=[common, filters], help=helptext)
        p.add_argument("--models", type=_csv_list, default=[])
        p.add_argument("--runs", type=_csv_list, default=[])
        p.add_argument("--kinds", type=_csv_list, default=["attack"] if name == "stats" else [])
        p.add_argument("--judge", default="refusal", help="whose verdicts (human verdicts always override)")
        p.set_defaults(func=func)
        if name == "stats":
            p.add_argument("--by", type=_csv_list, default=["model", "group"],
                           help="any of model, group, strategy, scenario_category, language, kind, run_id")
        else:
            p.add_argument("--out", required=True, type=Path)
            p.add_argument("--format", default="csv", choices=["csv"])

    dump = sub.add_parser("dump", parents=[common], help="write the whole database to a .jsonl.gz file")
    dump.add_argument("out", type=Path)
    dump.set_defaults(func=cmd_dump)
    restore = sub.add_parser("restore", parents=[common], help="load a dump into the database")
    restore.add_argument("file", type=Path)
    restore.set_defaults(func=cmd_restore)
    info = sub.add_parser("info", parents=[common], help="what the database holds")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from core.judges import UnknownJudge
    from core.probes.loader import ProbeFileError
    from core.store import StoreError
    from core.targets import TargetUnavailable, UnknownTarget

    args = build_parser().parse_args(argv)
    if args.command == "probes" and args.probes_command == "build":
        from core.probes import builder

        args.seed = builder.DEFAULT_SEED if args.seed is None else args.seed
        args.per_cell = builder.DEFAULT_PER_CELL if args.per_cell is None else args.per_cell
        args.controls_per_group = builder.DEFAULT_CONTROLS_PER_GROUP if args.controls_per_group is None \
            else args.controls_per_group
    try:
        return args.func(args)
    except (BadInput, ProbeFileError, UnknownJudge, UnknownTarget, taxonomy.VocabularyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreError, TargetUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED
