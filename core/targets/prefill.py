"""Prefill of a batch of prompts on CPU: shared prefixes once, no padding, room to decode in place.

Why it matters: for the default model on a 2-core CPU, 64 probes x 64 new tokens spend about half their
time reading the prompts (prefill), and a padded batch prefill computes every pad as if it were a token.
Audit prompts are built as counterfactuals (the same scenario and strategy for every group: MiJaBench's
design, and the bundled set's), so they share long prefixes: the chat template's system turn and whole
template sentences. Here each distinct prefix of at least MIN_SHARED tokens is computed once (a prefix
tree walked depth first); the remainders of prompts that part at the same point are computed together,
right-padded in batches of similar length (at most a quarter padding, none of it ever attended to); and
the rows are joined left-padded into one cache that generate() decodes as a batch. The 64 bench prompts
hold 9,164 tokens; about 5,000 positions are computed (bench/README.md has the measured speed).

The joined cache's layers (ReservedLayer) keep room for the answer, so each decoding step writes its
keys and values in place instead of copying the whole cache to append one position (a quarter of a
decoding step at batch 64).

Each row's cache holds positions 0..n-2 of its prompt, as in a padded batch whose pads are masked, so the
answers are those of the padded batch and of each prompt generated alone (tests/targets/test_local.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

# A shared prefix shorter than this is computed with each prompt instead: a separate forward pass costs
# about as much as a decoding step (tens of ms) before its tokens count.
MIN_SHARED = 16

KeyValues = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values of shape [1, heads, n, dim]


class ReservedLayer(DynamicLayer):
    """A DynamicLayer whose keys and values sit in buffers with `room` free positions: appending writes
    in place (DynamicLayer concatenates, copying the whole cache at every step)."""

    def __init__(self, rows: Sequence[tuple[torch.Tensor, torch.Tensor]], length: int, room: int) -> None:
        """One layer of the joined cache: each row's [1, heads, n, dim] keys and values at the right end of
        `length` positions (zeros on the left, masked), then `room` free positions."""
        super().__init__()
        _, heads, _, dim = rows[0][0].shape
        self.dtype, self.device = rows[0][0].dtype, rows[0][0].device
        self._keys = rows[0][0].new_empty((len(rows), heads, length + room, dim))
        self._values = rows[0][1].new_empty((len(rows), heads, length + room, dim))
        for row, (keys, values) in enumerate(rows):
            start = length - keys.shape[2]
            self._keys[row, :, :start] = 0
            self._values[row, :, :start] = 0
            self._keys[row, :, start:length] = keys[0]
            self._values[row, :, start:length] = values[0]
        self._length = length
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._length + key_states.shape[-2]
        untouched = self.keys.data_ptr() == self._keys.data_ptr() and self.keys.shape[-2] == self._length \
            and self.keys.shape[0] == key_states.shape[0]
        if not untouched or end > self._keys.shape[-2]:  # cropped, reordered or full: grow the plain way
            return super().update(key_states, value_states, *args, **kwargs)
        self._keys[:, :, self._length:end] = key_states
        self._values[:, :, self._length:end] = value_states
        self._length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def _common_length(rows: Sequence[Sequence[int]], depth: int) -> int:
    """How many tokens from `depth` on every row has in common."""
    first, length = rows[0], min(len(row) for row in rows) - depth
    for offset in range(length):
        token = first[depth + offset]
        if any(row[depth + offset] != token for row in rows):
            return offset
    return max(length, 0)


def prefilled_cache(model: Any, ids: Sequence[Sequence[int]], device: str, room: int) -> DynamicCache:
    """The cache of every prompt but its last token (generate() feeds that), joined left-padded.

    `ids`: each prompt's tokens (at least 2). `room`: positions to keep free for decoding.
    """
    rows = [list(tokens[:-1]) for tokens in ids]
    done: list[KeyValues | None] = [None] * len(rows)
    tails: dict[int, tuple[int, KeyValues | None, list[int]]] = {}  # id(past) -> depth, past, rows ending there

    def forward(batch: list[Sequence[int]], past: KeyValues | None) -> list[KeyValues]:
        """Prefill token rows after the shared `past`; rows are right-padded, which a causal model's real
        tokens never attend to, so each row's cache is cut back to its own length."""
        width = max(map(len, batch))
        tokens = torch.tensor([list(row) + [0] * (width - len(row)) for row in batch], device=device)
        cache = DynamicCache([(k.expand(len(batch), -1, -1, -1), v.expand(len(batch), -1, -1, -1))
                              for k, v in past]) if past else DynamicCache()
        out = model(input_ids=tokens, past_key_values=cache, use_cache=True,
                    logits_to_keep=1)  # the logits of a prefill are not needed
        start = past[0][0].shape[2] if past else 0
        return [[(layer.keys[i:i + 1, :, :start + len(row)], layer.values[i:i + 1, :, :start + len(row)])
                 for layer in out.past_key_values.layers] for i, row in enumerate(batch)]

    def walk(members: list[int], depth: int, past: KeyValues | None) -> None:
        """Plan rows `members`, which share tokens [0, depth) whose cache is `past`: shared segments are
        computed here, each row's own remainder is left in `tails` to be computed with its siblings."""
        shared = _common_length([rows[m] for m in members], depth) if len(members) > 1 else 0
        if shared >= MIN_SHARED:
            past = forward([rows[members[0]][depth:depth + shared]], past)[0]
            depth, shared = depth + shared, 0
        if len(members) == 1:
            tails.setdefault(id(past), (depth, past, []))[2].extend(members)
            return
        branches: dict[int, list[int]] = {}
        for member in members:  # the rows part at depth + shared (or end there)
            if len(rows[member]) == depth + shared:
                tails.setdefault(id(past), (depth, past, []))[2].append(member)
            else:
                branches.setdefault(rows[member][depth + shared], []).append(member)
        for branch in branches.values():
            walk(branch, depth, past)

    walk(list(range(len(rows))), 0, None)
    for depth, past, members in tails.values():
        ending = [m for m in members if len(rows[m]) == depth]
        for member in ending:
            done[member] = past
        rest = sorted((m for m in members if len(rows[m]) > depth), key=lambda m: len(rows[m]), reverse=True)
        while rest:  # batches of similar length: at most a quarter of a batch's positions are padding
            batch = [rest.pop(0)]
            while rest and (len(batch) + 1) * (len(rows[batch[0]]) - depth) <= \
                    1.25 * sum(len(rows[m]) - depth for m in (*batch, rest[0])):
                batch.append(rest.pop(0))
            for member, cached in zip(batch, forward([rows[m][depth:] for m in batch], past)):
                done[member] = cached
    length = max(map(len, rows))
    cache = DynamicCache()
    cache.layers = [ReservedLayer([cached[layer] for cached in done], length, room) for layer in range(len(done[0]))]
    return cache
