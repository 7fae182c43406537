"""Local generation speed: the runner's batched local target against one prompt at a time, side by side.

The default model (SmolLM2-135M-Instruct) answers the same bundled probes, greedy, the same number of
new tokens, three ways in one process with the same weights:
  * ours: `LocalTarget.generate` as the runner calls it (batched, longest-first; on CPU each prompt
    prefilled alone, then the batch decoded together from the joined cache);
  * ours with the padded batch prefilled at once (what it did before, and what it does on a GPU);
  * plain: `model.generate` one prompt at a time, what a user writing a loop over transformers gets;
  * llama.cpp (when `llama_cpp` is importable here, or a llama.cpp-compatible server is given with
    --llama-url): the same GGUF file one prompt at a time; otherwise reported as not installed.
Tokens per second count the tokens each way actually produced (up to and including the end-of-turn
token), so stopping early is not rewarded. A fresh interpreter then loads the model from the cached
converted weights ("second start"), and its load time is reported.

    .venv/bin/python -m bench.local_gen [--probes 64] [--tokens 64] [--batch-size 64] [--sweep 16,32] [--json]
    .venv/bin/python -m bench.local_gen --llama-url http://127.0.0.1:8080   # a running llama.cpp server
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATIO = 8.0
GOAL_LOAD_S = 5.0


def bench_probes(count: int) -> list[str]:
    """`count` bundled probe prompts spread evenly over the file (languages, groups and lengths vary)."""
    from core.probes.builder import BUNDLED_PROBES
    from core.probes.loader import load_probes

    probes = load_probes(BUNDLED_PROBES, default_source="builtin").probes
    step = max(1, len(probes) // count)
    return [p.prompt for p in probes[::step][:count]]


def _say(message: str) -> None:
    """Progress on stderr (stdout carries the JSON)."""
    print(f"[local_gen {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ours(prompts: Sequence[str], tokens: int, batch_size: int, prefill_each: bool = True) -> dict:
    from core.targets import resolve_target

    target = resolve_target("smollm2", max_new_tokens=tokens, batch_size=batch_size)
    target.prefill_each = prefill_each and target.device == "cpu"
    load_s = target.load()
    # One untimed pass first: the first batch of a shape allocates its buffers and sets up the math
    # library's kernels (4-5 s here). A run pays that once for thousands of prompts, so the timed pass
    # is what it sustains; plain runs after ours in this process, so it starts warm too.
    target.generate(prompts)
    started = time.perf_counter()
    generations = target.generate(prompts)
    seconds = time.perf_counter() - started
    produced = sum(g.completion_tokens or 0 for g in generations)
    return {"target": target, "load_s": load_s, "seconds": seconds, "tokens": produced,
            "tokens_per_s": produced / seconds, "texts": [g.text for g in generations],
            "errors": sum(g.error is not None for g in generations)}


def _plain(target, prompts: Sequence[str], tokens: int) -> dict:
    """The same model and weights, `generate` called once per prompt (no batching), greedy."""
    import torch

    tokenizer, model = target._model()
    produced = 0
    texts = []
    started = time.perf_counter()
    for prompt in prompts:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        encoded = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            output = model.generate(**encoded, max_new_tokens=tokens, do_sample=False, temperature=None,
                                    top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
        new = output[0, encoded["input_ids"].shape[1]:].tolist()
        produced += len(new)
        texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tokens": produced, "tokens_per_s": produced / seconds, "texts": texts}


def _llama_inprocess(prompts: Sequence[str], tokens: int) -> dict:
    from llama_cpp import Llama

    from core.targets.local import smollm2_gguf

    llm = Llama(model_path=str(smollm2_gguf()), n_ctx=2048, n_threads=os.cpu_count() or 1, verbose=False, seed=0)
    produced = 0
    started = time.perf_counter()
    for prompt in prompts:
        out = llm.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=tokens, temperature=0.0)
        produced += out["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    return {"how": "llama_cpp in process", "seconds": seconds, "tokens": produced, "tokens_per_s": produced / seconds}


def _llama_server(url: str, prompts: Sequence[str], tokens: int) -> dict:
    """One request at a time to an OpenAI-compatible llama.cpp server (its own process, same 2 cores)."""
    produced = 0
    started = time.perf_counter()
    for prompt in prompts:
        body = json.dumps({"messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                           "temperature": 0.0}).encode()
        request = urllib.request.Request(url.rstrip("/") + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            produced += json.load(response)["usage"]["completion_tokens"]
    seconds = time.perf_counter() - started
    return {"how": f"server {url}", "seconds": seconds, "tokens": produced, "tokens_per_s": produced / seconds}


def second_start() -> dict:
    """A fresh interpreter loading the default model from the cached converted weights."""
    code = ("import time; t0 = time.perf_counter(); from core.targets import resolve_target; "
            "t = resolve_target('smollm2'); s = t.load(); "
            "print(round(s, 3), round(time.perf_counter() - t0, 3))")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - started
    load_s, with_imports_s = (float(v) for v in out.stdout.split()[-2:])
    return {"load_s": load_s, "load_with_imports_s": with_imports_s, "process_wall_s": round(wall, 3)}


def run(probes: int = 64, tokens: int = 64, batch_size: int = 64, llama_url: str | None = None,
        sweep: Sequence[int] = ()) -> dict:
    """All measurements; a dict of figures and ratios."""
    import torch

    prompts = bench_probes(probes)
    _say(f"ours: {len(prompts)} prompts, batch {batch_size}")
    ours = _ours(prompts, tokens, batch_size)
    _say(f"ours: {ours['tokens_per_s']:.1f} tokens/s; plain, one prompt at a time")
    plain = _plain(ours.pop("target"), prompts, tokens)
    _say(f"plain: {plain['tokens_per_s']:.1f} tokens/s")
    _say("ours before the per-prompt prefill: the padded batch prefilled at once")
    padded = _ours(prompts, tokens, batch_size, prefill_each=False)
    padded.pop("target")
    _say(f"ours, padded prefill: {padded['tokens_per_s']:.1f} tokens/s")
    same = sum(a == b for a, b in zip(ours["texts"], plain["texts"]))
    same_padded = sum(a == b for a, b in zip(ours.pop("texts"), padded.pop("texts")))
    plain.pop("texts")
    result: dict = {
        "probes": len(prompts), "max_new_tokens": tokens, "batch_size": batch_size,
        "torch_threads": torch.get_num_threads(),
        "ours": {k: round(v, 3) if isinstance(v, float) else v for k, v in ours.items()},
        "plain": {k: round(v, 3) if isinstance(v, float) else v for k, v in plain.items()},
        "ratio_ours_vs_plain": round(ours["tokens_per_s"] / plain["tokens_per_s"], 2),
        "goal_ratio": GOAL_RATIO,
        "identical_texts": same,
        "ours_padded_prefill_tokens_per_s": round(padded["tokens_per_s"], 1),
        "ratio_per_prompt_prefill_vs_padded": round(ours["tokens_per_s"] / padded["tokens_per_s"], 2),
        "identical_texts_padded": same_padded,
    }
    if llama_url:
        llama = _llama_server(llama_url, prompts, tokens)
    elif importlib.util.find_spec("llama_cpp") is not None:
        llama = _llama_inprocess(prompts, tokens)
    else:
        llama = None
    if llama is None:
        result["llama_cpp"] = "not installed"
    else:
        result["llama_cpp"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in llama.items()}
        result["ratio_ours_vs_llama_cpp"] = round(ours["tokens_per_s"] / llama["tokens_per_s"], 2)
    for size in sweep:  # the profile behind the batch size: ours again at other sizes (same prompts)
        _say(f"ours at batch {size}")
        again = _ours(prompts, tokens, size)
        result.setdefault("ours_by_batch_size", {})[str(size)] = round(again["tokens_per_s"], 1)
    result["second_start"] = second_start()
    result["goal_load_s"] = GOAL_LOAD_S
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--llama-url", default=None, help="a running llama.cpp (OpenAI-compatible) server")
    parser.add_argument("--sweep", type=lambda v: [int(x) for x in v.split(",") if x], default=[],
                        help="also time ours at these batch sizes, e.g. 8,16,32")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.probes, args.tokens, args.batch_size, args.llama_url, args.sweep)
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['probes']} probes x {result['max_new_tokens']} new tokens, torch threads {result['torch_threads']}")
    rows = [("ours (batched)", result["ours"]), ("plain generate, one at a time", result["plain"])]
    if isinstance(result["llama_cpp"], dict):
        rows.append(("llama.cpp, one at a time", result["llama_cpp"]))
    for name, row in rows:
        print(f"{name:<32}{row['tokens']:>7} tokens {row['seconds']:>8.1f} s {row['tokens_per_s']:>8.1f} tok/s")
    if not isinstance(result["llama_cpp"], dict):
        print(f"{'llama.cpp':<32}{result['llama_cpp']}")
    print(f"ours with the padded batch prefilled at once: {result['ours_padded_prefill_tokens_per_s']} tok/s "
          f"(per-prompt prefill {result['ratio_per_prompt_prefill_vs_padded']}x faster, "
          f"{result['identical_texts_padded']} identical texts)")
    print(f"ratio ours / plain: {result['ratio_ours_vs_plain']}x (goal {GOAL_RATIO}x); "
          f"identical texts {result['identical_texts']}/{result['probes']}")
    s = result["second_start"]
    print(f"second start: load {s['load_s']} s, with imports {s['load_with_imports_s']} s (goal < {GOAL_LOAD_S} s)")


if __name__ == "__main__":
    main()
