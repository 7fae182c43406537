"""`mitigate`: from audit to fix. Train a LoRA adapter with DPO on the audit's own preference pairs (core/mitigate/),
save it as a target, and with --audit run the before/after audit and print what changed for trained and held-out
groups. A stopped or killed training resumes with the same command; so does a stopped after-audit."""
from __future__ import annotations

import argparse
import sys
import time

from core.cli.common import EXIT_FAILURE, EXIT_OK, EXIT_STOPPED, BadInput, csv_list, emit, open_store, writes


def _pairs(args: argparse.Namespace, store):
    """The pair set and group split the options ask for (PairsError and VocabularyError become BadInput)."""
    from core.mitigate.pairs import PairsError, cap_per_group, pairs_from_run, read_pairs, split_groups

    vocabulary = store.taxonomy()
    try:
        if args.pairs:
            pairset = read_pairs(args.pairs, vocabulary)
            if args.languages:
                pairset.pairs = pairset.pairs[pairset.pairs["language"].isin(_languages(args, vocabulary))]
            split = split_groups(vocabulary, pairset.pairs["group"], args.train_groups, args.holdout_groups, args.seed)
            pairset.pairs = cap_per_group(pairset.pairs[pairset.pairs["group"].isin(split.trained)],
                                          args.pairs_per_group)
        else:
            judge = args.judge or store.default_judge()
            languages = _languages(args, vocabulary)
            every = pairs_from_run(store, args.from_run, judge, seed=args.seed, chosen_from=args.chosen_from,
                                   languages=languages)
            split = split_groups(vocabulary, every.pairs["group"], args.train_groups, args.holdout_groups, args.seed)
            pairset = pairs_from_run(store, args.from_run, judge, per_group=args.pairs_per_group, seed=args.seed,
                                     chosen_from=args.chosen_from, groups=split.trained, languages=languages)
    except PairsError as exc:
        raise BadInput(str(exc)) from None
    if not len(pairset.pairs):
        raise BadInput(f"{args.pairs or args.from_run}: no pair left for the trained groups "
                       f"({', '.join(split.trained)})")
    return pairset, split


def _languages(args: argparse.Namespace, vocabulary) -> list[str]:
    return [vocabulary.canonical_language(code) for code in args.languages]


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


class _StepMeter:
    """Training progress on stderr (core.run.progress.Meter): step, loss and the ETA from this execution's pace."""

    def __init__(self, quiet: bool) -> None:
        from core.run.progress import Meter

        self.meter = Meter("mitigate", unit="step", quiet=quiet)
        self.began = time.monotonic()
        self.first: int | None = None

    def __call__(self, step: int, total: int, loss: float | None) -> None:
        if self.first is None:  # the pace is measured from the first step of this execution (a resume starts late)
            self.first, self.began = step, time.monotonic()
        done = step - self.first
        pace = (time.monotonic() - self.began) / done if done else 0.0
        left = pace * (total - step)
        note = ", ".join(part for part in (
            f"loss {loss:.3f}" if loss is not None else "",
            f"ETA {_duration(left)} at {pace:.1f} s/step" if step < total and done else "") if part)
        self.meter.update(step, total, note=note)

    def close(self) -> None:
        self.meter.close()


def cmd_mitigate(args: argparse.Namespace) -> int:
    from core.mitigate.audit import before_after, manifest_of
    from core.mitigate.config import TrainConfig
    from core.mitigate.pairs import PairsError
    from core.mitigate.train import MitigateError, TrainingStopped, base_model, train

    if args.from_run and args.pairs:
        raise BadInput("give --from-run RUN or --pairs FILE, not both")
    if args.pairs:  # a bad pairs file is refused before the database is opened (or created)
        from core.mitigate.pairs import pair_records

        try:
            pair_records(args.pairs)
        except PairsError as exc:
            raise BadInput(str(exc)) from None
    store = open_store(args)
    payload: dict = {"out": str(args.out)}
    try:
        if args.from_run or args.pairs:
            if args.max_length < 32:
                raise BadInput(f"--max-length {args.max_length}: at least 32 tokens (a prompt and an answer)")
            pairset, split = _pairs(args, store)
            config = TrainConfig(base=args.target, beta=args.beta, epochs=args.epochs, max_length=args.max_length,
                                 learning_rate=args.learning_rate, batch_size=args.batch_size,
                                 save_steps=args.save_steps, seed=args.seed)
            base = base_model(args.target, store)
            meter = _StepMeter(args.quiet)
            try:
                result = train(pairset, args.out, config, split, base, on_step=meter)
            except TrainingStopped as exc:
                print(f"stopped: {exc}", file=sys.stderr)
                return EXIT_STOPPED
            finally:
                meter.close()
            manifest = result.manifest
            payload.update(steps=result.steps, pairs=len(pairset.pairs), adapter_sha256=result.adapter_sha256,
                           resumed_from=result.resumed_from, already_trained=result.already_done,
                           trained_groups=manifest["trained_groups"], held_out_groups=manifest["held_out_groups"],
                           chosen_sources=manifest["chosen_sources"], train_seconds=round(result.seconds, 1))
        elif not args.audit:
            raise BadInput("mitigate needs --from-run RUN or --pairs FILE to train (or --audit with the --out of a "
                           "finished training)")
        manifest = manifest_of(args.out)
        payload["target"] = _save_target(store, args.out)
        if args.audit:
            status = _audit(args, store)
            if status != EXIT_OK:
                return status
            result_ba = before_after(store, args.out)
            payload["before_after"] = result_ba.records()
    except (MitigateError, PairsError) as exc:
        raise BadInput(str(exc)) from None
    text = (f"{args.out}: adapter of {manifest['base']['spec']} trained {manifest['steps']} steps on "
            f"{len(manifest['pairs'])} pairs (trained groups: {', '.join(manifest['trained_groups'])}; held out: "
            f"{', '.join(manifest['held_out_groups']) or 'none'}; chosen answers from "
            f"{', '.join(f'{k} {v}' for k, v in manifest['chosen_sources'].items())}); target "
            f"{payload['target']} (audit it with --target local:{args.out})")
    if args.audit:
        text += "\n" + result_ba.text()
    emit(args, payload, text)
    return EXIT_OK


def _save_target(store, out) -> str:
    """Save the adapter as a target of the store (so the Run page offers it); returns its target id."""
    from core.mitigate.audit import adapted_spec
    from core.targets import resolve_target

    info = resolve_target(adapted_spec(out)).info
    store.save_target(info.target_id, info.backend, info.model, info.base_url, info.family, info.size_b, info.settings)
    return info.target_id


def _audit(args: argparse.Namespace, store) -> int:
    """Run (or resume) the before/after audit with the run command's progress bar."""
    from core.cli.run import _Bar
    from core.mitigate.audit import run_before_after

    bar = _Bar(enabled=not args.quiet)
    try:
        result = run_before_after(store, args.out, languages=_languages(args, store.taxonomy()),
                                  per_cell=args.per_cell, seed=args.seed, max_new_tokens=args.max_new_tokens,
                                  on_progress=bar)
    finally:
        bar.close()
    if result.status == "stopped":
        print(f"after-audit stopped; resume with the same command (run {result.run_id})", file=sys.stderr)
        return EXIT_STOPPED
    if result.status != "completed":
        print(f"error: after-audit {result.run_id} {result.status}: {result.message}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `mitigate`."""
    from core.mitigate.config import CHOSEN_FROM, PAIRS_PER_GROUP, TrainConfig

    defaults = TrainConfig()
    p = sub.add_parser("mitigate", parents=[common], help="train a LoRA adapter with DPO on the audit's preference "
                       "pairs (some groups held out), save it as a target, audit it before/after")
    p.add_argument("--target", default="smollm2", help="the local model to adapt (smollm2, gemma3-270m, local:PATH)")
    source = p.add_argument_group("pairs")
    source.add_argument("--from-run", default=None, metavar="RUN", help="build pairs from this run's jailbreaks")
    source.add_argument("--pairs", default=None, metavar="FILE", help="a pairs file (`export --format pairs`)")
    source.add_argument("--judge", default=None, help="--from-run: whose verdicts (default: the store's default)")
    source.add_argument("--chosen-from", choices=CHOSEN_FROM, default="templates",
                        help="--from-run: where refusals may come from: the run only, also another model's refusal of "
                             "the probe in the store, also the project's refusal templates (default)")
    source.add_argument("--languages", type=csv_list, default=[], help="only these languages (pairs and audit)")
    source.add_argument("--train-groups", type=csv_list, default=[], help="train on these groups only")
    source.add_argument("--holdout-groups", type=csv_list, default=[],
                        help="keep these groups out of training (default: a seeded third of the groups)")
    source.add_argument("--pairs-per-group", type=int, default=PAIRS_PER_GROUP, help="at most this many pairs per "
                        "language x group (balanced: as many as the scarcest trained group has, if fewer)")
    training = p.add_argument_group("training")
    training.add_argument("--out", required=True, help="output directory (adapter, pairs, losses, manifest)")
    training.add_argument("--beta", type=float, default=defaults.beta)
    training.add_argument("--epochs", type=int, default=defaults.epochs)
    training.add_argument("--max-length", type=int, default=defaults.max_length, help="prompt + answer tokens")
    training.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    training.add_argument("--batch-size", type=int, default=defaults.batch_size)
    training.add_argument("--save-steps", type=int, default=defaults.save_steps, help="checkpoint every N steps")
    training.add_argument("--seed", type=int, default=defaults.seed)
    training.add_argument("--quiet", action="store_true", help="no progress")
    audit = p.add_argument_group("before/after audit")
    audit.add_argument("--audit", action="store_true", help="audit base and adapter on the same probes (minus the "
                       "training probes) and compare them")
    audit.add_argument("--per-cell", type=int, default=3, help="probes per language x group x strategy")
    audit.add_argument("--max-new-tokens", type=int, default=64)
    p.set_defaults(func=cmd_mitigate)
    writes(p, "mitigate")
