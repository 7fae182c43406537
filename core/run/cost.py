"""Token usage and cost of a run, per target: what an auditor of a paid API wants to know before and after.

Prices are per 1M tokens (input and output separately, as providers publish them), given on the
command line or saved with a target; the estimate is tokens x price, from the token counts the server
reported for each stored completion.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.targets.base import Target


def estimate_cost(prompt_tokens: int, completion_tokens: int, price_input_per_m: float | None,
                  price_output_per_m: float | None) -> float | None:
    """Cost in the prices' currency, or None when either price is unknown."""
    if price_input_per_m is None or price_output_per_m is None:
        return None
    return prompt_tokens / 1e6 * price_input_per_m + completion_tokens / 1e6 * price_output_per_m


def run_usage(store: Any, run_id: str, targets: Sequence[Target], price_input_per_m: float | None = None,
              price_output_per_m: float | None = None) -> list[dict[str, Any]]:
    """Per API target (or any target when prices are given): tokens, latency, retries and cost of a run.

    Prices given here override the ones saved with a target.
    """
    by_id = {t.info.target_id: t for t in targets}
    rows = []
    for row in store.token_usage(run_id).itertuples():
        target = by_id.get(row.target_id)
        if target is None:
            continue
        settings = target.info.settings
        price_in = price_input_per_m if price_input_per_m is not None else settings.get("price_input_per_m")
        price_out = price_output_per_m if price_output_per_m is not None else settings.get("price_output_per_m")
        if target.info.backend != "openai" and (price_in is None or price_out is None):
            continue
        usage = {"target_id": row.target_id, "completions": int(row.completions), "errors": int(row.errors),
                 "prompt_tokens": int(row.prompt_tokens), "completion_tokens": int(row.completion_tokens),
                 "mean_latency_s": None if row.mean_latency_s != row.mean_latency_s else round(row.mean_latency_s, 4),
                 "cost": estimate_cost(int(row.prompt_tokens), int(row.completion_tokens), price_in, price_out),
                 "price_input_per_m": price_in, "price_output_per_m": price_out}
        stats = target.api_stats()
        if stats is not None:
            usage["api"] = stats  # this execution only: requests, retries and why
        rows.append(usage)
    return rows
