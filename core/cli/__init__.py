"""`python -m core`: the headless interface for CI pipelines and scripts.

Exit codes: 0 ok, 2 bad input (the message says what and where), 1 failure (including a database
held by another process, and a run stopped because its target went away), 130 when stopped with Ctrl-C
(the run resumes with --run-id either way).

The commands live in modules named after them (common.py: what they share); build_parser assembles
their subparsers in the order `--help` lists them.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from core import taxonomy
from core.cli import compare, database, export, judging, mitigate, probes, review, run, stats
from core.cli import taxonomies
from core.cli.common import EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, EXIT_STOPPED, BadInput, csv_list
from core.cli.compare import COMPARE_TEXT_COLUMNS
from core.cli.stats import CORRECTED_TEXT_COLUMNS

__all__ = ["BadInput", "COMPARE_TEXT_COLUMNS", "CORRECTED_TEXT_COLUMNS", "EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK",
           "EXIT_STOPPED", "build_parser", "main"]


# The order `python -m core --help` lists the subcommands in.
COMMAND_MODULES = (taxonomies, probes, run, judging, stats, export, review, compare, mitigate, database)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each command module registers its subcommands with the shared parents `common`
    (--db, --json) and `filters` (--languages, --groups, --strategies)."""
    parser = argparse.ArgumentParser(prog="python -m core", description="For Whom: audit whose safety a model protects.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help="DuckDB file (default: $AUDIT_DB or data/audit.duckdb)")
    common.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--languages", type=csv_list, default=[], help="e.g. en,pt")
    filters.add_argument("--groups", type=csv_list, default=[], help="canonical group keys or known spellings")
    filters.add_argument("--strategies", type=csv_list, default=[], help=", ".join(taxonomy.STRATEGIES))
    sub = parser.add_subparsers(dest="command", required=True)

    for module in COMMAND_MODULES:
        module.add_parsers(sub, common, filters)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from core.judges import UnknownJudge
    from core.probes.counterfactual import CounterfactualError
    from core.probes.loader import ProbeFileError
    from core.executors import ExecutorUnavailable
    from core.store import StoreError
    from core.targets import TargetUnavailable, UnknownTarget

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BadInput, ProbeFileError, UnknownJudge, UnknownTarget, taxonomy.VocabularyError,
            taxonomy.TaxonomyError, CounterfactualError) as exc:
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
