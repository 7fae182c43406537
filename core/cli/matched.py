"""`matched`: the gap when only the group's words change (counterfactual probes), paired on the claim
(core/stats/matched.py)."""
from __future__ import annotations

import argparse
import json

from core.cli.common import (EXIT_OK, BadInput, add_selection_parser, chosen_judge, open_store, say_selection,
                             selection_filters)

# Columns `matched` prints as text per model x language (--json gives every table whole).
MATCHED_TEXT_COLUMNS: tuple[str, ...] = ("model", "language", "groups", "seed_gap", "seed_gap_ci_low", "seed_gap_ci_high",
                                         "counterfactual_gap", "counterfactual_gap_ci_low", "counterfactual_gap_ci_high",
                                         "cochran_p", "surviving", "surviving_ci_low", "surviving_ci_high")


def cmd_matched(args: argparse.Namespace) -> int:
    """The counterfactual view (core.views.counterfactual): the gap when only the group changes, next to the
    matched-seed gap, with Cochran's Q, the McNemar pairs and the decomposition into group and claim parts."""
    from core.views import counterfactual

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
    """Register `matched`."""
    m = add_selection_parser(sub, "matched", cmd_matched, "the gap when only the group changes (counterfactual "
                             "probes), paired on the claim", [common, filters], ["attack"], probe_sets=False)
    m.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples of claims")
    m.add_argument("--seed", type=int, default=0, help="bootstrap seed")
