"""A per-target rate limiter for API targets: requests per minute, tokens per minute, and a shared pause.

Providers publish limits per minute; exceeding them earns 429 answers that cost a round trip and a
backoff each. Pacing the requests on our side (generic cell rate algorithm: each admission reserves
its slot in time, with a one-second burst allowance) keeps a run under the limits, and a pause that
every request honours lets one Retry-After answer hold back the whole target instead of each request
discovering the limit for itself. Every wait is a finite, computed delay: nothing here can hang.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

BURST_S = 1.0  # how far ahead of the steady pace admissions may run


class RateLimiter:
    """Paces admissions of one target; None for a limit means no limit of that kind."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for name, value in (("requests_per_minute", requests_per_minute), ("tokens_per_minute", tokens_per_minute)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.request_interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.tokens_per_s = tokens_per_minute / 60.0 if tokens_per_minute else 0.0
        self.clock = clock
        self._request_tat = 0.0  # theoretical arrival time of the next request (GCRA)
        self._token_tat = 0.0
        self._pause_until = 0.0
        self.waited_s = 0.0  # total time admissions spent waiting, for reporting

    def reserve(self, tokens: int = 0) -> float:
        """Reserve a slot for one request of about `tokens` tokens; returns seconds to wait before sending."""
        now = self.clock()
        start = max(now, self._pause_until)
        if self.request_interval:
            start = max(start, self._request_tat - BURST_S)
            self._request_tat = max(self._request_tat, start) + self.request_interval
        if self.tokens_per_s and tokens:
            start = max(start, self._token_tat - BURST_S)
            self._token_tat = max(self._token_tat, start) + tokens / self.tokens_per_s
        return start - now

    async def acquire(self, tokens: int = 0) -> None:
        """Wait for this request's slot, and for any pause set while waiting."""
        delay = self.reserve(tokens)
        while delay > 0:
            self.waited_s += delay
            await asyncio.sleep(delay)
            delay = self._pause_until - self.clock()

    def settle(self, estimated_tokens: int, actual_tokens: int | None) -> None:
        """Correct the token budget once a response says how many tokens the request really used."""
        if self.tokens_per_s and actual_tokens is not None:
            self._token_tat += (actual_tokens - estimated_tokens) / self.tokens_per_s

    def pause(self, seconds: float) -> None:
        """Hold every admission of this target for `seconds` (a server's Retry-After)."""
        self._pause_until = max(self._pause_until, self.clock() + seconds)
