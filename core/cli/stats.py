"""`stats`: Defense Rates by any grouping, from the judge or corrected by the review sample (--estimator ppi)."""
from __future__ import annotations

import argparse
import json

from core.cli.common import (EXIT_OK, RECTIFIER_HELP, RECTIFIERS, BadInput, add_selection_parser, chosen_judge,
                             csv_list, labelled_sample, open_store, say_selection, selection_filters)
from core.vocab import dimensions


def cmd_stats(args: argparse.Namespace) -> int:
    """DR per slice with 95% bootstrap CIs and each slice's deviation from its model's mean (see core.stats.rates)."""
    from core.stats.rates import DefenseRates

    store = open_store(args, readonly=True)
    if args.estimator == "ppi":
        return _stats_corrected(args, store)
    filters = selection_filters(args, store)
    say_selection(args, store, filters)
    frame = store.judged(chosen_judge(args, store), filters)
    rates, table = _with_deviations(args, lambda: DefenseRates(frame, args.by, ci=not args.no_ci,
                                                               resamples=args.resamples, seed=args.seed))
    rows = rates.records(table)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}") if rows else "no judged completions")
    return EXIT_OK


def _with_deviations(args: argparse.Namespace, make):
    """The rates `make()` builds (judge-only or corrected) and their deviations table for --baseline, --alpha and
    --correction; a grouping or baseline the rates reject is BadInput."""
    from core.stats.rates import MetricsError

    try:
        rates = make()
        return rates, rates.deviations(args.baseline, alpha=args.alpha, correction=args.correction)
    except MetricsError as exc:
        raise BadInput(str(exc)) from None


# Columns `stats --estimator ppi` prints as text (--json gives every column).
CORRECTED_TEXT_COLUMNS: tuple[str, ...] = ("n", "n_human", "dr", "ci_low", "ci_high", "dr_judge", "rectifier",
                                           "deviation", "dev_ci_low", "dev_ci_high", "significant", "note")


def _stats_corrected(args: argparse.Namespace, store) -> int:
    """`stats --estimator ppi`: every DR corrected by the review sample (core.ppi.CorrectedRates): dr, ci_low,
    ci_high, n, n_human, dr_judge, rectifier, note, and the deviations tested on the corrected estimates."""
    from core.ppi import CorrectedRates
    from core.stats.estimates import estimate_label

    unknown = dimensions.unknown(args.by)
    if unknown:
        raise BadInput(f"--by {','.join(unknown)}: choose from {', '.join(dimensions.names())}")
    if args.min_human < 1:
        raise BadInput(f"--min-human {args.min_human}: give at least 1 label per cell")
    judge = chosen_judge(args, store)
    population, sample = labelled_sample(args, store, judge)
    say_selection(args, store, selection_filters(args, store))
    rates, table = _with_deviations(args, lambda: CorrectedRates(population, sample, args.by,
                                                                 power_tuning=args.power_tuning,
                                                                 min_human=args.min_human, rectifier=args.rectifier))
    rows = rates.records(table)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))
        return EXIT_OK
    print(f"Defense Rates {estimate_label(len(sample))} (prediction-powered{', power-tuned' if args.power_tuning else ''}; "
          f"judge {judge}; cells with fewer than {args.min_human} labels are not corrected)")
    shown = table[[*args.by, *[c for c in CORRECTED_TEXT_COLUMNS if c in table.columns]]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `stats`."""
    p = add_selection_parser(sub, "stats", cmd_stats, "Defense Rates by any grouping", [common, filters], ["attack"])
    p.add_argument("--by", type=csv_list, default=["model", "group"],
                   help=f"any of {', '.join(dimensions.names())}")
    p.add_argument("--baseline", type=csv_list, default=None,
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
    p.add_argument("--rectifier", default="auto", choices=RECTIFIERS, help=RECTIFIER_HELP)
    p.add_argument("--power-tuning", action="store_true",
                   help="ppi: weight the judge term per cell (PPI++): never wider, narrower where the "
                        "judge is good")
    p.add_argument("--min-human", type=int, default=10,
                   help="ppi: cells with fewer sample labels get no corrected DR (their note says so)")
