"""`info`: what the database holds."""
from __future__ import annotations

import argparse

from core.cli.common import EXIT_OK, emit, open_store


def cmd_info(args: argparse.Namespace) -> int:
    summary = open_store(args, readonly=True).summary()
    emit(args, summary, "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `info`."""
    info = sub.add_parser("info", parents=[common], help="what the database holds")
    info.set_defaults(func=cmd_info)
