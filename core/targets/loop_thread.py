"""An asyncio event loop kept in a thread of its own, so that an API target's connections, rate limiter and
pauses live across the batches a synchronous runner hands it (core/targets/openai.py)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Coroutine
from typing import Any


class LoopThread:
    """An asyncio event loop running in a daemon thread; coroutines are submitted from other threads."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float) -> Any:
        """Run to completion within `timeout`; Ctrl-C or the timeout cancels it (its results are dropped)."""
        return self.wait(self.submit(coroutine), timeout)

    def submit(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    @staticmethod
    def wait(future: concurrent.futures.Future, timeout: float) -> Any:
        """The future's result within `timeout`; Ctrl-C or the timeout cancels it (its results are dropped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    return future.result(timeout=min(0.5, max(0.0, deadline - time.monotonic())))
                except TimeoutError:
                    if time.monotonic() >= deadline:
                        raise TimeoutError(f"a batch took longer than its bound of {timeout:.0f} s") from None
        except BaseException:
            future.cancel()
            raise

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

