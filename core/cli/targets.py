"""`targets add|list`: save OpenAI-compatible targets by name (no secrets) and list the known ones."""
from __future__ import annotations

import argparse
import json

from core.cli.common import EXIT_OK, BadInput, checked_option, emit, number_option, open_store, writes


# -- saved targets ---------------------------------------------------------------------------------
def cmd_targets_add(args: argparse.Namespace) -> int:
    """Save an OpenAI-compatible target by name (checked by main(): _target_name): its server, model and settings,
    never its key."""
    from core.targets.openai import OpenAIConfig, default_target_id

    settings = {key: value for key, value in {
        "api_key_env": args.api_key_env, "endpoint": args.endpoint, "max_concurrency": args.max_concurrency,
        "requests_per_minute": args.rpm, "tokens_per_minute": args.tpm, "timeout_s": args.timeout,
        "max_retries": args.max_retries, "max_new_tokens": args.max_new_tokens, "temperature": args.temperature,
        "price_input_per_m": args.price_input, "price_output_per_m": args.price_output,
        "outage_failures": args.outage_failures, "outage_window_s": args.outage_window}.items() if value is not None}
    try:
        config = OpenAIConfig.from_settings(args.model, args.base_url.rstrip("/"), settings)
    except ValueError as exc:
        raise BadInput(f"targets add {args.name}: {exc}") from None
    store = open_store(args)
    existing = store.target(args.name)
    if existing and (existing["backend"], existing["model"], existing["base_url"]) != \
            ("openai", config.model, config.base_url):
        raise BadInput(f"a target {args.name!r} exists already ({existing['backend']} {existing['model']} "
                       f"{existing['base_url'] or ''}); its completions keep that name, so choose another")
    store.save_target(args.name, "openai", config.model, config.base_url, args.family, args.size_b, config.settings())
    emit(args, {"target_id": args.name, "model": config.model, "base_url": config.base_url, **config.settings()},
         f"saved {args.name}: {config.model} at {config.base_url} (key from ${config.api_key_env}); "
         f"run it with --target {args.name} (same as openai:{config.model}@{config.base_url}, which would be "
         f"stored as {default_target_id(config.model, config.base_url)})")
    return EXIT_OK


def _target_name(name: str) -> str:
    """A saved target's name: an id (core.options), not a built-in target's, and without ':' (which --target reads
    as a spec's kind, e.g. openai:...); else OptionError."""
    from core.options import OptionError, check_id
    from core.targets import BUILTIN_TARGETS

    check_id("target name", name)
    if name in BUILTIN_TARGETS or ":" in name:
        raise OptionError(f"target name {name!r}: not {' or '.join(BUILTIN_TARGETS)} (built in), and no ':' "
                          "(--target would read it as a spec such as openai:MODEL@URL)")
    return name


def cmd_targets_list(args: argparse.Namespace) -> int:
    frame = open_store(args, readonly=True).targets()
    rows = [{"target_id": r.target_id, "backend": r.backend, "model": r.model, "base_url": r.base_url,
             "family": r.family, "size_b": None if r.size_b != r.size_b else r.size_b,
             "settings": json.loads(r.settings or "{}")} for r in frame.itertuples()]
    lines = [f"{r['target_id']}\t{r['backend']}\t{r['model']}\t{r['base_url'] or ''}"
             + (f"\tkey ${r['settings']['api_key_env']}" if r["settings"].get("api_key_env") else "") for r in rows]
    emit(args, rows, "\n".join(lines) if rows else "no targets saved or used yet")
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `targets add|list`."""
    targets = sub.add_parser("targets", help="save and list targets").add_subparsers(dest="targets_command",
                                                                                      required=True)
    add = targets.add_parser("add", parents=[common], help="save an OpenAI-compatible target by name (no secrets)")
    checked_option(add, "name", _target_name, help="an id: letters, digits, and . _ - @ (no ':')")
    add.add_argument("--model", required=True, help="the model name the server knows")
    add.add_argument("--base-url", default="https://api.openai.com/v1", help="e.g. http://127.0.0.1:8000/v1")
    add.add_argument("--api-key-env", default=None,
                     help="NAME of the environment variable holding the key (default OPENAI_API_KEY)")
    add.add_argument("--endpoint", default=None, choices=["chat", "completions"])
    number_option(add, "--max-concurrency", default=None)
    number_option(add, "--rpm", default=None, help="requests per minute allowed")
    number_option(add, "--tpm", default=None, help="tokens per minute allowed")
    number_option(add, "--timeout", default=None, help="seconds for one request")
    number_option(add, "--max-retries", default=None)
    number_option(add, "--max-new-tokens", default=None)
    number_option(add, "--temperature", default=None)
    number_option(add, "--price-input", default=None, help="price per 1M input tokens")
    number_option(add, "--price-output", default=None, help="price per 1M output tokens")
    number_option(add, "--outage-failures", default=None, help="consecutive connection failures (or the "
                     "same 5xx) after which the server counts as gone and the run stops (default: 2 x concurrency, "
                     "at least 8)")
    number_option(add, "--outage-window", default=None, help="seconds those failures must span before "
                     "the run stops (default 20)")
    add.add_argument("--family", default=None)
    number_option(add, "--size-b", default=None, help="parameters in billions")
    add.set_defaults(func=cmd_targets_add)
    writes(add, "targets add")
    listing = targets.add_parser("list", parents=[common], help="saved targets and targets used in runs")
    listing.set_defaults(func=cmd_targets_list)
