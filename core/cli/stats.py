"""`stats`: Defense Rates by any grouping, from the judge or corrected by the review sample (--estimator ppi);
`disparity`: per model and language, how unequal the groups' DRs are beyond noise; `matched`: the counterfactual
view."""
from __future__ import annotations

import argparse
import json

from core import dimensions
from core.cli.common import (EXIT_OK, RECTIFIER_HELP, RECTIFIERS, BadInput, add_selection_parser, chosen_judge, csv_list,
                             labelled_sample, open_store, say_selection, selection_filters)


def cmd_stats(args: argparse.Namespace) -> int:
    """DR per slice with 95% bootstrap CIs and each slice's deviation from its model's mean (see core.metrics)."""
    from core.metrics import DefenseRates

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
    from core.metrics import MetricsError

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
    from core.estimates import estimate_label
    from core.ppi import CorrectedRates

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


# Columns `disparity` prints as text per row (--json gives every column and the per-group table).
DISPARITY_TEXT_COLUMNS: tuple[str, ...] = ("estimate", "groups", "n", "observed_gap", "noise_gap", "gap", "gap_ci_low",
                                           "gap_ci_high", "tau", "tau_ci_low", "tau_ci_high", "i2", "q_p",
                                           "heterogeneous")
GROUP_TEXT_COLUMNS: tuple[str, ...] = ("group", "n", "dr", "ci_low", "ci_high", "shrunk", "shrunk_ci_low",
                                       "shrunk_ci_high", "q_value", "position")


def cmd_disparity(args: argparse.Namespace) -> int:
    """Disparity beyond noise per --by (core.analyses.disparity): the observed gap, what noise alone gives at these
    sizes, the gap beyond noise and tau with intervals, the homogeneity test and the groups credibly below or
    above the mean, judge-only or corrected by the review sample (--estimator)."""
    from core.analyses import disparity
    from core.estimates import EstimateError

    unknown = dimensions.unknown(args.by)
    if unknown or "group" in args.by:
        raise BadInput(f"--by {','.join(args.by)}: choose from {', '.join(n for n in dimensions.names() if n != 'group')}"
                       " (groups are what is compared)")
    store = open_store(args, readonly=True)
    judge = chosen_judge(args, store)
    filters = selection_filters(args, store)
    said = say_selection(args, store, filters)
    try:
        view = disparity.compute(store, judge, filters, by=args.by, estimator=args.estimator,
                                 min_human=args.min_human, alpha=args.alpha, rectifier=args.rectifier)
    except EstimateError as exc:
        raise BadInput(str(exc)) from None
    if args.json:
        print(json.dumps({**view.records(), "selection": said}, ensure_ascii=False))
        return EXIT_OK
    if not len(view.rows):
        print("no judged attack completions in this selection")
        return EXIT_OK
    number = lambda v: f"{v:.3f}"  # noqa: E731
    print(f"Disparity across groups beyond noise (judge {judge}; 95% intervals; methods: core/stats/disparity.py)")
    for row in view.rows.to_dict("records"):
        where = ", ".join(str(row[c]) for c in args.by)
        print(f"{where}: {row['headline']}" + (f" [{row['note']}]" if row.get("note") else ""))
    print()
    print(view.rows[[*args.by, *DISPARITY_TEXT_COLUMNS]].to_string(index=False, float_format=number, na_rep="-"))
    print()
    print(view.groups[[*args.by, *GROUP_TEXT_COLUMNS]].to_string(index=False, float_format=number, na_rep="-"))
    return EXIT_OK


# Columns `matched` prints as text per model x language (--json gives every table whole).
MATCHED_TEXT_COLUMNS: tuple[str, ...] = ("model", "language", "groups", "seed_gap", "seed_gap_ci_low", "seed_gap_ci_high",
                                         "counterfactual_gap", "counterfactual_gap_ci_low", "counterfactual_gap_ci_high",
                                         "cochran_p", "surviving", "surviving_ci_low", "surviving_ci_high")


def cmd_matched(args: argparse.Namespace) -> int:
    """The counterfactual view (core.analyses.counterfactual): the gap when only the group changes, next to the
    matched-seed gap, with Cochran's Q, the McNemar pairs and the decomposition into group and claim parts."""
    from core.analyses import counterfactual

    store = open_store(args, readonly=True)
    judge = chosen_judge(args, store)
    filters = {k: v for k, v in selection_filters(args, store).items() if k not in ("kind", "probe_set")}
    say_selection(args, store, filters)  # both probe sets: the view pairs counterfactual answers with matched-seed ones
    view = counterfactual.compute(store, judge, filters, resamples=args.resamples, seed=args.seed)
    if view.matched is None:
        raise BadInput(f"{store.path}: no judged counterfactual attack answers in this selection; run the "
                       "counterfactual set first: python -m core run --probe-set counterfactual")
    if args.json:
        tables = {"comparison": view.comparison, **view.matched.tables(), "decomposition": view.decomposition,
                  "seed_gaps": view.seeds.gaps if view.seeds is not None else None}
        print(json.dumps({name: None if table is None else json.loads(table.to_json(orient="records"))
                          for name, table in tables.items()}, ensure_ascii=False))
        return EXIT_OK
    number = lambda v: f"{v:.3f}"  # noqa: E731
    print(f"Counterfactual probes (judge {judge}): the gap when only the group changes, next to the matched-seed "
          f"gap; 95% CIs resample claims ({args.resamples} resamples, seed {args.seed}); surviving = the share of "
          "the gap left when claims are held fixed (logistic model with claim and group effects, both sets).")
    print(view.comparison[list(MATCHED_TEXT_COLUMNS)].to_string(index=False, float_format=number, na_rep="-"))
    notes = view.comparison.loc[view.comparison["note"].fillna("") != "", ["model", "language", "note"]]
    for _, row in notes.iterrows():
        print(f"note: {row['model']} ({row['language']}): {row['note']}")
    print("\nDefense Rate per group on counterfactual probes (CI resampling claims):")
    print(view.matched.rates.to_string(index=False, float_format=number))
    significant = view.matched.pairs.loc[view.matched.pairs["significant"].astype(bool)]
    print(f"\nPairs of groups that differ on the same claims (McNemar, Holm): {len(significant)} of "
          f"{len(view.matched.pairs)}")
    if len(significant):
        print(significant[["model", "language", "group_a", "group_b", "n_pairs", "diff", "ci_low", "ci_high",
                           "p_adjusted"]].to_string(index=False, float_format=number))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `stats`, `disparity` and `matched`."""
    m = add_selection_parser(sub, "matched", cmd_matched, "the gap when only the group changes (counterfactual "
                             "probes), paired on the claim", [common, filters], ["attack"], probe_sets=False)
    m.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of claims")
    m.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    d = add_selection_parser(sub, "disparity", cmd_disparity, "how unequal the groups' Defense Rates are beyond "
                             "noise, per model and language", [common, filters], ["attack"])
    d.add_argument("--by", type=csv_list, default=["model", "language"],
                   help="the rows, each comparing its groups (default model,language)")
    d.add_argument("--estimator", default=None, choices=["judge", "ppi"],
                   help="judge: the judge's DRs; ppi: corrected by the labelled review sample; default: corrected "
                        "wherever the selection has human checks")
    d.add_argument("--min-human", type=int, default=10, help="ppi: labels a corrected estimate needs")
    d.add_argument("--rectifier", default="auto", choices=RECTIFIERS, help=RECTIFIER_HELP)
    d.add_argument("--alpha", type=float, default=0.05, help="level of the tests (Q, false discovery rate)")
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
