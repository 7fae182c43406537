"""The DPO training of a LoRA adapter for a local target, resumable from its checkpoints.

TRL's DPOTrainer (pinned with PEFT in requirements.txt) does the loss and the reference model: with a PEFT
model the reference is the base model with the adapter disabled, so no second copy of the weights is held. The
Trainer underneath writes a checkpoint every `save_steps` steps in OUT/checkpoints (adapter weights, optimizer,
scheduler and RNG state), and resuming from one continues the same data order and the same random draws, so a
killed training (kill -9, power loss) run again with the same command continues from the last checkpoint.
Ctrl-C asks the training to stop after the step in flight, saves a checkpoint there and exits; a second Ctrl-C
stops at once, with the last checkpoint kept.

Everything a reader of the result needs is in OUT: the adapter (adapter_model.safetensors, adapter_config.json),
pairs.jsonl (the exact pairs trained on), losses.jsonl (one line per step: loss, reward margin and accuracy),
and manifest.json (config, pair ids with sha256, the base model's spec, path and sha256, the adapter's sha256,
trained and held-out groups, where the chosen answers came from, library versions). A training is identified by
the fingerprint of its config, pairs and base model: the same command on the same OUT resumes it (or reports it
finished), a different one is refused instead of mixing two trainings' checkpoints.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.mitigate.config import TrainConfig
from core.mitigate.pairs import GroupSplit, PairSet, pair_sha256
from core.targets.local import ADAPTER_WEIGHTS, file_sha256

LORA_TARGETS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")  # the attention projections
MANIFEST = "manifest.json"
TRAINING = "training.json"  # written when a training starts: its fingerprint, so a rerun knows what it resumes
LOSSES = "losses.jsonl"
PAIRS = "pairs.jsonl"
CHECKPOINTS = "checkpoints"


class MitigateError(ValueError):
    """A training that cannot start as asked (not a local model, an OUT holding another training...)."""


@dataclass(frozen=True)
class BaseModel:
    """The model an adapter is trained on: its spec, the transformers directory and the weights' sha256."""

    spec: str
    path: str
    target_id: str
    sha256: str
    prompt_format: str = "chat"


@dataclass
class AdapterTrainingResult:
    out: Path
    steps: int
    adapter_sha256: str
    resumed_from: int | None  # the checkpoint step this execution resumed from (None: a fresh start)
    seconds: float  # this execution's training time
    already_done: bool = False  # the OUT held this very training, finished: nothing was trained
    manifest: dict = field(default_factory=dict)


def weights_sha256(directory: Path) -> str:
    """sha256 over a model directory's weight files (name and content, sorted): the base model's identity."""
    digest = hashlib.sha256()
    files = sorted(p for p in directory.iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file())
    if not files:
        raise MitigateError(f"{directory}: no weight files (*.safetensors, *.bin) to hash")
    for path in files:
        digest.update(f"{path.name}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def base_model(spec: str, store: Any = None) -> BaseModel:
    """The local model a spec names, as a transformers directory (a GGUF is converted once, core/targets/local.py)."""
    from core.targets import resolve_target
    from core.targets.local import LocalTarget, converted_gguf

    target = resolve_target(spec, store=store)
    if not isinstance(target, LocalTarget):
        raise MitigateError(f"--target {spec}: mitigate trains a local model (smollm2, gemma3-270m, local:PATH); "
                            f"{target.info.backend} targets have no weights here")
    if target.adapter is not None:
        raise MitigateError(f"--target {spec}: {target.model_ref} is an adapter already; train on its base "
                            f"({target.adapter.base_spec or target.adapter.base_path})")
    path = Path(target.model_ref)
    if path.suffix == ".gguf":
        path = converted_gguf(path)
    if not path.is_dir():
        raise MitigateError(f"--target {spec}: {path} is not a model directory on this machine (mitigate needs "
                            "the weights locally)")
    return BaseModel(spec, str(path), target.info.target_id, weights_sha256(path), target.prompt_format)


def fingerprint(config: TrainConfig, pairs: list[dict], base: BaseModel) -> str:
    """What identifies one training: config, the pairs' hashes in order, the base weights."""
    text = json.dumps({"config": config.to_dict(), "pairs": [p["sha256"] for p in pairs], "base": base.sha256},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def pair_records(pairset: PairSet) -> list[dict]:
    """The manifest's account of each pair: ids, group, where its refusal came from, and its sha256."""
    rows = []
    for index, pair in enumerate(pairset.pairs.to_dict(orient="records")):
        rows.append({"pair": index, "probe_id": pair["probe_id"], "language": pair["language"],
                     "group": pair["group"], "strategy": pair.get("strategy", ""),
                     "chosen_source": pair.get("chosen_source", ""), "chosen_model": pair.get("chosen_model", ""),
                     "chosen_completion_id": pair.get("chosen_completion_id", ""),
                     "rejected_completion_id": pair.get("rejected_completion_id", ""),
                     "sha256": pair_sha256(pair["prompt"], pair["chosen"], pair["rejected"])})
    return rows


def _write_json(path: Path, payload: dict) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    partial.replace(path)  # atomic: a kill never leaves half a manifest


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def last_checkpoint(out: Path) -> Path | None:
    """The newest complete checkpoint, or None. The Trainer writes the adapter, optimizer, scheduler and RNG state
    first and trainer_state.json last, so a checkpoint whose trainer state is missing or unreadable was cut short
    by a kill while it was written, and is passed over."""
    folder = out / CHECKPOINTS
    if not folder.is_dir():
        return None
    found = []
    for path in folder.glob("checkpoint-*"):
        step = path.name.rsplit("-", 1)[-1]
        if step.isdigit() and read_json(path / "trainer_state.json") is not None and all(
                (path / name).exists() for name in ("optimizer.pt", "rng_state.pth", ADAPTER_WEIGHTS)):
            found.append((int(step), path))
    return max(found)[1] if found else None


def read_losses(out: Path) -> list[dict]:
    """losses.jsonl as records (an unreadable last line, cut by a kill, is skipped)."""
    path = Path(out) / LOSSES
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _keep_losses_until(out: Path, step: int) -> None:
    """On resume: the steps after the checkpoint are trained again, so their old lines go (no duplicates)."""
    kept = [row for row in read_losses(out) if row.get("step", 0) <= step]
    with (out / LOSSES).open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in kept)


def _dataset_rows(pairset: PairSet, prompt_format: str, bos: str | None) -> list[dict]:
    """TRL's conversational layout (the chat template renders it the way LocalTarget prompts the model); a model
    prompted as a plain transcript (a base model, core.targets.local.PLAIN_FORMAT) gets the transcript."""
    from core.targets.local import plain_prompt

    rows = []
    for pair in pairset.pairs.itertuples(index=False):
        if prompt_format == "plain":
            rows.append({"prompt": plain_prompt(pair.prompt, bos), "chosen": " " + pair.chosen,
                         "rejected": " " + pair.rejected})
        else:
            rows.append({"prompt": [{"role": "user", "content": pair.prompt}],
                         "chosen": [{"role": "assistant", "content": pair.chosen}],
                         "rejected": [{"role": "assistant", "content": pair.rejected}]})
    return rows


def _check_prompt_lengths(tokenizer: Any, rows: list[dict], max_length: int) -> None:
    """MitigateError when some prompt alone fills max_length: TRL would drop those pairs without a word."""
    lengths = []
    for row in rows:
        if isinstance(row["prompt"], str):
            lengths.append(len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]))
        else:
            rendered = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
            lengths.append(len(tokenizer(rendered, add_special_tokens=False)["input_ids"]))
    too_long = [n for n in lengths if n >= max_length]
    if too_long:
        raise MitigateError(f"--max-length {max_length}: {len(too_long)} of {len(rows)} pairs have a prompt of "
                            f"{max_length} tokens or more (the longest {max(too_long)}), which would leave no answer "
                            f"to train on; use --max-length {max(lengths) + 64} or more")


class _Stop:
    """Ctrl-C during training: the first asks for a checkpoint after the step in flight, a second stops now."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.previous: Any = None

    def __enter__(self) -> _Stop:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt
        self.requested.set()
        print("stopping after this step (a checkpoint is saved; Ctrl-C again to stop at once)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _callback(out: Path, stop: _Stop, on_step: Callable[[int, int, float | None], None] | None):
    """The Trainer callback: a losses.jsonl line per logged step, progress per step, the Ctrl-C checkpoint."""
    from transformers import TrainerCallback

    class Callback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                row = {"step": state.global_step, "epoch": logs.get("epoch"), "loss": logs["loss"],
                       "reward_margin": logs.get("rewards/margins"), "reward_accuracy": logs.get("rewards/accuracies"),
                       "learning_rate": logs.get("learning_rate"), "time": time.time()}
                with (out / LOSSES).open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(row) + "\n")
                if on_step is not None:  # every step is logged (logging_steps=1), so progress follows the log
                    on_step(state.global_step, state.max_steps, logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):
            if stop.requested.is_set():
                control.should_save = True
                control.should_training_stop = True
            return control

    return Callback()


class TrainingStopped(KeyboardInterrupt):
    """Ctrl-C stopped the training; `step` is the checkpoint it can resume from."""

    def __init__(self, step: int, out: Path) -> None:
        super().__init__(f"training stopped at step {step}; its checkpoint is in {out / CHECKPOINTS}: run the same "
                         "command again to resume")
        self.step = step


def train(pairset: PairSet, out: str | Path, config: TrainConfig, split: GroupSplit, base: BaseModel,
          on_step: Callable[[int, int, float | None], None] | None = None) -> AdapterTrainingResult:
    """Train (or resume, or find finished) the adapter of `pairset` on `base` into `out`.

    `on_step(step, total_steps, last_loss)` after each optimiser step (the CLI's progress bar). MitigateError when
    `out` holds another training's checkpoints; TrainingStopped after a Ctrl-C (the checkpoint is kept)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pairs = pair_records(pairset)
    key = fingerprint(config, pairs, base)
    manifest = read_json(out / MANIFEST)
    if manifest and manifest.get("fingerprint") == key and (out / ADAPTER_WEIGHTS).exists():
        return AdapterTrainingResult(out, manifest["steps"], manifest["adapter_sha256"], None, 0.0, True, manifest)
    started = read_json(out / TRAINING)
    checkpoint = last_checkpoint(out)
    if (started and started.get("fingerprint") != key and (checkpoint or (out / ADAPTER_WEIGHTS).exists())) or \
            (manifest and manifest.get("fingerprint") != key):
        raise MitigateError(f"{out}: holds another training (other pairs, settings or base model); choose another "
                            "--out, or delete that directory to start again")
    if started is None or started.get("fingerprint") != key:
        checkpoint = None  # checkpoints without a record of what they train: not ours to resume
    _write_json(out / TRAINING, {"fingerprint": key, "config": config.to_dict(), "base": asdict(base),
                                 "started": time.time()})
    with (out / PAIRS).open("w", encoding="utf-8", newline="\n") as handle:
        for record in pairset.pairs.to_dict(orient="records"):
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    resumed_from = int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else None
    _keep_losses_until(out, resumed_from or 0)

    with warnings.catch_warnings():
        trainer = _trainer(pairset, out, config, base)
    stop = _Stop()
    trainer.add_callback(_callback(out, stop, on_step))
    began = time.perf_counter()
    with stop, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - began
    steps = trainer.state.global_step
    if stop.requested.is_set() and steps < trainer.state.max_steps:
        raise TrainingStopped(steps, out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer.model.save_pretrained(str(out))
    adapter_sha = file_sha256(out / ADAPTER_WEIGHTS)
    manifest = _manifest(pairset, pairs, config, split, base, key, steps, adapter_sha, seconds, resumed_from)
    _write_json(out / MANIFEST, manifest)
    return AdapterTrainingResult(out, steps, adapter_sha, resumed_from, seconds, False, manifest)


def _trainer(pairset: PairSet, out: Path, config: TrainConfig, base: BaseModel):
    """TRL's DPOTrainer with a LoRA r=config.lora_r on the attention projections, quiet (the CLI has its bar)."""
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from core.targets.local import _quiet_transformers

    _quiet_transformers()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    cuda = torch.cuda.is_available()
    if not cuda and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(os.cpu_count() or 1)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    plain = base.prompt_format == "plain" or not getattr(tokenizer, "chat_template", None)
    rows = _dataset_rows(pairset, "plain" if plain else "chat", tokenizer.bos_token)
    _check_prompt_lengths(tokenizer, rows, config.max_length)
    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations of what TRL calls: not ours to fix
    args = DPOConfig(
        output_dir=str(out / CHECKPOINTS), per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs, learning_rate=config.learning_rate, beta=config.beta,
        max_length=config.max_length, save_strategy="steps", save_steps=config.save_steps, save_total_limit=2,
        logging_steps=1, report_to="none", disable_tqdm=True, seed=config.seed, data_seed=config.seed,
        gradient_checkpointing=False, use_cpu=not cuda, dataloader_num_workers=0, lr_scheduler_type="linear")
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora)
    trainer.remove_callback(PrinterCallback)  # it prints every log dict to stdout; losses.jsonl holds them
    return trainer


def _manifest(pairset: PairSet, pairs: list[dict], config: TrainConfig, split: GroupSplit, base: BaseModel,
              key: str, steps: int, adapter_sha: str, seconds: float, resumed_from: int | None) -> dict:
    import peft
    import torch
    import transformers
    import trl

    return {"format": 1, "fingerprint": key, "config": config.to_dict(), "base": asdict(base),
            "adapter_sha256": adapter_sha, "steps": steps, "train_seconds_last_execution": round(seconds, 1),
            "resumed_from_step": resumed_from,
            "trained_groups": list(split.trained), "held_out_groups": list(split.held_out),
            "pairs_source": pairset.source, "chosen_sources": pairset.chosen_sources(),
            "pairs": pairs, "probe_ids": sorted({p["probe_id"] for p in pairs}),
            "versions": {"trl": trl.__version__, "peft": peft.__version__,
                         "transformers": transformers.__version__, "torch": torch.__version__},
            "finished": time.time()}
