"""What every command shares: the exit codes, BadInput, the --db store (read-only where asked), the checked
options (numbers and ids, core/options.py), output paths, the selection filters, the judge to read and the
labelled review sample."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.options import NUMBERS, READ_ONLY_ENV, OptionError, check_id, read_only_env
from core.vocab import taxonomy

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


class BadInput(ValueError):
    """Input the user must fix; printed without a traceback, exit code 2."""


class ReadOnlyRefused(BadInput):
    """A command that would write to a database asked for in a read-only session (exit 2, nothing done)."""


def read_only_requested(args: argparse.Namespace | None = None) -> bool:
    """Whether this is a read-only session: AUDIT_READONLY=1 (true, yes) or --read-only. Every command that writes
    to the database is then refused before it does anything, and every store is opened read-only by DuckDB."""
    return read_only_env() or bool(getattr(args, "read_only", False))


def db_path(args: argparse.Namespace) -> Path:
    """The database a command uses: --db, else $AUDIT_DB, else data/audit.duckdb (nothing is opened)."""
    from core.store import DEFAULT_DB

    return Path(getattr(args, "db", None) or os.environ.get("AUDIT_DB") or DEFAULT_DB)


def refuse_read_only_write(args: argparse.Namespace) -> None:
    """ReadOnlyRefused for a command registered as writing (`writes`, its name) in a read-only session, unless its
    `read_only_ok(args)` says this invocation writes nothing. Called by main() before the command runs."""
    command = getattr(args, "writes", None)
    if not command or not read_only_requested(args):
        return
    allowed: Callable[[argparse.Namespace], bool] | None = getattr(args, "read_only_ok", None)
    if allowed is not None and allowed(args):
        return
    how = " and ".join(part for part in (f"unset {READ_ONLY_ENV}" if read_only_env() else "",
                                         "drop --read-only" if getattr(args, "read_only", False) else "") if part)
    raise ReadOnlyRefused(f"read-only: {command} would write to {db_path(args)}; nothing was done ({how} to "
                          "change the database)")


def writes(parser: argparse.ArgumentParser, command: str,
           read_only_ok: Callable[[argparse.Namespace], bool] | None = None) -> None:
    """Register a subcommand as one that writes to the database (refused in a read-only session)."""
    parser.set_defaults(writes=command, read_only_ok=read_only_ok)


# -- checked options ----------------------------------------------------------------------------------
def _declare(parser: argparse.ArgumentParser, dest: str, check: Callable[[Any], Any]) -> None:
    parser.set_defaults(checks=(*(parser.get_default("checks") or ()), (dest, check)))


def number_option(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> argparse.Action:
    """A numeric option whose value main() checks against core.options.NUMBERS[flag] before the command runs."""
    rule = NUMBERS[flag.removeprefix("--")]
    action = parser.add_argument(flag, type=int if rule.integer else float, **kwargs)
    _declare(parser, action.dest, rule.check)
    return action


def checked_option(parser: argparse.ArgumentParser, flag: str, check: Callable[[Any], Any],
                   **kwargs: Any) -> argparse.Action:
    """An option (or positional) whose value main() gives to `check` (which raises OptionError) before the command
    runs."""
    action = parser.add_argument(flag, **kwargs)
    _declare(parser, action.dest, check)
    return action


def id_option(parser: argparse.ArgumentParser, flag: str, **kwargs: Any) -> argparse.Action:
    """An id option that main() checks against core.options' id rule before the command runs."""
    return checked_option(parser, flag, lambda value: check_id(flag, value), **kwargs)


def check_options(args: argparse.Namespace) -> None:
    """Every checked option given (not None): BadInput naming the first that breaks its rule."""
    for dest, check in getattr(args, "checks", ()) or ():
        value = getattr(args, dest, None)
        if value is not None:
            try:
                check(value)
            except OptionError as exc:
                raise BadInput(str(exc)) from None


def output_path(args: argparse.Namespace, flag: str, path: str | os.PathLike[str]) -> Path:
    """A file a command will write (named by option `flag`, or positional when flag is ""): its folder must exist
    and it must not be the database itself (BadInput)."""
    out = Path(path)
    named = f"{flag} {out}" if flag else f"{out}"
    folder = out.parent
    if not folder.is_dir():
        raise BadInput(f"{named}: the folder {folder} does not exist (create it first); nothing was written")
    database = db_path(args)
    if out.exists() and database.exists() and out.resolve() in (database.resolve(),
                                                                 Path(f"{database}.wal").resolve()):
        raise BadInput(f"{named}: that is the database itself; choose another file")
    return out


def csv_list(value: str) -> list[str]:
    """An option's comma-separated values, blanks dropped (so `--kinds ''` means no filter)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    """Print the result once: as one JSON value with --json (for pipelines), else as the text for people."""
    print(json.dumps(payload, ensure_ascii=False, default=str) if args.json else text)


def open_store(args: argparse.Namespace, readonly: bool = False):
    """The store at --db (else $AUDIT_DB, else data/audit.duckdb), opened read-only by DuckDB when the command only
    reads or the session is read-only (the one place the setting reaches the store); imported here so `--help`
    stays fast."""
    from core.store import Store

    return Store(args.db, readonly=readonly or read_only_requested(args))


def selection_filters(args: argparse.Namespace, store=None) -> dict[str, list[str]]:
    """The store's filters from the selection options, spellings made canonical by the store's taxonomy (the
    default one without a store); an unknown one is BadInput naming the taxonomy.

    `--runs` chooses the runs read (one answer per (target, probe) among them; none: the latest completed run's
    answer of each probe) and `--probe-set` the probes (matched-seed by default: selection.default_probe_set):
    core/views/selection.py. A run the
    store does not hold is BadInput naming the runs it does."""
    from core.views import selection

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
    """The sentence saying which runs and probe set a command read (core.views.selection.describe): printed on stderr
    for text output, so stdout stays the table; returned for a --json object to carry (field `selection`)."""
    from core.views import selection

    text = selection.describe(store, filters)
    if not args.json:
        print(text, file=sys.stderr)
    return text


def chosen_judge(args: argparse.Namespace, store) -> str:
    """--judge, else the store's default judge (Store.default_judge: the default judge, else refusal, else the one
    with the most verdicts), said on stderr."""
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


# How a corrected estimate learns the judge's error (core.ppi.SCOPES; spelt here so `--help` imports no statistics).
RECTIFIERS: tuple[str, ...] = ("auto", "pooled", "group")
RECTIFIER_HELP = ("ppi: how the judge's error is estimated: auto (pooled within model x language unless its groups' "
                  "errors differ), pooled, or group (each cell from its own labels)")


def add_selection_parser(sub, name: str, func, helptext: str, parents: list[argparse.ArgumentParser],
                         kinds: list[str], probe_sets: bool = True) -> argparse.ArgumentParser:
    """A subcommand reading judged completions (stats, export): the filters, --models/--runs/--kinds,
    --probe-set (unless `probe_sets` is False: a view that reads both sets by design), --judge."""
    from core.views import selection

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


def existing_store(args: argparse.Namespace, readonly: bool = False, run_id: str | None = None):
    """The store at --db, which must exist: a command about a run or its labels never creates an empty file.
    With `run_id`, that run must exist in it too."""
    path = db_path(args)
    if not path.exists():
        raise BadInput(f"{path}: no such database (give --db, or run an audit first)")
    store = open_store(args, readonly=readonly)
    if run_id and store.run(run_id) is None:
        raise BadInput(f"--run-id {run_id}: no such run in {store.path}")
    return store
