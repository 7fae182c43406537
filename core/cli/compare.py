"""`compare`: the paired comparison of two versions on their shared probes, and the CI regression gate."""
from __future__ import annotations

import argparse
import json
import sys

from core.cli.common import (EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, RECTIFIER_HELP, RECTIFIERS, BadInput, chosen_judge,
                             open_store, stored_target_name)

# Columns `compare` prints as text (--json gives every column, the 2x2 counts or the corrected inputs too).
COMPARE_TEXT_COLUMNS: tuple[str, ...] = ("language", "group", "strategy", "kind", "pairs", "base_dr", "cand_dr",
                                         "change", "ci_low", "ci_high", "p_value", "p_adjusted", "significant")


def cmd_compare(args: argparse.Namespace) -> int:
    """Paired comparison of two versions on their shared probes (core.stats.comparison), or `--all` pairs' gap matrix;
    with --fail-on-regression / --fail-on-gap-increase, exit 1 when the gate fails (a CI regression gate), 2 when
    it cannot pass because some cells it looks at could not be tested (said, with why). `--estimator ppi` with a
    side lacking human checks is refused (exit 2, naming the side and how to draw and label its sample)."""
    from core.stats.comparison import CompareError
    from core.views import compare as paired
    from core.views.compare import Side, all_pairs, resolve_side

    store = open_store(args, readonly=True)
    judge = chosen_judge(args, store)
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
        base = resolve_side(sides, stored_target_name(args.base), args.run_id, "--base")
        candidate = resolve_side(sides, stored_target_name(args.candidate), args.run_id, "--candidate")
        by = ["language", "group", *(["strategy"] if args.by_strategy else [])]
        compared = paired.compute(store, base, candidate, judge, by=by, correction=args.correction, alpha=args.alpha,
                                 resamples=args.resamples, seed=args.seed)
        if args.estimator == "ppi":
            try:
                compared.result = paired.corrected(store, base, candidate, judge, by=by, min_human=args.min_human,
                                                   rectifier=args.rectifier,
                                                   correction=args.correction, alpha=args.alpha)
            except paired.UncheckedSide as exc:
                raise BadInput(f"--estimator ppi: {exc}") from None
    except CompareError as exc:
        raise BadInput(str(exc)) from None
    result = compared.result
    gate = result.gate(args.fail_on_regression, args.fail_on_gap_increase, args.fail_on_over_refusal)
    gated = any(margin is not None for margin in (args.fail_on_regression, args.fail_on_gap_increase,
                                                  args.fail_on_over_refusal))
    untested = result.untested()
    if args.json:
        print(json.dumps({**compared.records(), "untested": json.loads(untested.to_json(orient="records")),
                          "gate": {"failed": gate.failed, "passed": gate.passed, "reasons": gate.reasons,
                                   "untested": gate.untested}}, ensure_ascii=False))
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
            f"{r.language}/{r.group} {r.kind} {r.change:+.3f}" for r in flagged.itertuples()) or (
            "none of the tested cells" if len(untested) else "none")))
        if len(untested):
            print(result.untested_summary())
        if gated:
            print(f"gate: {gate.verdict}")
    for reason in gate.reasons:
        print(f"regression: {reason}", file=sys.stderr)
    for reason in gate.untested:
        print(f"untested: {reason}", file=sys.stderr)
    return EXIT_FAILURE if gate.failed else EXIT_BAD_INPUT if gate.untested else EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `compare`."""
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
                              "human checks of their review sample: a side without, or without --min-human in any "
                              "compared cell, is refused with exit 2; the change's interval treats the two corrected "
                              "estimates as independent, so it is conservative)")
    compare.add_argument("--rectifier", default="auto", choices=RECTIFIERS, help=RECTIFIER_HELP)
    compare.add_argument("--min-human", type=int, default=10, help="ppi: fewest labels per cell and side (a cell "
                         "with fewer has no corrected change: it is reported as not tested, and a gate that looks "
                         "at it does not pass)")
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
