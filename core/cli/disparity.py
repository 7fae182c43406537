"""`disparity`: per model and language, how unequal the groups' Defense Rates are beyond noise
(core/stats/disparity.py, read through the view core/views/disparity.py)."""
from __future__ import annotations

import argparse
import json

from core.cli.common import (EXIT_OK, RECTIFIER_HELP, RECTIFIERS, BadInput, add_selection_parser, chosen_judge,
                             csv_list, open_store, say_selection, selection_filters)
from core.vocab import dimensions

# Columns `disparity` prints as text per row (--json gives every column and the per-group table).
DISPARITY_TEXT_COLUMNS: tuple[str, ...] = ("estimate", "groups", "n", "observed_gap", "noise_gap", "gap", "gap_ci_low",
                                           "gap_ci_high", "tau", "tau_ci_low", "tau_ci_high", "i2", "q_p",
                                           "heterogeneous")


GROUP_TEXT_COLUMNS: tuple[str, ...] = ("group", "n", "dr", "ci_low", "ci_high", "shrunk", "shrunk_ci_low",
                                       "shrunk_ci_high", "q_value", "position")


def cmd_disparity(args: argparse.Namespace) -> int:
    """Disparity beyond noise per --by (core.views.disparity): the observed gap, what noise alone gives at these
    sizes, the gap beyond noise and tau with intervals, the homogeneity test and the groups credibly below or
    above the mean, judge-only or corrected by the review sample (--estimator)."""
    from core.stats.estimates import EstimateError
    from core.views import disparity

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


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `disparity`."""
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
