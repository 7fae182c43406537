"""`dump`: write the whole database to a .jsonl.gz file (core/store/dump.py)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import EXIT_OK, emit, open_store, output_path


def cmd_dump(args: argparse.Namespace) -> int:
    output_path(args, "", args.out)
    counts = open_store(args, readonly=True).dump(args.out)
    emit(args, {"path": str(args.out), **counts}, f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `dump`."""
    dump = sub.add_parser("dump", parents=[common], help="write the whole database to a .jsonl.gz file")
    dump.add_argument("out", type=Path)
    dump.set_defaults(func=cmd_dump)
