"""`run`: send probes to targets, judge, store (core/run/); `run --plan` sizes an audit and writes nothing."""
from __future__ import annotations

import argparse
import json
import sys

from core.cli.common import (EXIT_FAILURE, EXIT_OK, EXIT_STOPPED, BadInput, csv_list, db_path, emit, id_option,
                             number_option, open_store, writes)
from core.judges import DEFAULT_JUDGES
from core.vocab import taxonomy


def _print_plan(args: argparse.Namespace, probes) -> int:
    """`run --plan`: per language, what the selection can show (core.views.disparity.plan); no run is made."""
    from core.views.disparity import plan

    table = plan(probes)
    if args.json:
        print(json.dumps({"probes": len(probes), "targets": list(args.target),
                          "languages": json.loads(table.to_json(orient="records"))}, ensure_ascii=False))
        return EXIT_OK
    print(f"{len(probes):,} probes per target ({', '.join(args.target)}); nothing is run. Per language: the gap groups "
          "with no true difference show at this size (noise_gap, its 95th percentile noise_gap_high) and the smallest "
          "true gap found with 80% power at 0.05 (detectable_gap), at DR 0.5.")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from core.probes.selection import Selection
    from core.run.request import RunRequest, candidate_probes
    from core.run.runner import build_run, execute_run, generation_of, plan_run

    if args.plan:  # reads only: a database that does not exist yet is not created (the bundled probes alone)
        store = open_store(args, readonly=True) if db_path(args).exists() else None
        if args.run_id:
            raise BadInput("--plan sizes a new selection; it does not take --run-id")
    else:
        store = open_store(args)
    judge_names = args.judges
    target_specs = args.target
    run = store.run(args.run_id) if args.run_id and store is not None else None
    if args.retry_errors and run is None:
        raise BadInput("--retry-errors re-sends the errors of a stored run: name it with --run-id"
                       + (f" ({args.run_id!r} is not in {store.path})" if args.run_id else ""))
    if run is None:
        # the population the store holds: its spellings are the valid ones
        vocabulary = store.taxonomy() if store is not None else taxonomy.DEFAULT
        try:
            selection = Selection(languages=tuple(map(vocabulary.canonical_language, args.languages)),
                                  groups=tuple(map(vocabulary.canonical_group, args.groups)),
                                  strategies=tuple(map(vocabulary.canonical_strategy, args.strategies)),
                                  scenario_categories=tuple(args.categories), per_cell=args.per_cell, seed=args.seed)
        except taxonomy.VocabularyError as exc:
            raise BadInput(str(exc)) from None
        # The same request the dashboard's Run page makes (core.run.request), so either resumes the other's runs.
        request = RunRequest(targets=tuple(target_specs), judges=tuple(judge_names), selection=selection,
                             sources=tuple(args.sources), max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, temperature=args.temperature, seed=args.seed,
                             probe_set=args.probe_set)
        probes = candidate_probes(store, request)
        if not probes:
            raise BadInput("the selection matches no probe; widen --languages/--groups/--strategies/--categories")
        if args.plan:
            return _print_plan(args, probes)
        config = request.config()
        targets, judges = build_run(store, {**config, "targets": target_specs, "judges": judge_names},
                                    args.max_concurrency)
        run_id = plan_run(store, probes, target_specs, judge_names, config, args.run_id)
    else:
        run_id = run["run_id"]
        args.batch_size = generation_of(run["config"])["batch_size"]
        print(f"resuming {run_id} with its stored configuration ({run['status']})", file=sys.stderr)
        targets, judges = build_run(store, run["config"], args.max_concurrency)
    from core.run import executors

    executed = executors.wrap(targets, args.executor, workers=args.ray_workers, address=args.ray_address)
    bar = _progress_bar(args)
    try:
        result = execute_run(store, run_id, executed, judges, batch_size=args.batch_size, on_progress=bar,
                             retry_errors=args.retry_errors)
    finally:
        bar.close()
        for target in executed:
            target.close()
        executors.shutdown()
    counts = result.counts
    payload = {"run_id": run_id, "status": result.status, "added": result.added, **counts,
               "pending": counts["planned"] - counts["completions"], "message": result.message}
    if args.retry_errors:
        payload.update(retried=result.retried, repaired=result.repaired)
    from core.run.cost import run_usage

    usage = run_usage(store, run_id, executed, args.price_input, args.price_output)
    if usage:  # API targets, or prices given: tokens, latency, retries, cost per target
        payload["usage"] = usage
        costs = [u["cost"] for u in usage]
        payload["cost"] = sum(costs) if all(c is not None for c in costs) else None
    emit(args, payload,
         f"{run_id}: {result.status}; {counts['completions']}/{counts['planned']} completions "
         f"({result.added} new), {counts['verdicts']} verdicts, {counts['errors']} errors"
         + (f"; {result.repaired} of {result.retried} errors retried now answered" if args.retry_errors else ""))
    if result.message:
        from core.redact import redact

        print(f"{'stopped' if result.status == 'stopped' else 'error'}: {redact(result.message)}", file=sys.stderr)
        return EXIT_FAILURE
    if result.status == "stopped":
        print(f"stopped; resume with: python -m core run --run-id {run_id} --db {store.path}", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK if counts["completions"] == counts["planned"] and counts["errors"] < counts["completions"] \
        else EXIT_FAILURE


class _Bar:
    """Run progress on stderr (core.run.progress: a live bar on a terminal, a line every 5% otherwise; nothing
    when --quiet), one meter per target, fed by the runner's progress callback, with the live DR and the ETA
    measured from the target (core.run.eta)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.meter = None
        self.target_id: str | None = None

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        from core.run.progress import Meter

        if self.meter is None or progress.target_id != self.target_id:
            self.close()
            self.meter = Meter(progress.target_id, total=progress.total, unit="probe")
            self.target_id = progress.target_id
        parts = [] if progress.dr is None else [f"dr {progress.dr:.2f}"]
        if progress.errors:
            parts.append(f"{progress.errors:,} errors")
        if progress.done < progress.total:
            parts.append(progress.estimate.text())
        self.meter.update(progress.done, progress.total, note=", ".join(parts))

    def close(self) -> None:
        if self.meter is not None:
            self.meter.close()
            self.meter = None


def _progress_bar(args: argparse.Namespace) -> _Bar:
    return _Bar(enabled=not args.quiet)


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `run`."""
    from core.judges import JUDGES
    from core.targets import TARGETS

    targets_help = f"{TARGETS.known()} or a saved target's name (comma-separated)"
    judges_help = f"comma-separated: {JUDGES.describe()}"

    run = sub.add_parser("run", parents=[common, filters], help="send probes to targets, judge, store")
    run.add_argument("--target", type=csv_list, default=["smollm2"], help=targets_help)
    run.add_argument("--categories", type=csv_list, default=[], help="scenario categories")
    run.add_argument("--sources", type=csv_list, default=[], help="probe sources (builtin, mijabench, custom)")
    number_option(run, "--per-cell", default=None, help="probes per language x group x strategy")
    run.add_argument("--probe-set", default="builtin", choices=["builtin", "counterfactual", "stored"],
                     help="builtin: the bundled matched-seed set; counterfactual: the bundled counterfactual set "
                          "(the same claim for every group); stored: only the probes already in the store")
    run.add_argument("--judges", type=csv_list, default=list(DEFAULT_JUDGES), help=judges_help)
    id_option(run, "--run-id", default=None, help="resume this run, or name a new one (an id: letters, digits, "
              "and . _ - : @)")
    run.add_argument("--retry-errors", action="store_true", help="with --run-id: also send again the probes whose "
                     "completion holds an error; each answer replaces its error in place (the error is kept in the "
                     "completion's history)")
    number_option(run, "--max-new-tokens", default=64)
    number_option(run, "--batch-size", default=16)
    number_option(run, "--temperature", default=0.0)
    number_option(run, "--seed", default=0, help="sampling and selection seed (recorded)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--plan", action="store_true", help="print what the selection can show (probes per group, noise "
                     "gap, detectable gap per language) and stop: no run is created")
    number_option(run, "--max-concurrency", default=None, help="API targets: requests in flight at once")
    number_option(run, "--price-input", default=None, help="cost estimate: price per 1M input tokens")
    number_option(run, "--price-output", default=None, help="cost estimate: price per 1M output tokens")
    run.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="ray: spread generation over a Ray cluster's workers (the driver stores the results)")
    run.add_argument("--ray-address", default=None, help="an existing Ray cluster (e.g. auto); default: start one here")
    number_option(run, "--ray-workers", default=None, help="Ray workers (default: one per CPU of the cluster)")
    run.set_defaults(func=cmd_run)
    writes(run, "run", read_only_ok=lambda args: args.plan)  # --plan reads only
