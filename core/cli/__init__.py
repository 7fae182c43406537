"""`python -m core`: the headless interface for CI pipelines and scripts.

Exit codes: 0 ok, 2 bad input (the message says what and where), 1 failure (including a database
held by another process, and a run stopped because its target went away), 130 when stopped with Ctrl-C
(the run resumes with --run-id either way).

Before a command runs, main() checks its numeric and id options (core/options.py: the rules the Run page uses
too) and, in a read-only session (AUDIT_READONLY=1 or --read-only), refuses a command that writes to the
database: both exit 2 with one line, and nothing has been opened or written. An error nobody anticipated is one
line on stderr (`error: TYPE: MESSAGE (details in LOG)`) and exit 1; its traceback goes to a log file in
$AUDIT_LOG_DIR, else <temp dir>/for-whom-logs. Every message and log masks API keys (core/redact.py).

Each command lives in the module named after it (`import-align` in import_align.py; `judge`, `judge-eval` and
`judge-train` together in judge.py; common.py: what they share); build_parser assembles
their subparsers in the order `--help` lists them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from core.cli import (compare, disparity, dump, export, import_align, info, judge, matched, mitigate, probes, restore,
                      review, run, stats, targets, taxonomy as taxonomy_command, verdicts)
from core.cli.common import (EXIT_BAD_INPUT, EXIT_FAILURE, EXIT_OK, EXIT_STOPPED, BadInput, check_options, csv_list,
                             refuse_read_only_write)
from core.cli.compare import COMPARE_TEXT_COLUMNS
from core.cli.stats import CORRECTED_TEXT_COLUMNS
from core.vocab import taxonomy

__all__ = ["BadInput", "COMPARE_TEXT_COLUMNS", "CORRECTED_TEXT_COLUMNS", "EXIT_BAD_INPUT", "EXIT_FAILURE", "EXIT_OK",
           "EXIT_STOPPED", "LOG_DIR_ENV", "build_parser", "main"]

# Where the traceback of an unexpected error goes (one file per error); default: <temp dir>/for-whom-logs.
LOG_DIR_ENV = "AUDIT_LOG_DIR"


# The order `python -m core --help` lists the subcommands in.
COMMAND_MODULES = (taxonomy_command, probes, run, targets, judge, matched, disparity, stats, export, import_align, review,
                   verdicts, compare, mitigate, dump, restore, info)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: each command module registers its subcommands with the shared parents `common`
    (--db, --json) and `filters` (--languages, --groups, --strategies)."""
    parser = argparse.ArgumentParser(prog="python -m core", description="For Whom: audit whose safety a model protects.")
    read_only_help = ("a read-only session (as AUDIT_READONLY=1): the database is opened read-only and a command "
                      "that would write to it is refused (exit 2)")
    parser.add_argument("--read-only", action="store_true", help=read_only_help)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help="DuckDB file (default: $AUDIT_DB or data/audit.duckdb)")
    common.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    # also after the command (`run --read-only`); SUPPRESS keeps a flag given before it
    common.add_argument("--read-only", action="store_true", default=argparse.SUPPRESS, help=read_only_help)
    filters = argparse.ArgumentParser(add_help=False)
    filters.add_argument("--languages", type=csv_list, default=[], help="e.g. en,pt")
    filters.add_argument("--groups", type=csv_list, default=[], help="canonical group keys or known spellings")
    filters.add_argument("--strategies", type=csv_list, default=[], help=", ".join(taxonomy.STRATEGIES))
    sub = parser.add_subparsers(dest="command", required=True)

    for module in COMMAND_MODULES:
        module.add_parsers(sub, common, filters)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code. Nothing but the command's own output reaches stdout, and stderr
    gets at most plain lines (never a traceback)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0), or argparse's own usage message for a malformed command line (2)
            return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_BAD_INPUT)
        return _dispatch(args)
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED
    except BrokenPipeError:
        # The reader stopped early (`stats ... | head`): it has what it wanted. Stdout goes to devnull so the
        # interpreter's last flush at exit does not fail again with a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - nobody anticipated it: one line here, the traceback in a log
        return _unexpected(exc, argv)


def _dispatch(args: argparse.Namespace) -> int:
    from core.judges import UnknownJudge
    from core.options import OptionError
    from core.probes.counterfactual import CounterfactualError
    from core.probes.loader import ProbeFileError
    from core.redact import redact
    from core.run.executors import ExecutorUnavailable
    from core.store import StoreError
    from core.targets import TargetUnavailable, UnknownTarget

    try:
        check_options(args)  # numbers and ids, before anything is opened or written
        refuse_read_only_write(args)
        return args.func(args)
    except (BadInput, OptionError, ProbeFileError, UnknownJudge, UnknownTarget, taxonomy.VocabularyError,
            taxonomy.TaxonomyError, CounterfactualError) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (StoreError, TargetUnavailable, ExecutorUnavailable) as exc:
        print(f"error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_FAILURE


def log_dir() -> Path:
    """Where the traceback of an unexpected error is written: $AUDIT_LOG_DIR, else <temp dir>/for-whom-logs."""
    return Path(os.environ.get(LOG_DIR_ENV) or Path(tempfile.gettempdir()) / "for-whom-logs")


def _unexpected(exc: Exception, argv: Sequence[str]) -> int:
    """An error no command anticipated: its traceback (keys masked) to a new log file, one line to stderr, exit 1."""
    from core.redact import redact

    message = " ".join(str(exc).split()) or "(no message)"
    if len(message) > 300:
        message = message[:300] + "..."
    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    where = log_dir()
    try:
        where.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f"cli-error-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".log",
                                        dir=where)  # a new file each time, readable by its owner only
        path = Path(name)
        with os.fdopen(handle, "w", encoding="utf-8") as log:
            log.write(redact(f"python -m core {' '.join(argv)}\nPython {sys.version.split()[0]}\n\n{details}"))
        seen = f"details in {path}"
    except OSError as failure:
        seen = f"no log written: {where}: {failure.strerror or failure}"
    print(redact(f"error: {type(exc).__name__}: {message} ({seen})"), file=sys.stderr)
    return EXIT_FAILURE
