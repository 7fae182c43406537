"""`taxonomy init` and `taxonomy check`: write and validate the file that says who an audit is about."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import EXIT_BAD_INPUT, EXIT_OK, BadInput, emit
from core.vocab import taxonomy


def cmd_taxonomy_init(args: argparse.Namespace) -> int:
    """Scaffold a valid taxonomy to edit; never overwrites a file."""
    path = Path(args.file)
    if path.exists():
        raise BadInput(f"{path}: exists already; choose another name (taxonomy init never overwrites)")
    text = taxonomy.scaffold(path)
    taxonomy.parse(text, str(path))  # the scaffold is itself valid: what `check` says of it before any edit
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    emit(args, {"path": str(path)}, f"wrote {path}: edit its languages and groups, then "
                                    f"`python -m core taxonomy check {path}`")
    return EXIT_OK


def cmd_taxonomy_check(args: argparse.Namespace) -> int:
    """Every problem of the file at once, located (FILE:LINE: reason, exit 2), or what it declares."""
    try:
        vocabulary = taxonomy.load(args.file)
    except taxonomy.TaxonomyError as exc:
        for line in str(exc).splitlines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    languages = {code: list(language.groups) for code, language in vocabulary.languages.items()}
    emit(args, {"path": str(args.file), "name": vocabulary.name, "sha256": vocabulary.sha256, "languages": languages,
                "strategies": list(vocabulary.strategies), "categories": list(vocabulary.categories)},
         f"{args.file}: taxonomy {vocabulary.name!r} is valid: "
         + "; ".join(f"{code} ({vocabulary.languages[code].name}): {len(groups)} groups ({', '.join(groups)})"
                     for code, groups in languages.items())
         + f"; {len(vocabulary.attack_strategies)} attack strategies + control; "
           f"{len(vocabulary.categories)} scenario categories")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `taxonomy init` and `taxonomy check`."""
    tax = sub.add_parser("taxonomy", help="write or check a taxonomy file (languages, groups, forms)")
    commands = tax.add_subparsers(dest="taxonomy_command", required=True)
    init = commands.add_parser("init", parents=[common], help="write a new taxonomy file to edit")
    init.add_argument("file", type=Path)
    init.set_defaults(func=cmd_taxonomy_init)
    check = commands.add_parser("check", parents=[common], help="validate a taxonomy file (located errors, exit 2)")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_taxonomy_check)
