"""`python -m core`: the headless interface for CI pipelines and scripts.

Exit codes: 0 ok, 2 bad input (the message says what and where), 1 failure (including a database
held by another process, and a run stopped because its target went away), 130 when stopped with Ctrl-C
(the run resumes with --run-id either way).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core import dimensions, taxonomy

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
def cmd_run(args: argparse.Namespace) -> int:
    from core.jobs import RunRequest, candidate_probes
    from core.probes.selection import Selection
    from core.runner import build_run, execute_run, generation_of, plan_run

    store = _store(args)
    judge_names = args.judges
    target_specs = args.target
    run = store.run(args.run_id) if args.run_id else None
    if args.retry_errors and run is None:
        raise BadInput("--retry-errors re-sends the errors of a stored run: name it with --run-id"
                       + (f" ({args.run_id!r} is not in {store.path})" if args.run_id else ""))
    if run is None:
        try:
            selection = Selection(languages=tuple(args.languages), groups=tuple(args.groups),
                                  strategies=tuple(args.strategies), scenario_categories=tuple(args.categories),
                                  per_cell=args.per_cell, seed=args.seed)
        except taxonomy.VocabularyError as exc:
            raise BadInput(str(exc)) from None
        # The same request the dashboard's Run page makes (core.jobs), so either resumes the other's runs.
        request = RunRequest(targets=tuple(target_specs), judges=tuple(judge_names), selection=selection,
                             sources=tuple(args.sources), max_new_tokens=args.max_new_tokens,
                             batch_size=args.batch_size, temperature=args.temperature, seed=args.seed)
        probes = candidate_probes(store, request)
        if not probes:
            raise BadInput("the selection matches no probe; widen --languages/--groups/--strategies/--categories")
        config = request.config()
        targets, judges = build_run(store, {**config, "targets": target_specs, "judges": judge_names},
                                    args.max_concurrency)
        run_id = plan_run(store, probes, target_specs, judge_names, config, args.run_id)
    else:
        run_id = run["run_id"]
        args.batch_size = generation_of(run["config"])["batch_size"]
        print(f"resuming {run_id} with its stored configuration ({run['status']})", file=sys.stderr)
        targets, judges = build_run(store, run["config"], args.max_concurrency)
    from core import executors

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
    from core.cost import run_usage

    usage = run_usage(store, run_id, executed, args.price_input, args.price_output)
    if usage:  # API targets, or prices given: tokens, latency, retries, cost per target
        payload["usage"] = usage
        costs = [u["cost"] for u in usage]
        payload["cost"] = sum(costs) if all(c is not None for c in costs) else None
    _emit(args, payload,
          f"{run_id}: {result.status}; {counts['completions']}/{counts['planned']} completions "
          f"({result.added} new), {counts['verdicts']} verdicts, {counts['errors']} errors"
          + (f"; {result.repaired} of {result.retried} errors retried now answered" if args.retry_errors else ""))
    if result.message:
        print(f"{'stopped' if result.status == 'stopped' else 'error'}: {result.message}", file=sys.stderr)
        return EXIT_FAILURE
    if result.status == "stopped":
        print(f"stopped; resume with: python -m core run --run-id {run_id} --db {store.path}", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK if counts["completions"] == counts["planned"] and counts["errors"] < counts["completions"] \
        else EXIT_FAILURE


class _Bar:
    """Run progress on stderr (core.progress: a live bar on a terminal, a line every 5% otherwise; nothing
    when --quiet), one meter per target, fed by the runner's progress callback, with the live DR and the ETA
    measured from the target (core.eta)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.meter = None
        self.target_id: str | None = None

    def __call__(self, progress) -> None:
        if not self.enabled:
            return
        from core.progress import Meter

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


# -- saved targets ---------------------------------------------------------------------------------
def cmd_targets_add(args: argparse.Namespace) -> int:
    """Save an OpenAI-compatible target by name: its server, model and settings, never its key."""
    import re

    from core.targets import BUILTIN_TARGETS
    from core.targets.openai import OpenAIConfig, default_target_id

    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", args.name) or args.name in BUILTIN_TARGETS:
        raise BadInput(f"target name {args.name!r}: use letters, digits, '.', '_' or '-' "
                       "(not smollm2 or gemma3-270m)")
    settings = {key: value for key, value in {
        "api_key_env": args.api_key_env, "endpoint": args.endpoint, "max_concurrency": args.max_concurrency,
        "requests_per_minute": args.rpm, "tokens_per_minute": args.tpm, "timeout_s": args.timeout,
        "max_retries": args.max_retries, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
        "price_input_per_m": args.price_input, "price_output_per_m": args.price_output,
        "outage_failures": args.outage_failures, "outage_window_s": args.outage_window}.items() if value is not None}
    try:
        config = OpenAIConfig.from_settings(args.model, args.base_url.rstrip("/"), settings)
    except ValueError as exc:
        raise BadInput(f"targets add {args.name}: {exc}") from None
    store = _store(args)
    existing = store.target(args.name)
    if existing and (existing["backend"], existing["model"], existing["base_url"]) != \
            ("openai", config.model, config.base_url):
        raise BadInput(f"a target {args.name!r} exists already ({existing['backend']} {existing['model']} "
                       f"{existing['base_url'] or ''}); its completions keep that name, so choose another")
    store.save_target(args.name, "openai", config.model, config.base_url, args.family, args.size_b, config.settings())
    _emit(args, {"target_id": args.name, "model": config.model, "base_url": config.base_url, **config.settings()},
          f"saved {args.name}: {config.model} at {config.base_url} (key from ${config.api_key_env}); "
          f"run it with --target {args.name} (same as openai:{config.model}@{config.base_url}, which would be "
          f"stored as {default_target_id(config.model, config.base_url)})")
    return EXIT_OK


def cmd_targets_list(args: argparse.Namespace) -> int:
    frame = _store(args, readonly=True).targets()
    rows = [{"target_id": r.target_id, "backend": r.backend, "model": r.model, "base_url": r.base_url,
             "family": r.family, "size_b": None if r.size_b != r.size_b else r.size_b,
             "settings": json.loads(r.settings or "{}")} for r in frame.itertuples()]
    lines = [f"{r['target_id']}\t{r['backend']}\t{r['model']}\t{r['base_url'] or ''}"
             + (f"\tkey ${r['settings']['api_key_env']}" if r["settings"].get("api_key_env") else "") for r in rows]
    _emit(args, rows, "\n".join(lines) if rows else "no targets saved or used yet")
    return EXIT_OK


def cmd_judge(args: argparse.Namespace) -> int:
    from core.judges import resolve_judges
    from core.runner import judge_run

    store = _store(args)
    if store.run(args.run_id) is None:
        raise BadInput(f"no run {args.run_id!r} in {store.path}")
    from core.progress import Meter

    judges = resolve_judges(args.judges, store)
    replaced = sum(store.drop_stale_verdicts(args.run_id, judge.name, judge.version)
                   for judge in judges) if args.rejudge else 0
    with Meter("judging", unit="completion", quiet=args.quiet) as meter:
        added = judge_run(store, args.run_id, judges, on_progress=meter.update)
    counts = store.run_counts(args.run_id)
    _emit(args, {"run_id": args.run_id, "added": added, "replaced": replaced, **counts},
          f"{args.run_id}: {added} verdicts added ({replaced} of older judge versions replaced), "
          f"{counts['verdicts']} in all")
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


def _judge(args: argparse.Namespace, store) -> str:
    """--judge, else the store's default judge (refusal, or the one with the most verdicts), said on stderr."""
    if args.judge:
        return args.judge
    chosen = store.default_judge()
    others = [name for name in store.judge_counts() if name not in (chosen, "human")]
    if others:
        print(f"using judge {chosen}; others in the store: {', '.join(others)} (pick with --judge)", file=sys.stderr)
    return chosen


def cmd_stats(args: argparse.Namespace) -> int:
    """DR per slice with 95% bootstrap CIs and each slice's deviation from its model's mean (see core.metrics)."""
    from core.metrics import DefenseRates, MetricsError

    store = _store(args, readonly=True)
    if args.estimator == "ppi":
        return _stats_corrected(args, store)
    frame = store.judged(_judge(args, store), _filters(args))
    try:
        rates = DefenseRates(frame, args.by, ci=not args.no_ci, resamples=args.resamples, seed=args.seed)
        table = rates.deviations(args.baseline, alpha=args.alpha, correction=args.correction)
    except MetricsError as exc:
        raise BadInput(str(exc)) from None
    rows = rates.records(table)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}") if rows else "no judged completions")
    return EXIT_OK


# Columns `compare` prints as text (--json gives every column, the 2x2 counts or the corrected inputs too).
COMPARE_TEXT_COLUMNS: tuple[str, ...] = ("language", "group", "strategy", "kind", "pairs", "base_dr", "cand_dr",
                                         "change", "ci_low", "ci_high", "p_value", "p_adjusted", "significant")


def _stored_target_name(name: str) -> str:
    """The target id a spec given to `run --target` is stored under (`smollm2`, `openai:MODEL@URL`), so a
    pipeline can name a version the way it ran it; any other name (a run id, a target id) as it is."""
    from core.targets import BUILTIN_TARGETS

    if name.startswith("openai:"):
        from core.targets.openai import default_target_id, parse_spec

        try:
            return default_target_id(*parse_spec(name))
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    return BUILTIN_TARGETS.get(name, name)


def cmd_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two versions on their shared probes (core.compare), or `--all` pairs' gap matrix;
    with --fail-on-regression / --fail-on-gap-increase, exit 1 when the gate fails (a CI regression gate)."""
    from core.analyses import compare as paired
    from core.analyses.compare import Side, all_pairs, resolve_side
    from core.compare import CompareError

    store = _store(args, readonly=True)
    judge = _judge(args, store)
    sides = store.run_target_counts()
    try:
        if args.all:
            chosen = sides[(sides["completions"] > 0) & ((sides["run_id"] == args.run_id) if args.run_id else True)]
            if len(chosen) < 2:
                raise CompareError(f"compare --all needs at least two (run, target) pairs with completions; "
                                   f"{store.path} has {len(chosen)}")
            ordered = sorted(zip(chosen["run_id"], chosen["target_id"]))  # base = the earlier of each pair by name
            matrix = all_pairs(store, [Side(r, t) for r, t in ordered], judge,
                               resamples=args.resamples, seed=args.seed, correction=args.correction, alpha=args.alpha)
            if args.json:
                print(matrix.to_json(orient="records"))
            else:
                print(f"Selective-safety gap, every pair (change = candidate gap - base gap; judge {judge})")
                print(matrix.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
            return EXIT_OK
        if not args.base or not args.candidate:
            raise BadInput("compare needs --base and --candidate (run ids or target ids), or --all")
        base = resolve_side(sides, _stored_target_name(args.base), args.run_id, "--base")
        candidate = resolve_side(sides, _stored_target_name(args.candidate), args.run_id, "--candidate")
        by = ["language", "group", *(["strategy"] if args.by_strategy else [])]
        compared = paired.compute(store, base, candidate, judge, by=by, correction=args.correction, alpha=args.alpha,
                                 resamples=args.resamples, seed=args.seed)
        if args.estimator == "ppi":
            fixed = paired.corrected(store, base, candidate, judge, by=by, min_human=args.min_human,
                                     correction=args.correction, alpha=args.alpha)
            if fixed is None:
                raise BadInput(f"--estimator ppi: neither {base.label} nor {candidate.label} has a labelled review "
                               "sample; draw one with `python -m core review sample --run-id RUN` and label it")
            compared.result = fixed
    except CompareError as exc:
        raise BadInput(str(exc)) from None
    result = compared.result
    gate = result.gate(args.fail_on_regression, args.fail_on_gap_increase, args.fail_on_over_refusal)
    gated = any(margin is not None for margin in (args.fail_on_regression, args.fail_on_gap_increase,
                                                  args.fail_on_over_refusal))
    if args.json:
        print(json.dumps({**compared.records(), "gate": {"failed": gate.failed, "reasons": gate.reasons}},
                         ensure_ascii=False))
    elif args.format == "md":
        print(result.markdown(gate if gated else None), end="")
    else:
        left = compared.left_out
        print(f"{candidate.label} against {base.label}: judge {judge}, {int(result.cells['pairs'].sum())} shared "
              f"probes (left out: {left['base_only_probes']} only in the base, {left['cand_only_probes']} only in "
              f"the candidate, {left['unreadable_pairs']} with an error or unreadable label)")
        for table in (result.cells, result.controls):
            shown = table[[c for c in COMPARE_TEXT_COLUMNS if c in table.columns]]
            print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        print(result.gaps.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        flagged = result.flagged()
        print(f"worse, significantly ({result.correction}): " + (", ".join(
            f"{r.language}/{r.group} {r.kind} {r.change:+.3f}" for r in flagged.itertuples()) or "none"))
        if gated:
            print("gate: FAILED" if gate.failed else "gate: passed")
    for reason in gate.reasons:
        print(f"regression: {reason}", file=sys.stderr)
    return EXIT_FAILURE if gate.failed else EXIT_OK


# Columns `stats --estimator ppi` prints as text (--json gives every column).
CORRECTED_TEXT_COLUMNS: tuple[str, ...] = ("n", "n_human", "dr", "ci_low", "ci_high", "dr_judge", "rectifier",
                                           "deviation", "dev_ci_low", "dev_ci_high", "significant", "note")


def _no_sample(store, what: str) -> BadInput:
    """The plain message for a selection without sample labels: what to run to get some."""
    return BadInput(f"{store.path}: no labelled review sample {what}; draw one with `python -m core review sample "
                    "--run-id RUN --fraction 0.05 --seed 0`, label it (the Review page, or `python -m core verdicts "
                    "export --sample` then `python -m core verdicts import FILE.csv`), then ask again "
                    "(or use --estimator judge)")


def _stats_corrected(args: argparse.Namespace, store) -> int:
    """`stats --estimator ppi`: every DR corrected by the review sample (core.ppi.CorrectedRates): dr, ci_low,
    ci_high, n, n_human, dr_judge, rectifier, note, and the deviations tested on the corrected estimates."""
    from core.estimates import estimate_label
    from core.metrics import MetricsError
    from core.ppi import CorrectedRates

    unknown = dimensions.unknown(args.by)
    if unknown:
        raise BadInput(f"--by {','.join(unknown)}: choose from {', '.join(dimensions.names())}")
    if args.min_human < 1:
        raise BadInput(f"--min-human {args.min_human}: give at least 1 label per cell")
    judge = _judge(args, store)
    population, sample = _labelled_sample(args, store, judge)
    try:
        rates = CorrectedRates(population, sample, args.by, power_tuning=args.power_tuning,
                               min_human=args.min_human)
        table = rates.deviations(args.baseline, alpha=args.alpha, correction=args.correction)
    except MetricsError as exc:
        raise BadInput(str(exc)) from None
    rows = rates.records(table)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    print(f"Defense Rates {estimate_label(len(sample))} (prediction-powered{', power-tuned' if args.power_tuning else ''}; "
          f"judge {judge}; cells with fewer than {args.min_human} labels are not corrected)")
    shown = table[[*args.by, *[c for c in CORRECTED_TEXT_COLUMNS if c in table.columns]]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    return EXIT_OK


def cmd_review_plan(args: argparse.Namespace) -> int:
    """How many human labels a cell needs (core.ppi.labels_needed_table), as a Markdown table or JSON: the sizing
    question before a review, answered by the same variance the corrected intervals use."""
    from core.ppi import PPIError, labels_needed_table

    try:
        table = labels_needed_table(args.accuracies, args.half_widths, power_tuning=args.power_tuning)
    except PPIError as exc:
        raise BadInput(str(exc)) from None
    if args.json:
        print(table.to_json(orient="records"))
        return EXIT_OK
    header = ["interval half-width", *[c.replace("accuracy", "judge accuracy") for c in table.columns[1:]]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.itertuples(index=False):
        lines.append(f"| ±{row[0]:.2f} | " + " | ".join(f"{int(v):,}" for v in row[1:]) + " |")
    print("\n".join(lines))
    return EXIT_OK


def _labelled_sample(args: argparse.Namespace, store, judge: str):
    """Store.ppi_inputs for --by and the filters: (population, sample), or BadInput naming `review sample` where
    the selection holds no labelled sample completion."""
    try:
        population, sample, _ = store.ppi_inputs(judge, args.by, _filters(args))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if not len(sample):
        raise _no_sample(store, "in this selection")
    return population, sample


def cmd_review_bias(args: argparse.Namespace) -> int:
    """The judge's error by group on the labelled review sample (core.ppi.judge_error): a judge that misses
    refusals more often for one group manufactures a disparity; this measures whether it does."""
    from core.estimates import judge_error_findings, p_text
    from core.ppi import PPIError, judge_error

    store = _store(args, readonly=True)
    judge = _judge(args, store)
    population, sample = _labelled_sample(args, store, judge)
    try:
        errors = judge_error(sample, by=args.by, population=population, alpha=args.alpha)
    except PPIError as exc:
        raise BadInput(str(exc)) from None
    findings = judge_error_findings(errors, judge)
    payload = {"judge": judge, "n_human": int(len(sample)), **errors.records(), "findings": findings}
    if args.json:
        print(json.dumps(payload, ensure_ascii=False))
        return EXIT_OK

    def rate(row, name: str) -> str:
        value = getattr(row, name)
        return "  -  " if value != value else \
            f"{value:.3f} [{getattr(row, name + '_ci_low'):.3f}, {getattr(row, name + '_ci_high'):.3f}]"

    lines = [f"judge {judge} against {len(sample):,} human checks of the review sample "
             "(rates weighted by the sample's inclusion probabilities, Wilson 95% intervals)",
             f"{' / '.join(args.by):<28} {'checks':>6}  {'false refusal':<22} {'false compliance':<22} {'accuracy':>8}"]
    for row in errors.table.itertuples(index=False):
        cell = " / ".join(str(getattr(row, name)) for name in args.by)
        lines.append(f"{cell:<28} {row.n_human:>6}  {rate(row, 'false_refusal'):<22} "
                     f"{rate(row, 'false_compliance'):<22} {row.accuracy:>8.3f}")
    for row in errors.tests.itertuples(index=False):
        where = ", ".join(f"{name} {getattr(row, name)}" for name in errors.tests.columns
                          if name not in ("rate", "groups", "errors", "n", "chi2", "df", "p_value", "p_adjusted",
                                          "differs"))
        shown = "no test (too few errors or groups)" if row.p_value != row.p_value else \
            f"chi2 {row.chi2:.2f}, df {row.df}, p {p_text(row.p_value)}, Holm p {p_text(row.p_adjusted)}" + (
                ": DIFFERS by group" if row.differs else "")
        lines.append(f"test {row.rate}{' (' + where + ')' if where else ''}: {shown}")
    lines += findings
    print("\n".join(lines))
    return EXIT_OK


def cmd_import_align(args: argparse.Namespace) -> int:
    """Stream a MiJaBench-Align file (responses and verdicts of many models) into the store."""
    from core.align import AlignFileError, import_align
    from core.progress import Meter

    store = _store(args)
    with Meter("import-align", unit="row", quiet=args.quiet) as meter:
        try:
            result = import_align(store, args.file, run_id=args.run_id, skip_bad_rows=args.skip_bad_rows,
                                  on_progress=lambda update: meter.update(update.rows, update.total))
        except AlignFileError as exc:
            raise BadInput(str(exc)) from None
    for problem in result.problems[:50]:
        print(f"{'skipped' if args.skip_bad_rows else 'error'}: {problem}", file=sys.stderr)
    if len(result.problems) > 50:
        print(f"... and {len(result.problems) - 50} more", file=sys.stderr)
    payload = {"file": str(args.file), "run_id": result.run_id, "status": result.status, "rows": result.rows,
               "stored_rows": result.stored_rows, "rejected": len(result.problems), "probes_added": result.probes_added,
               "completions_added": result.completions_added, "models": list(result.models),
               "judges": list(result.judges), "verdicts_read": result.verdicts}
    _emit(args, payload, f"{args.file}: {result.rows} rows, {result.stored_rows} stored ({result.completions_added} new "
                         f"completions of {len(result.models)} models, judges {', '.join(result.judges) or 'none'}) "
                         f"in run {result.run_id}; {len(result.problems)} rejected")
    if result.status == "rejected":
        print(f"error: {len(result.problems)} bad rows; storing stopped at the batch holding the first "
              f"({result.stored_rows} rows stored). Fix them and import again (stored rows are kept, none is "
              f"duplicated), or pass --skip-bad-rows to store every good row.", file=sys.stderr)
        return EXIT_BAD_INPUT
    if result.status == "stopped":
        print("stopped; run the same command again to finish the import", file=sys.stderr)
        return EXIT_STOPPED
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    if args.compare and args.format != "report":
        raise BadInput(f"--compare adds a section to the HTML report: use it with --format report, not {args.format}")
    if args.format != "csv":
        return _export_derived(args)
    from core.export import write_csv

    from core.progress import Meter

    rows = _store(args, readonly=True).completion_rows(_filters(args))
    with Meter("export", total=len(rows), unit="row", quiet=args.quiet) as meter:
        written = write_csv(rows, args.out, on_progress=meter.update)
    _emit(args, {"path": str(args.out), "rows": written}, f"wrote {written} rows to {args.out}")
    return EXIT_OK


def _report_comparison(args: argparse.Namespace, store, judge: str):
    """`export --format report --compare BASE CANDIDATE`: the paired comparison the report's section draws."""
    from core.analyses import compare as paired
    from core.compare import CompareError

    sides = store.run_target_counts()
    run_id = args.runs[0] if len(args.runs) == 1 else None
    try:
        base, candidate = (paired.resolve_side(sides, _stored_target_name(name), run_id, role)
                           for name, role in zip(args.compare, ("base", "candidate")))
        return paired.compute(store, base, candidate, judge)
    except CompareError as exc:
        raise BadInput(f"--compare: {exc}") from None


def _export_derived(args: argparse.Namespace) -> int:
    """Parquet (one row per completion), preference pairs (JSONL for DPO) or the HTML audit report."""
    from core import export

    store = _store(args, readonly=True)
    filters = _filters(args)
    if args.format == "parquet":
        payload: dict[str, Any] = {"rows": export.write_parquet(store.completion_rows(filters), args.out)}
        text = f"wrote {payload['rows']} rows to {args.out}"
    elif args.format == "pairs":
        judge = _judge(args, store)
        payload = export.write_pairs(store.judged(judge, filters, with_text=True), args.out,
                                     per_group=args.per_group, seed=args.seed, judge=judge)
        text = (f"wrote {payload['pairs']} preference pairs ({payload['per_group']} per group, "
                f"{len(payload['groups'])} groups) to {args.out}")
        if payload["groups_without_pairs"]:
            text += f"; no pair possible for {', '.join(payload['groups_without_pairs'])}"
    else:
        from core.report import write_report

        judge = _judge(args, store)
        payload = write_report(store, args.out, judge=judge, filters=filters,
                               comparison=_report_comparison(args, store, judge) if args.compare else None)
        text = f"wrote the audit report to {args.out} ({payload['models']} models, {payload['completions']} completions)"
    _emit(args, {"path": str(args.out), "format": args.format, **payload}, text)
    return EXIT_OK


# -- review sample and human verdicts (core/review.py draws the sample) ---------------------------------
def _existing_store(args: argparse.Namespace, readonly: bool = False, run_id: str | None = None):
    """The store at --db, which must exist: a command about a run or its labels never creates an empty file.
    With `run_id`, that run must exist in it too."""
    from core.store import DEFAULT_DB

    path = Path(args.db or os.environ.get("AUDIT_DB") or DEFAULT_DB)
    if not path.exists():
        raise BadInput(f"{path}: no such database (give --db, or run an audit first)")
    store = _store(args, readonly=readonly)
    if run_id and store.run(run_id) is None:
        raise BadInput(f"--run-id {run_id}: no such run in {store.path}")
    return store


def _table(frame, columns: Sequence[str]) -> str:
    """A plain text table of these columns (a stratum per line)."""
    return frame[list(columns)].to_string(index=False) if len(frame) else "(none)"


def cmd_review_sample(args: argparse.Namespace) -> int:
    """Draw (or enlarge) a run's stratified random review sample; prints the counts per stratum."""
    from core.review import STRATA, ReviewError, check_size

    try:
        check_size(args.per_cell, args.fraction)
    except ReviewError as exc:
        raise BadInput(f"review sample: {exc}") from None
    store = _existing_store(args)
    if store.run(args.run_id) is None:
        raise BadInput(f"--run-id {args.run_id}: no such run in {store.path} (`python -m core info` lists what "
                       "it holds); nothing was drawn")
    try:
        result = store.draw_review_sample(args.run_id, per_cell=args.per_cell, fraction=args.fraction,
                                          seed=args.seed, replace=args.replace)
    except ReviewError as exc:
        raise BadInput(f"review sample --run-id {args.run_id}: {exc}; nothing was drawn") from None
    import pandas as pd

    strata = pd.DataFrame(result["strata"])
    size = f"--per-cell {args.per_cell}" if args.per_cell is not None else f"--fraction {args.fraction}"
    text = (f"{args.run_id}: draw {result['draw']} ({size}, seed {args.seed}"
            f"{', replacing the previous sample' if args.replace else ''}): {result['added']} completions added, "
            f"{result['sampled']} of {result['completions']} sampled in {len(strata)} strata\n"
            + _table(strata, [c for c in STRATA if c != "run_id"] + ["completions", "sampled", "added"])
            + "\nlabel them on the Review page, or: python -m core verdicts export --sample --run-id "
            f"{args.run_id} --out sheet.csv, then python -m core verdicts import sheet.csv --annotator NAME")
    _emit(args, result, text)
    return EXIT_OK


def cmd_review_status(args: argparse.Namespace) -> int:
    """Per stratum: completions, sampled, labelled (of every run with a sample, or of --run-id)."""
    store = _existing_store(args, readonly=True, run_id=args.run_id)
    progress = store.review_progress(args.run_id)
    rows = json.loads(progress.to_json(orient="records"))
    if progress.empty:
        text = (f"no review sample{' for ' + args.run_id if args.run_id else ''} in {store.path}; draw one with "
                "python -m core review sample --run-id RUN --fraction 0.05 --seed 0")
    else:
        totals = progress.groupby("run_id")[["completions", "sampled", "labelled"]].sum()
        text = "\n".join(f"{run}: {int(t.labelled)} of {int(t.sampled)} sampled completions labelled "
                         f"({int(t.completions)} completions)" for run, t in totals.iterrows())
        text += "\n" + _table(progress, ["run_id", "model", "language", "group", "kind", "completions",
                                         "sampled", "labelled"])
    _emit(args, rows, text)
    return EXIT_OK


def cmd_verdicts_export(args: argparse.Namespace) -> int:
    """The review sample as a spreadsheet-safe labelling sheet (CSV), to a file or stdout."""
    from core.export import write_csv

    store = _existing_store(args, readonly=True, run_id=args.run_id)
    sheet = store.sample_sheet(args.run_id)
    if sheet.empty:
        raise BadInput(f"no review sample{' for ' + args.run_id if args.run_id else ''} in {store.path}; draw one "
                       "first: python -m core review sample --run-id RUN --fraction 0.05 --seed 0")
    labelled = int((sheet["label"] != "").sum())
    if args.out is None:
        write_csv(sheet, sys.stdout)
        print(f"{len(sheet)} sampled completions ({labelled} labelled), in queue order", file=sys.stderr)
        return EXIT_OK
    written = write_csv(sheet, args.out)
    _emit(args, {"path": str(args.out), "rows": written, "labelled": labelled},
          f"wrote {written} sampled completions ({labelled} labelled) to {args.out}: fill `label` (refused or "
          "complied) from the top down, without skipping (the queue order is random, so any top part stays a "
          f"random sample), then: python -m core verdicts import {args.out} --annotator NAME")
    return EXIT_OK


def _unescaped(value: str) -> str:
    """Undo core.export's formula neutralising (a leading apostrophe before = + - @), so a note read back from
    an exported sheet equals the stored one and a re-import changes nothing."""
    from core.export import FORMULA_PREFIXES

    return value[1:] if value.startswith("'") and value[1:2] and value[1:].startswith(FORMULA_PREFIXES) else value


def _read_label_sheet(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, completion_id, label, note) per row of a CSV with columns completion_id, label[, note].

    Line numbers are those a text editor shows (a quoted cell may span lines: a row is named by its first).
    Blank rows are skipped; a missing column or unreadable file is BadInput located at the file.
    """
    import csv

    try:
        handle = path.open(newline="", encoding="utf-8-sig")  # -sig: spreadsheets write a byte-order mark
    except OSError as exc:
        raise BadInput(f"{path}: cannot read it: {exc.strerror}") from None
    rows: list[tuple[int, str, str, str]] = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise BadInput(f"{path}:1: empty file; expected a header row with completion_id, label (and "
                               "optionally note)")
            names = [name.strip().lower() for name in header]
            missing = [name for name in ("completion_id", "label") if name not in names]
            if missing:
                raise BadInput(f"{path}:1: missing column {', '.join(missing)} (the header has "
                               f"{', '.join(map(repr, header)) or 'nothing'}; needed: completion_id, label, "
                               "optional note)")
            where = {name: names.index(name) for name in ("completion_id", "label", "note") if name in names}
            start = reader.line_num + 1
            for record in reader:
                line, start = start, reader.line_num + 1
                if not any(cell.strip() for cell in record):
                    continue

                def cell(name: str) -> str:
                    index = where.get(name)
                    return _unescaped(record[index]) if index is not None and index < len(record) else ""

                rows.append((line, cell("completion_id"), cell("label"), cell("note")))
        except csv.Error as exc:
            raise BadInput(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None
        except UnicodeDecodeError:
            raise BadInput(f"{path}:{reader.line_num + 1}: not UTF-8 text (save the sheet as CSV UTF-8)") from None
    return rows


def cmd_verdicts_import(args: argparse.Namespace) -> int:
    """Store human labels from a CSV (completion_id, label, note): all rows or none, idempotent."""
    from core.store import VerdictImportError

    rows = _read_label_sheet(args.file)
    store = _existing_store(args)
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
    _emit(args, {"file": str(args.file), **result}, text)
    return EXIT_OK


def cmd_dump(args: argparse.Namespace) -> int:
    counts = _store(args, readonly=True).dump(args.out)
    _emit(args, {"path": str(args.out), **counts}, f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return EXIT_OK


def cmd_restore(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.if_empty:  # `make run`: the demo goes into a missing or empty database, never into one with results
        held = store.summary()["completions"]
        if held:
            _emit(args, {"file": str(args.file), "added": {}, "kept": str(store.path), "completions": held},
                  f"{store.path} holds {held:,} completions: left as it is (the demo is restored only into a "
                  "missing or empty database)")
            return EXIT_OK
    added = store.restore(args.file)
    _emit(args, {"file": str(args.file), "added": added},
          f"restored {args.file}: " + ", ".join(f"{k} +{v}" for k, v in added.items()))
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    summary = _store(args, readonly=True).summary()
    _emit(args, summary, "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return EXIT_OK


def cmd_judge_eval(args: argparse.Namespace) -> int:
    from core.calibration import LabelFileError, evaluate, human_labels, load_labels
    from core.judges import resolve_judges

    if args.db is not None:
        store = _store(args, readonly=True)
        items = human_labels(store)
        source = f"{store.path} (human verdicts)"
        if not items:
            raise BadInput(f"{store.path}: no human verdicts (refused/complied) to score against; set some on the "
                           "Drill-down page first")
    else:
        try:
            items = load_labels(args.labels)
        except LabelFileError as exc:
            raise BadInput(str(exc)) from None
        source = str(args.labels)
    judges = resolve_judges(args.judges, max_new_tokens=args.max_new_tokens)
    for judge in judges:  # a learned judge scored on its own training labels is not being tested
        trained_on = getattr(judge, "trained_on", None)
        if args.labels is not None and trained_on is not None and trained_on(args.labels):
            print(f"warning: {judge.name} was fitted on {args.labels}, so its score here is not held out; its "
                  "file's `evaluation` has the figures from when this file was left out", file=sys.stderr)
    from core.progress import Meter

    with Meter("judging", total=len(items), unit="item", quiet=args.quiet) as meter:
        result = evaluate(items, judges, batch_size=args.batch_size, on_progress=meter.update)
    payload = {"file": source, "n": len(items), **result.as_dict()}

    def pct(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:5.3f}"

    lines = [f"{source}: {len(items)} labelled completions",
             f"{'judge':<28} {'acc':>6} {'kappa':>6} {'P(ref)':>6} {'R(ref)':>6} {'unparsed':>8}"]
    for s in result.scores:
        lines.append(f"{s.judge:<28} {pct(s.accuracy):>6} {pct(s.kappa):>6} {pct(s.precision_refused):>6} "
                     f"{pct(s.recall_refused):>6} {s.unparsed:>8}")
        matrix = s.confusion
        lines.append(f"    gold refused -> {matrix['refused']}; gold complied -> {matrix['complied']}")
    for language, scores in result.by_language.items():
        lines.append(f"  {language}: " + ", ".join(f"{s.judge} acc {pct(s.accuracy)} kappa {pct(s.kappa)} (n={s.n})"
                                                  for s in scores))
    for row in result.agreement.itertuples():
        lines.append(f"  agreement {row.judge_a} ~ {row.judge_b}: {pct(row.agreement)} (kappa {pct(row.kappa)}, "
                     f"n={row.n})")
    _emit(args, payload, "\n".join(lines))
    return EXIT_OK


def cmd_judge_train(args: argparse.Namespace) -> int:
    """Fit the learned judge on human labels, score it per source and language next to `refusal` (grouped CV
    and leave-one-source-out, see core/judges/training.py), say whether it may become the default, write it."""
    from core.calibration import LabelFileError
    from core.judges.training import PROJECT_LABELS, format_table, human_source, load_source, train, write_model

    try:
        sources = []
        if str(args.training_set).lower() != "none":
            sources.append(load_source(args.training_set, mode="cv", training_only=True))
        if args.db is not None:
            store = _store(args, readonly=True)
            human = human_source(store)
            if human is None:
                raise BadInput(f"{store.path}: no human verdicts (refused/complied) to train on")
            sources.append(human)
        for path in [*args.labels, *([] if args.no_project_labels else PROJECT_LABELS)]:
            sources.append(load_source(path))
    except LabelFileError as exc:
        raise BadInput(str(exc)) from None
    if not sources:
        raise BadInput("nothing to train on: give --labels, --db or a --training-set other than none")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise BadInput(f"the same labels file is given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    say = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    try:
        result = train(sources, seed=args.seed, on_progress=say)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    out = Path(args.out)
    version = write_model(result.model, out)
    size = out.stat().st_size
    payload = {"out": str(out), "judge": f"learned:{out}", "version": version, "bytes": size,
               "training": result.model["training"], "evaluation": result.table, "decision": result.decision}
    lines = [format_table(result.table), "", *result.decision["per_language"], result.decision["summary"],
             f"wrote {out} ({size:,} bytes, version {version}); use it with --judges learned:{out}"]
    _emit(args, payload, "\n".join(lines))
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from core.judges import JUDGES
    from core.targets import TARGETS

    targets_help = f"{TARGETS.known()} or a saved target's name (comma-separated)"
    judges_help = f"comma-separated: {JUDGES.describe()}"
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
    run.add_argument("--target", type=_csv_list, default=["smollm2"], help=targets_help)
    run.add_argument("--categories", type=_csv_list, default=[], help="scenario categories")
    run.add_argument("--sources", type=_csv_list, default=[], help="probe sources (builtin, mijabench, custom)")
    run.add_argument("--per-cell", type=int, default=None, help="probes per language x group x strategy")
    run.add_argument("--judges", type=_csv_list, default=["refusal"], help=judges_help)
    run.add_argument("--run-id", default=None, help="resume this run, or name a new one")
    run.add_argument("--retry-errors", action="store_true", help="with --run-id: also send again the probes whose "
                     "completion holds an error; each answer replaces its error in place (the error is kept in the "
                     "completion's history)")
    run.add_argument("--max-new-tokens", type=int, default=64)
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--temperature", type=float, default=0.0)
    run.add_argument("--seed", type=int, default=0, help="sampling and selection seed (recorded)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--max-concurrency", type=int, default=None, help="API targets: requests in flight at once")
    run.add_argument("--price-input", type=float, default=None, help="cost estimate: price per 1M input tokens")
    run.add_argument("--price-output", type=float, default=None, help="cost estimate: price per 1M output tokens")
    run.add_argument("--executor", default="local", choices=["local", "ray"],
                     help="ray: spread generation over a Ray cluster's workers (the driver stores the results)")
    run.add_argument("--ray-address", default=None, help="an existing Ray cluster (e.g. auto); default: start one here")
    run.add_argument("--ray-workers", type=int, default=None, help="Ray workers (default: one per CPU of the cluster)")
    run.set_defaults(func=cmd_run)

    targets = sub.add_parser("targets", help="save and list targets").add_subparsers(dest="targets_command",
                                                                                      required=True)
    add = targets.add_parser("add", parents=[common], help="save an OpenAI-compatible target by name (no secrets)")
    add.add_argument("name")
    add.add_argument("--model", required=True, help="the model name the server knows")
    add.add_argument("--base-url", default="https://api.openai.com/v1", help="e.g. http://127.0.0.1:8000/v1")
    add.add_argument("--api-key-env", default=None,
                     help="NAME of the environment variable holding the key (default OPENAI_API_KEY)")
    add.add_argument("--endpoint", default=None, choices=["chat", "completions"])
    add.add_argument("--max-concurrency", type=int, default=None)
    add.add_argument("--rpm", type=float, default=None, help="requests per minute allowed")
    add.add_argument("--tpm", type=float, default=None, help="tokens per minute allowed")
    add.add_argument("--timeout", type=float, default=None, help="seconds for one request")
    add.add_argument("--max-retries", type=int, default=None)
    add.add_argument("--max-new-tokens", type=int, default=None)
    add.add_argument("--temperature", type=float, default=None)
    add.add_argument("--price-input", type=float, default=None, help="price per 1M input tokens")
    add.add_argument("--price-output", type=float, default=None, help="price per 1M output tokens")
    add.add_argument("--outage-failures", type=int, default=None, help="consecutive connection failures (or the "
                     "same 5xx) after which the server counts as gone and the run stops (default: 2 x concurrency, "
                     "at least 8)")
    add.add_argument("--outage-window", type=float, default=None, help="seconds those failures must span before "
                     "the run stops (default 20)")
    add.add_argument("--family", default=None)
    add.add_argument("--size-b", type=float, default=None, help="parameters in billions")
    add.set_defaults(func=cmd_targets_add)
    listing = targets.add_parser("list", parents=[common], help="saved targets and targets used in runs")
    listing.set_defaults(func=cmd_targets_list)

    judge = sub.add_parser("judge", parents=[common], help="add verdicts of judges to a stored run")
    judge.add_argument("--run-id", required=True)
    judge.add_argument("--judges", type=_csv_list, default=["refusal"], help=judges_help)
    judge.add_argument("--rejudge", action="store_true", help="first delete verdicts these judges gave in an "
                       "older version (their rules or prompt changed), so the current version judges them again")
    judge.add_argument("--quiet", action="store_true", help="no progress")
    judge.set_defaults(func=cmd_judge)

    judge_eval = sub.add_parser("judge-eval", help="score judges against a hand-labelled CSV "
                                "(prompt, completion, label; optional id, language, kind) or a store's human verdicts")
    gold = judge_eval.add_mutually_exclusive_group(required=True)
    gold.add_argument("--labels", type=Path, help="CSV; label: refused/complied, 1/0 or "
                      "XSTest's 1_full_compliance, 2_full_refusal, 3_partial_refusal (partial = complied)")
    gold.add_argument("--db", default=None, help="DuckDB file: run the judges on the completions people "
                      "labelled there (human verdicts) and score them against those labels")
    judge_eval.add_argument("--judges", type=_csv_list, default=["refusal"], help=judges_help)
    judge_eval.add_argument("--batch-size", type=int, default=16)
    judge_eval.add_argument("--max-new-tokens", type=int, default=None,
                            help="longest answer of an llm: judge (default 8 for a local model, whose answer is prefilled up to the class value; 160 otherwise)")
    judge_eval.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    judge_eval.add_argument("--quiet", action="store_true", help="no progress bar")
    judge_eval.set_defaults(func=cmd_judge_eval)

    root = Path(__file__).resolve().parent.parent
    judge_train = sub.add_parser("judge-train", help="fit the learned judge (learned:FILE) on human labels and score "
                                 "it next to refusal per source and language (grouped CV, leave-one-source-out)")
    judge_train.add_argument("--out", type=Path, default=root / "data" / "judges" / "learned.json",
                             help="model file to write (default data/judges/learned.json; the shipped model is "
                             "data/judges/learned-gptfuzz.json, made with the defaults)")
    judge_train.add_argument("--db", default=None, help="DuckDB file whose human verdicts join the training data")
    judge_train.add_argument("--labels", type=Path, nargs="+", action="extend", default=[],
                             help="more labels CSVs (prompt, completion, label; optional id, language, kind); each "
                             "is scored by leaving it out, then used in the final fit")
    judge_train.add_argument("--training-set", default=str(root / "data" / "judge_training" / "gptfuzz_train.csv.gz"),
                             help="the large training set, scored by grouped CV (default: the shipped GPTFuzz copy; "
                             "none to leave it out)")
    judge_train.add_argument("--no-project-labels", action="store_true",
                             help="leave out the project's labelled files tests/data/{judge_eval_labels,"
                             "judge_eval_fresh,refusal_labels}.csv (by default each is scored left out, then trained on)")
    judge_train.add_argument("--seed", type=int, default=0, help="CV fold assignment and solver seed")
    judge_train.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    judge_train.add_argument("--quiet", action="store_true", help="no progress lines")
    judge_train.set_defaults(func=cmd_judge_train)

    for name, func, helptext in (("stats", cmd_stats, "Defense Rates by any grouping"),
                                 ("export", cmd_export, "completions as CSV/Parquet, preference pairs, audit report")):
        p = sub.add_parser(name, parents=[common, filters], help=helptext)
        p.add_argument("--models", type=_csv_list, default=[])
        p.add_argument("--runs", type=_csv_list, default=[])
        p.add_argument("--kinds", type=_csv_list, default=["attack"] if name == "stats" else [])
        p.add_argument("--judge", default=None, help="whose verdicts (human verdicts always override); default: "
                       "refusal, or the judge with the most verdicts where the store has no refusal verdicts")
        p.set_defaults(func=func)
        if name == "stats":
            p.add_argument("--by", type=_csv_list, default=["model", "group"],
                           help=f"any of {', '.join(dimensions.names())}")
            p.add_argument("--baseline", type=_csv_list, default=None,
                           help="columns of --by whose mean a slice deviates from (default: model, language, "
                                "run_id, kind among --by; '' = the whole selection)")
            p.add_argument("--no-ci", action="store_true", help="skip the bootstrap intervals")
            p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of prompts")
            p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
            p.add_argument("--alpha", type=float, default=0.05, help="significance level after correction")
            p.add_argument("--correction", default="holm", choices=["holm", "fdr_bh"],
                           help="multiple-comparison correction over the slices")
            p.add_argument("--estimator", default="judge", choices=["judge", "ppi"],
                           help="judge: the judge's DR (human verdicts override); ppi: corrected by the labelled "
                                "review sample (prediction-powered: dr, ci_low, ci_high, n, n_human, dr_judge, "
                                "rectifier), see `review sample`")
            p.add_argument("--power-tuning", action="store_true",
                           help="ppi: weight the judge term per cell (PPI++): never wider, narrower where the "
                                "judge is good")
            p.add_argument("--min-human", type=int, default=10,
                           help="ppi: cells with fewer sample labels get no corrected DR (their note says so)")
        else:
            p.add_argument("--out", required=True, type=Path)
            p.add_argument("--format", default="csv", choices=["csv", "parquet", "pairs", "report"],
                           help="csv/parquet: one row per completion; pairs: JSONL preference pairs for DPO; "
                                "report: a self-contained HTML audit report")
            p.add_argument("--per-group", type=int, default=None,
                           help="pairs: at most this many per group (default: as many as the scarcest group has)")
            p.add_argument("--seed", type=int, default=0, help="pairs: which refusal and jailbreak are paired")
            p.add_argument("--quiet", action="store_true", help="no progress")
            p.add_argument("--compare", nargs=2, metavar=("BASE", "CANDIDATE"), default=None,
                           help="report: add a paired comparison of two versions (run ids, target ids or "
                                "--target specs; with one --runs value, targets are taken from that run)")

    align = sub.add_parser("import-align", parents=[common], help="store a MiJaBench-Align file (responses + verdicts)")
    align.add_argument("file", type=Path, help=".parquet, .arrow, .csv, .tsv or .jsonl")
    align.add_argument("--run-id", default=None, help="default: align-<file name>")
    align.add_argument("--skip-bad-rows", action="store_true", help="store the good rows even if some are bad")
    align.add_argument("--quiet", action="store_true", help="no progress bar")
    align.set_defaults(func=cmd_import_align)

    review = sub.add_parser("review", help="the human review sample that corrects every Defense Rate") \
        .add_subparsers(dest="review_command", required=True)
    draw = review.add_parser("sample", parents=[common], help="draw (or enlarge) a run's stratified random sample "
                             "for people to label (strata: model x language x group x kind)")
    draw.add_argument("--run-id", required=True)
    size = draw.add_mutually_exclusive_group(required=True)
    size.add_argument("--per-cell", type=int, default=None, help="completions per stratum (all where fewer)")
    size.add_argument("--fraction", type=float, default=None,
                      help="share of each stratum in (0, 1], rounded up (every stratum gets at least one)")
    draw.add_argument("--seed", type=int, required=True, help="the random draw's seed (recorded with the sample)")
    draw.add_argument("--replace", action="store_true", help="draw the run's sample anew instead of enlarging it "
                      "(needed when the run gained completions since; human verdicts are kept)")
    draw.set_defaults(func=cmd_review_sample)
    status = review.add_parser("status", parents=[common], help="per stratum: completions, sampled, labelled")
    status.add_argument("--run-id", default=None)
    status.set_defaults(func=cmd_review_status)
    bias = review.add_parser("bias", parents=[common, filters], help="the judge's errors by group, measured on the "
                             "labelled review sample: false-refusal / false-compliance rates with CIs, tests")
    bias.add_argument("--by", type=_csv_list, default=["language", "group"],
                      help="cells of the error table; the test compares groups within the other columns")
    bias.add_argument("--models", type=_csv_list, default=[])
    bias.add_argument("--runs", type=_csv_list, default=[])
    bias.add_argument("--kinds", type=_csv_list, default=["attack"])
    bias.add_argument("--judge", default=None, help="whose errors (default as for stats)")
    bias.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm's correction")
    bias.set_defaults(func=cmd_review_bias)
    plan = review.add_parser("plan", help="human labels per cell needed for an interval half-width at a judge "
                             "accuracy (the README's table)")
    plan.add_argument("--accuracies", type=lambda v: [float(x) for x in _csv_list(v)], default=[0.70, 0.80, 0.90, 0.95])
    plan.add_argument("--half-widths", type=lambda v: [float(x) for x in _csv_list(v)], default=[0.05, 0.10, 0.15])
    plan.add_argument("--power-tuning", action="store_true", help="with the power-tuned estimator (PPI++)")
    plan.add_argument("--json", action="store_true", help="print one JSON value instead of a table")
    plan.set_defaults(func=cmd_review_plan)

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

    compare = sub.add_parser("compare", parents=[common], help="paired comparison of two versions on their shared "
                             "probes (DR change per group with McNemar tests; a regression gate for CI)")
    compare.add_argument("--base", default=None, help="the old version: a run id, a target id, or the --target "
                         "spec it ran as (smollm2, openai:MODEL@URL)")
    compare.add_argument("--candidate", default=None, help="the new version: a run id, a target id, or the "
                         "--target spec it ran as")
    compare.add_argument("--run-id", default=None, help="the run to take a target's completions from, when it "
                         "has several")
    compare.add_argument("--all", action="store_true", help="every pair of (run, target): the matrix of gap changes")
    compare.add_argument("--judge", default=None, help="whose verdicts (default: the store's default judge); "
                         "human verdicts override it")
    compare.add_argument("--by-strategy", action="store_true", help="cells per language x group x strategy")
    compare.add_argument("--estimator", choices=["judge", "ppi"], default="judge",
                         help="ppi: compare the Defense Rates corrected by the review sample (both sides need "
                              "labels; the change's interval treats the two corrected estimates as independent, "
                              "so it is conservative)")
    compare.add_argument("--min-human", type=int, default=10, help="ppi: fewest labels per cell and side")
    compare.add_argument("--correction", choices=["holm", "fdr_bh"], default="holm")
    compare.add_argument("--alpha", type=float, default=0.05)
    compare.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples for the gap's CI")
    compare.add_argument("--seed", type=int, default=0)
    compare.add_argument("--format", choices=["text", "md"], default="text", help="md: a table for a pull request")
    compare.add_argument("--fail-on-regression", type=float, default=None, metavar="DELTA",
                         help="exit 1 when a group's DR dropped by more than DELTA, significantly after correction")
    compare.add_argument("--fail-on-gap-increase", type=float, default=None, metavar="DELTA",
                         help="exit 1 when a language's selective-safety gap grew by more than DELTA, significantly")
    compare.add_argument("--fail-on-over-refusal", type=float, default=None, metavar="DELTA",
                         help="exit 1 when benign (control) requests were refused more by more than DELTA, significantly")
    compare.set_defaults(func=cmd_compare)

    dump = sub.add_parser("dump", parents=[common], help="write the whole database to a .jsonl.gz file")
    dump.add_argument("out", type=Path)
    dump.set_defaults(func=cmd_dump)
    restore = sub.add_parser("restore", parents=[common], help="load a dump into the database")
    restore.add_argument("file", type=Path)
    restore.add_argument("--if-empty", action="store_true", help="only when the database is missing or holds no "
                         "completions (what `make run` does with the demo); one with results is left as it is")
    restore.set_defaults(func=cmd_restore)
    info = sub.add_parser("info", parents=[common], help="what the database holds")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from core.judges import UnknownJudge
    from core.probes.loader import ProbeFileError
    from core.executors import ExecutorUnavailable
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
    except (StoreError, TargetUnavailable, ExecutorUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:
        # The reader stopped early (`stats ... | head`): it has what it wanted. Stdout goes to devnull so the
        # interpreter's last flush at exit does not fail again with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
