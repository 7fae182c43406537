"""What every command shares: the exit codes, BadInput, the --db store, the selection filters, the judge
to read and the labelled review sample."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from core import taxonomy

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


class BadInput(ValueError):
    """Input the user must fix; printed without a traceback, exit code 2."""


def csv_list(value: str) -> list[str]:
    """An option's comma-separated values, blanks dropped (so `--kinds ''` means no filter)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print the result once: as one JSON value with --json (for pipelines), else as the text for people."""
    print(json.dumps(payload, ensure_ascii=False, default=str) if args.json else text)


def open_store(args: argparse.Namespace, readonly: bool = False):
    """The store at --db (else $AUDIT_DB, else data/audit.duckdb); imported here so `--help` stays fast."""
    from core.store import Store

    return Store(args.db, readonly=readonly)


def selection_filters(args: argparse.Namespace, store=None) -> dict[str, list[str]]:
    """The store's filters from the selection options, spellings made canonical by the store's taxonomy (the
    default one without a store); an unknown one is BadInput naming the taxonomy.

    `--runs` chooses the runs read (one answer per (target, probe) among them; none: the latest completed run's
    answer of each probe) and `--probe-set` the probes (matched-seed by default: selection.default_probe_set):
    core/selection.py. A run the
    store does not hold is BadInput naming the runs it does."""
    from core import selection

    vocabulary = store.taxonomy() if store is not None else taxonomy.DEFAULT
    if store is not None and args.runs:
        unknown = [run for run in args.runs if store.run(run) is None]
        if unknown:
            known = sorted(store.runs()["run_id"])
            raise BadInput(f"--runs {','.join(unknown)}: no such run in {store.path}; it holds "
                           f"{', '.join(known) or 'no runs yet'}")
    try:
        return {"model": args.models,
                "language": [vocabulary.canonical_language(v) for v in args.languages],
                "group": [vocabulary.canonical_group(v) for v in args.groups],
                "strategy": [vocabulary.canonical_strategy(v) for v in args.strategies],
                "kind": args.kinds,
                **selection.filters(args.runs, getattr(args, "probe_set", None) or selection.default_probe_set(store))}
    except taxonomy.VocabularyError as exc:
        raise BadInput(str(exc)) from None


def say_selection(args: argparse.Namespace, store, filters: dict) -> str:
    """The sentence saying which runs and probe set a command read (core.selection.describe): printed on stderr
    for text output, so stdout stays the table; returned for a --json object to carry (field `selection`)."""
    from core import selection

    text = selection.describe(store, filters)
    if not args.json:
        print(text, file=sys.stderr)
    return text


def chosen_judge(args: argparse.Namespace, store) -> str:
    """--judge, else the store's default judge (refusal, or the one with the most verdicts), said on stderr."""
    if args.judge:
        return args.judge
    chosen = store.default_judge()
    others = [name for name in store.judge_counts() if name not in (chosen, "human")]
    if others:
        print(f"using judge {chosen}; others in the store: {', '.join(others)} (pick with --judge)", file=sys.stderr)
    return chosen


def stored_target_name(name: str) -> str:
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


def no_sample(store, what: str) -> BadInput:
    """The plain message for a selection without sample labels: what to run to get some."""
    return BadInput(f"{store.path}: no labelled review sample {what}; draw one with `python -m core review sample "
                    "--run-id RUN --fraction 0.05 --seed 0`, label it (the Review page, or `python -m core verdicts "
                    "export --sample` then `python -m core verdicts import FILE.csv`), then ask again "
                    "(or use --estimator judge)")


def labelled_sample(args: argparse.Namespace, store, judge: str):
    """Store.ppi_inputs for --by and the filters: (population, sample), or BadInput naming `review sample` where
    the selection holds no labelled sample completion."""
    try:
        population, sample, _ = store.ppi_inputs(judge, args.by, selection_filters(args, store))
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if not len(sample):
        raise no_sample(store, "in this selection")
    return population, sample


def add_selection_parser(sub, name: str, func, helptext: str, parents: list[argparse.ArgumentParser],
                         kinds: list[str], probe_sets: bool = True) -> argparse.ArgumentParser:
    """A subcommand reading judged completions (stats, export): the filters, --models/--runs/--kinds,
    --probe-set (unless `probe_sets` is False: a view that reads both sets by design), --judge."""
    from core import selection

    p = sub.add_parser(name, parents=parents, help=helptext)
    p.add_argument("--models", type=csv_list, default=[])
    p.add_argument("--runs", type=csv_list, default=[],
                   help="the runs to read, e.g. R1,R2 (default: every run, each probe's answer from the latest "
                        "completed run of its target); among chosen runs the latest answer of each probe counts")
    if probe_sets:
        p.add_argument("--probe-set", choices=list(selection.PROBE_SETS), default=None,
                       help="matched: matched-seed probes (the default, unless the store holds counterfactual answers "
                            "only); counterfactual: probes with a counterfactual_id; all: both")
    p.add_argument("--kinds", type=csv_list, default=kinds)
    p.add_argument("--judge", default=None, help="whose verdicts (human verdicts always override); default: "
                   "refusal, or the judge with the most verdicts where the store has no refusal verdicts")
    p.set_defaults(func=func)
    return p
