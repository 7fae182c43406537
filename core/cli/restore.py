"""`restore`: load a dump into the database (`--if-empty`: what `make run` does with the demo)."""
from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import EXIT_OK, BadInput, db_path, emit, open_store, writes


def cmd_restore(args: argparse.Namespace) -> int:
    """Load a dump, all or nothing: the file is read and checked before the database is opened (a missing or
    broken dump creates no database), and a refusal inside the transaction (rows pointing at nothing, another
    population) leaves it as it was; either is exit 2 with FILE:LINE. A database this command created for a
    dump it then refused is removed again."""
    from core.store import DumpFileError
    from core.store.dump import read_dump

    path = db_path(args)
    if args.if_empty and path.exists():  # `make run`: the demo goes into a missing or empty database only
        held = open_store(args).summary()["completions"]
        if held:
            emit(args, {"file": str(args.file), "added": {}, "kept": str(path), "completions": held},
                 f"{path} holds {held:,} completions: left as it is (the demo is restored only into a "
                 "missing or empty database)")
            return EXIT_OK
    try:
        dump = read_dump(args.file)
    except DumpFileError as exc:
        raise BadInput(str(exc)) from None
    existed = path.exists()
    store = open_store(args)
    try:
        added = store.restore(dump)
    except DumpFileError as exc:
        if not existed:
            for created in (path, path.with_name(path.name + ".wal")):
                created.unlink(missing_ok=True)
        raise BadInput(str(exc)) from None
    emit(args, {"file": str(args.file), "added": added},
         f"restored {args.file}: " + ", ".join(f"{k} +{v}" for k, v in added.items()))
    return EXIT_OK


def _keeps_the_database(args: argparse.Namespace) -> bool:
    """`restore --if-empty` into a database that already holds completions writes nothing, so a read-only session
    (`AUDIT_READONLY=1 make demo`) may run it: the store is opened read-only to see."""
    if not args.if_empty or not db_path(args).exists():
        return False
    return bool(open_store(args, readonly=True).summary()["completions"])


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `restore`."""
    restore = sub.add_parser("restore", parents=[common], help="load a dump into the database")
    restore.add_argument("file", type=Path)
    restore.add_argument("--if-empty", action="store_true", help="only when the database is missing or holds no "
                         "completions (what `make run` does with the demo); one with results is left as it is")
    restore.set_defaults(func=cmd_restore)
    writes(restore, "restore", read_only_ok=_keeps_the_database)
