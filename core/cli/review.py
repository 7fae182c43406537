"""`review sample|status|bias|plan`: the human review sample that corrects every Defense Rate: draw it
(core/ppi/review_sample.py), its status, the judge's errors on it, how many labels a cell needs."""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from core.cli.common import (EXIT_OK, BadInput, chosen_judge, csv_list, emit, existing_store, labelled_sample,
                             open_store, say_selection, selection_filters, writes)
from core.views import selection


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


def cmd_review_bias(args: argparse.Namespace) -> int:
    """The judge's error by group on the labelled review sample (core.ppi.judge_error): a judge that misses
    refusals more often for one group manufactures a disparity; this measures whether it does."""
    from core.ppi import PPIError, judge_error
    from core.stats.estimates import judge_error_findings, p_text

    store = open_store(args, readonly=True)
    judge = chosen_judge(args, store)
    population, sample = labelled_sample(args, store, judge)
    say_selection(args, store, selection_filters(args, store))
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


def _table(frame, columns: Sequence[str]) -> str:
    """A plain text table of these columns (a stratum per line)."""
    return frame[list(columns)].to_string(index=False) if len(frame) else "(none)"


def cmd_review_sample(args: argparse.Namespace) -> int:
    """Draw (or enlarge) a run's stratified random review sample; prints the counts per stratum."""
    from core.ppi.review_sample import STRATA, ReviewError, check_size

    try:
        check_size(args.per_cell, args.fraction)
    except ReviewError as exc:
        raise BadInput(f"review sample: {exc}") from None
    store = existing_store(args)
    if store.run(args.run_id) is None:
        raise BadInput(f"--run-id {args.run_id}: no such run in {store.path} (`python -m core info` lists what "
                       "it holds); nothing was drawn")
    try:
        result = store.draw_review_sample(args.run_id, per_cell=args.per_cell, fraction=args.fraction,
                                          seed=args.seed, replace=args.replace, by_uncertainty=args.by_uncertainty)
    except ReviewError as exc:
        raise BadInput(f"review sample --run-id {args.run_id}: {exc}; nothing was drawn") from None
    import pandas as pd

    strata = pd.DataFrame(result["strata"])
    size = f"--per-cell {args.per_cell}" if args.per_cell is not None else f"--fraction {args.fraction}"
    design = "" if not args.by_uncertainty else (
        f", by the uncertainty of {args.by_uncertainty}: {result['expected']} expected, each completion drawn with "
        "its own probability")
    text = (f"{args.run_id}: draw {result['draw']} ({size}, seed {args.seed}{design}"
            f"{', replacing the previous sample' if args.replace else ''}): {result['added']} completions added, "
            f"{result['sampled']} of {result['completions']} sampled in {len(strata)} strata\n"
            + _table(strata, [c for c in STRATA if c != "run_id"] + ["completions", "sampled", "added"])
            + "\nlabel them on the Review page, or: python -m core verdicts export --sample --run-id "
            f"{args.run_id} --out sheet.csv, then python -m core verdicts import sheet.csv --annotator NAME")
    emit(args, result, text)
    return EXIT_OK


def cmd_review_status(args: argparse.Namespace) -> int:
    """Per stratum: completions, sampled, labelled (of every run with a sample, or of --run-id)."""
    store = existing_store(args, readonly=True, run_id=args.run_id)
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
    emit(args, rows, text)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `review sample|status|bias|plan`."""
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
    draw.add_argument("--by-uncertainty", metavar="JUDGE", default=None,
                      help="draw where this judge is unsure: each completion with its own probability from the "
                      "judge's P(refused) (a judge that outputs one: encoder:, average:, learned:), the same expected "
                      "size per stratum; the corrected estimates weight each label by it (a run's first sample, or "
                      "with --replace)")
    draw.set_defaults(func=cmd_review_sample)
    writes(draw, "review sample")
    status = review.add_parser("status", parents=[common], help="per stratum: completions, sampled, labelled")
    status.add_argument("--run-id", default=None)
    status.set_defaults(func=cmd_review_status)
    bias = review.add_parser("bias", parents=[common, filters], help="the judge's errors by group, measured on the "
                             "labelled review sample: false-refusal / false-compliance rates with CIs, tests")
    bias.add_argument("--by", type=csv_list, default=["language", "group"],
                      help="cells of the error table; the test compares groups within the other columns")
    bias.add_argument("--models", type=csv_list, default=[])
    bias.add_argument("--runs", type=csv_list, default=[], help="the runs to read (default: every run, each "
                      "probe's answer from the latest completed run of its target)")
    bias.add_argument("--probe-set", choices=list(selection.PROBE_SETS), default=None,
                      help="matched-seed probes (default, unless the store holds counterfactual answers only), "
                           "counterfactual ones, or both")
    bias.add_argument("--kinds", type=csv_list, default=["attack"])
    bias.add_argument("--judge", default=None, help="whose errors (default as for stats)")
    bias.add_argument("--alpha", type=float, default=0.05, help="significance level after Holm's correction")
    bias.set_defaults(func=cmd_review_bias)
    plan = review.add_parser("plan", help="human labels per cell needed for an interval half-width at a judge "
                             "accuracy (the README's table)")
    plan.add_argument("--accuracies", type=lambda v: [float(x) for x in csv_list(v)], default=[0.70, 0.80, 0.90, 0.95])
    plan.add_argument("--half-widths", type=lambda v: [float(x) for x in csv_list(v)], default=[0.05, 0.10, 0.15])
    plan.add_argument("--power-tuning", action="store_true", help="with the power-tuned estimator (PPI++)")
    plan.add_argument("--json", action="store_true", help="print one JSON value instead of a table")
    plan.set_defaults(func=cmd_review_plan)
