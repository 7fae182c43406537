"""OpenAI-compatible target: any server that speaks the OpenAI API (OpenAI, vLLM, llama.cpp, Ollama, TGI).

A batch from the runner is answered concurrently on an event loop that the target keeps in its own
thread, so connections, the rate limiter and the pause a 429 sets live across batches. The SDK's own
retries are off: this module retries 429, 5xx, timeouts, dropped connections and unreadable answers
with exponential backoff and full jitter, honours Retry-After (for the whole target, not just the one
request), and bounds every wait (per-attempt timeout, retry count, per-prompt deadline). A prompt that
still has no answer gets an error on its Generation, which the store keeps and the metrics leave out of
the Defense Rate. Credentials or addressing that are wrong for every prompt (401, 403, 404) stop the
target with TargetUnavailable instead, so a run does not fill up with identical errors.

A server that goes away (connections refused, reset, no DNS, or the same 5xx for every prompt) is not
a reason to store errors either: OutageWatch counts consecutive failures of that kind across all
requests, and once they pass a bound that scales with the concurrency and have lasted a time window,
the target is `unreachable`: the prompts not answered yet come back as None (pending, sent again by a
resume) and the runner stops the target with a plain message.

The API key is read from the environment variable the config names, at the moment the client is made;
the key itself is never held in the config, the store, an error message or a log line.

The spec and the config are in core/targets/openai_config.py, what each failure means and OutageWatch in
core/targets/api_failures.py, the event-loop thread in core/targets/loop_thread.py.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

from core.redact import redact, watch_env
from core.targets.api_failures import (FATAL_STATUS, ContentFiltered, MalformedResponse, OutageWatch, brief,
                                       connection_failure, retry_after_s, server_says)
from core.targets.base import (Capabilities, Generation, Target, TargetInfo, TargetUnavailable, UnknownTarget,
                               register_backend, register_target)
from core.targets.loop_thread import LoopThread
from core.targets.openai_config import (DEFAULT_BASE_URL, DEFAULT_KEY_ENV, NO_KEY, OpenAIConfig, default_target_id,
                                        parse_spec)
from core.targets.ratelimit import RateLimiter

CONNECTIONS_PER_CLIENT = 8


@dataclass
class ApiStats:
    """What the target did over its lifetime: requests sent, retries and why, final errors."""

    requests: int = 0
    completions: int = 0
    errors: int = 0
    retries: int = 0
    retry_reasons: Counter = field(default_factory=Counter)
    paced_s: float = 0.0  # request-seconds spent waiting on the rate limiter (and on Retry-After pauses)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "completions": self.completions, "errors": self.errors,
                "retries": self.retries, "retry_reasons": dict(self.retry_reasons), "paced_s": round(self.paced_s, 3)}


class InFlight:
    """A batch the target is answering in the background (see OpenAITarget.submit).

    The runner keeps the next batch in flight while it judges and stores the previous one, so the
    connections never sit idle between batches. `stop_queued` is how a cancelled run ends quickly
    without wasting anything: prompts already sent are answered and stored, prompts still waiting for
    a connection are not sent and come back as None (they stay pending for a resume).
    """

    def __init__(self, target: OpenAITarget, prompts: list[str]) -> None:
        self._target = target
        self.stopping = threading.Event()
        self._bound = target._batch_bound_s(len(prompts))
        self._future = target._loop.submit(target._batch(prompts, self.stopping))

    def result(self) -> list[Generation | None]:
        """The answers in prompt order; waits within the batch's time bound (Ctrl-C cancels the batch)."""
        try:
            return self._target._loop.wait(self._future, self._bound)
        finally:
            self._target.stats.paced_s = self._target._limiter.waited_s

    def stop_queued(self) -> None:
        self.stopping.set()

    def cancel(self) -> None:
        """Drop the batch: requests in flight are abandoned and nothing of it is returned."""
        self._future.cancel()


class OpenAITarget(Target):
    """A model behind an OpenAI-compatible HTTP API, answered concurrently with retries and pacing."""

    def __init__(self, config: OpenAIConfig, target_id: str | None = None, family: str | None = None,
                 size_b: float | None = None) -> None:
        self.config = config
        self.seed = config.seed
        self.info = TargetInfo(target_id=target_id or default_target_id(config.model, config.base_url),
                               backend="openai", model=config.model, base_url=config.base_url, family=family,
                               size_b=size_b, settings=config.settings())
        self.stats = ApiStats()
        self._loop: LoopThread | None = None
        self._clients: list[Any] = []
        self._slots: asyncio.Queue[int] | None = None
        self._finalizer: weakref.finalize | None = None
        self._limiter = RateLimiter(config.requests_per_minute, config.tokens_per_minute)
        self._random = random.Random()
        self._outage = OutageWatch(config.outage_bound, config.outage_window_s)
        self._down_event: asyncio.Event | None = None  # set on the loop when the target is judged unreachable
        self._prompt_numbers = itertools.count()
        watch_env(config.api_key_env)  # every message this process stores or prints masks this key

    @property
    def unreachable(self) -> str | None:
        """Why the target is judged gone (`target X is unreachable: <last error>`), or None while it answers."""
        down = self._outage.down
        return None if down is None else f"target {self.info.target_id} is unreachable: {self._redact(down)}"

    def clear_outage(self) -> None:
        """Forget an outage (a new execution of a run tries the server again)."""
        self._outage.clear()
        if self._loop is not None and self._down_event is not None:
            self._loop.loop.call_soon_threadsafe(self._down_event.clear)

    @property
    def capabilities(self) -> Capabilities:
        """Concurrent, with a batch in flight; the runner hands over 4 prompts per connection so that every
        connection stays busy. A chat API cannot be made to continue a started answer: no prefill."""
        batch = 4 * self.config.max_concurrency
        return Capabilities(concurrent=True, concurrency=self.config.max_concurrency, run_batch_size=batch,
                            batch_size=batch)

    def api_stats(self) -> dict[str, Any]:
        """This execution's requests, retries and why (core.run.cost reports them beside the stored tokens)."""
        return self.stats.to_dict()

    # Ray ships targets to its workers by pickling them: send the description, not the thread or client.
    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "info": self.info}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["config"], state["info"].target_id, state["info"].family, state["info"].size_b)

    # -- the client ---------------------------------------------------------------------------------
    def _api_key(self) -> str:
        name = self.config.api_key_env
        if name and os.environ.get(name):
            return os.environ[name]
        if urlsplit(self.config.base_url).hostname == urlsplit(DEFAULT_BASE_URL).hostname:
            raise TargetUnavailable(f"the environment variable {name or DEFAULT_KEY_ENV} holding the API key for "
                                    f"{self.config.base_url} is not set")
        return NO_KEY

    def _redact(self, text: str) -> str:
        """Any trace of the key (whole, in another case, or 8 of its characters) masked (core.redact)."""
        name = self.config.api_key_env
        return redact(text, (os.environ.get(name) if name else None,))

    async def _make_clients(self) -> list[Any]:
        """SDK clients on the aiohttp transport (the SDK's `aiohttp` extra), one per CONNECTIONS_PER_CLIENT slots.

        At 64 requests in flight the client's own CPU time per request is what limits throughput on a
        small machine: aiohttp needs about a third less than the default httpx transport, and small
        connection pools keep the cost of placing a request flat.
        """
        import httpx2
        from openai import AsyncOpenAI, DefaultAioHttpClient

        limits = httpx2.Limits(max_connections=CONNECTIONS_PER_CLIENT, max_keepalive_connections=CONNECTIONS_PER_CLIENT)
        timeout = httpx2.Timeout(self.config.timeout_s, connect=min(10.0, self.config.timeout_s))
        key = self._api_key()
        return [AsyncOpenAI(api_key=key, base_url=self.config.base_url, max_retries=0, timeout=timeout,
                            http_client=DefaultAioHttpClient(limits=limits, timeout=timeout))
                for _ in range(math.ceil(self.config.max_concurrency / CONNECTIONS_PER_CLIENT))]

    def close(self) -> None:
        """Close connections and stop the loop thread; also done when the target is garbage-collected
        (e.g. after a run in the app's server) and at interpreter exit."""
        if self._finalizer is not None:
            self._finalizer()
        self._loop, self._clients, self._finalizer = None, [], None

    # -- generation ---------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str]) -> list[Generation]:
        """Answer every prompt (each a single user turn), concurrently, in order; errors are per prompt."""
        if not prompts:
            return []
        return self.submit(prompts).result()

    def submit(self, prompts: Sequence[str]) -> InFlight:
        """Start answering a batch and return at once; `.result()` collects it.

        Batches submitted while others are in flight share the target's `max_concurrency` connection
        slots, so two batches in flight never mean twice the concurrency.
        """
        if self._loop is None:
            self._api_key()  # fail before starting anything if a required key is missing
            self._loop = LoopThread(f"openai-{self.info.target_id}")
            self._finalizer = weakref.finalize(self, _shut_down, self._loop, self._clients)
        return InFlight(self, list(prompts))

    def _batch_bound_s(self, n: int) -> float:
        """The longest a batch of n prompts can take: every wave at its deadline, plus pacing."""
        waves = math.ceil(n / self.config.max_concurrency)
        return waves * (self.config.deadline_s + 1) + self._pace_backlog_s(n) + 10

    def _pace_backlog_s(self, n: int) -> float:
        """The longest the rate limiter can make n requests wait (part of a batch's time bound)."""
        tokens = n * (self.config.max_new_tokens + 2048)
        return n * self._limiter.request_interval + (tokens / self._limiter.tokens_per_s if self._limiter.tokens_per_s
                                                     else 0.0)

    async def _batch(self, prompts: list[str], stopping: threading.Event) -> list[Generation | None]:
        if not self._clients:
            self._clients.extend(await self._make_clients())  # the list the finalizer closes
        if self._down_event is None:
            self._down_event = asyncio.Event()
        if self._slots is None:  # max_concurrency request slots, each tied to one client, shared by all batches
            self._slots = asyncio.Queue()
            for slot in range(self.config.max_concurrency):
                self._slots.put_nowait(slot)
        tasks = [asyncio.create_task(self._answer(prompt, self._slots, stopping)) for prompt in prompts]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # after a fatal error or a cancel: nothing keeps running for this batch
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _answer(self, prompt: str, slots: asyncio.Queue[int], stopping: threading.Event) -> Generation | None:
        """One prompt, with retries: a Generation (text or final error), or None if the batch was stopped
        before the prompt was sent (or while it waited to retry), or the target was judged unreachable
        before it was answered (it stays pending). Raises only if the target is unusable."""
        config = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + config.deadline_s
        estimate = len(prompt) // 4 + config.max_new_tokens
        number = next(self._prompt_numbers)
        retries = 0
        attempt = 0
        while True:
            slot = await slots.get()
            if stopping.is_set() or self._outage.down is not None:
                slots.put_nowait(slot)
                return None
            try:
                await self._limiter.acquire(estimate)
                began = time.perf_counter()
                self.stats.requests += 1
                try:
                    client = self._clients[slot // CONNECTIONS_PER_CLIENT]
                    async with asyncio.timeout(config.timeout_s + 1):  # the whole answer, even one dripping in
                        response = await self._request(client, prompt)
                    text, prompt_tokens, completion_tokens = self._read(response)
                except Exception as exc:  # noqa: BLE001 - every failure is classified below
                    reason, retry_after, message, outage = self._classify(exc)
                    message = self._redact(message)  # before it reaches an error, the outage watch or a log
                else:
                    self._outage.answered()
                    latency = time.perf_counter() - began
                    used = None if prompt_tokens is None else prompt_tokens + (completion_tokens or 0)
                    self._limiter.settle(estimate, used)
                    self.stats.completions += 1
                    return Generation(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                      latency_s=latency, retries=retries)
            finally:
                slots.put_nowait(slot)
            held = False
            if outage is not None:  # the server may be gone: count it; wake every waiting prompt once it is
                kind, refused = outage
                if self._outage.failed(kind, refused, number, message):
                    self._down_event.set()
                    return None
                held = self._outage.holds(refused)
            elif reason not in ("timeout", "connection"):  # the server answered (400, 429, a garbled body): it is there
                self._outage.answered()
            if reason is None:  # not worth retrying (e.g. 400: this prompt is rejected as it is)
                return self._failed(message, retries)
            if attempt >= config.max_retries and not held:
                return self._failed(f"{message}; gave up after {retries} retries", retries)
            cap = min(config.backoff_max_s, config.backoff_base_s * 2 ** min(attempt, 30))
            delay = self._random.uniform(0, cap)  # full jitter: concurrent retries spread out
            if retry_after is not None:
                self._limiter.pause(retry_after)  # the whole target waits, not just this request
                delay = retry_after + self._random.uniform(0, config.backoff_base_s)
            if loop.time() + delay > deadline:
                if held:  # failing for a whole deadline while others fail too: the server is gone
                    self._outage.give_up()
                    self._down_event.set()
                    return None
                return self._failed(f"{message}; gave up after {retries} retries: the next wait ({delay:.1f} s) "
                                    f"would pass the {config.deadline_s:g} s deadline for one prompt", retries)
            retries += 1
            attempt += 1
            self.stats.retries += 1
            self.stats.retry_reasons[reason] += 1
            try:  # a backoff ends early when the target is judged unreachable meanwhile
                await asyncio.wait_for(self._down_event.wait(), delay)
            except TimeoutError:
                pass

    def _failed(self, message: str, retries: int) -> Generation:
        self.stats.errors += 1
        return Generation(text=None, error=self._redact(message)[:500], retries=retries)

    async def _request(self, client: Any, prompt: str) -> bytes:
        """Send one request through the SDK and return the raw body.

        The SDK's generic `post` (its documented way to any endpoint) keeps its auth, URL handling,
        timeouts and error types but skips validating our own request dict and building pydantic
        models of the answer, which at 64 requests in flight cost more CPU than everything else.
        """
        import httpx2

        config = self.config
        body: dict[str, Any] = {"model": config.model, "max_tokens": config.max_new_tokens,
                                "temperature": config.temperature, "seed": config.seed}
        if config.endpoint == "chat":
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        response = await client.post(f"/{'chat/completions' if config.endpoint == 'chat' else 'completions'}",
                                     cast_to=httpx2.Response, body=body)
        return await response.aread()

    def _read(self, raw: bytes) -> tuple[str, int | None, int | None]:
        """Text and token counts of an answer; MalformedResponse where the body is not a completion."""
        try:
            answer = json.loads(raw)
        except ValueError:
            raise MalformedResponse(f"the answer is not JSON: {raw[:200]!r}") from None
        choices = answer.get("choices") if isinstance(answer, dict) else None
        if not choices or not isinstance(choices[0], dict):
            raise MalformedResponse(f"the answer has no choices: {raw[:200]!r}")
        choice = choices[0]
        if self.config.endpoint == "chat":
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            # OpenAI's structured refusal (content None, refusal set) is the model's refusal
            text = message.get("content") if message.get("content") is not None else message.get("refusal")
        else:
            text = choice.get("text")
        if text is None and choice.get("finish_reason") == "content_filter":
            raise ContentFiltered("the provider's content filter withheld the answer (finish_reason=content_filter)")
        if not isinstance(text, str):
            raise MalformedResponse(f"the answer holds no text: {raw[:200]!r}")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        return (text.strip(), prompt_tokens if isinstance(prompt_tokens, int) else None,
                completion_tokens if isinstance(completion_tokens, int) else None)

    def _classify(self, exc: Exception) -> tuple[str | None, float | None, str, tuple[str, bool] | None]:
        """(retry reason or None for a final error, Retry-After seconds or None, message, outage) of a failure;
        outage is (kind, refused) where the failure says the server may be gone (see OutageWatch), else None."""
        import openai

        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status in FATAL_STATUS:
                where = ""
                if status == 401:
                    name = self.config.api_key_env or DEFAULT_KEY_ENV
                    where = f"; the key is read from ${name}" + ("" if os.environ.get(name) else ", which is not set")
                raise TargetUnavailable(self._redact(f"{self.info.target_id}: {FATAL_STATUS[status]} (HTTP {status} "
                                                     f"from {self.config.base_url}{where}): {server_says(exc)}")) from None
            message = f"HTTP {status}: {server_says(exc)}"
            if status == 429 or status >= 500 or status in (408, 409):
                return ("429" if status == 429 else "5xx" if status >= 500 else str(status),
                        retry_after_s(exc.response.headers), message,
                        (f"HTTP {status}", False) if status >= 500 else None)
            return None, None, message, None
        connection = connection_failure(exc)
        if connection is not None:
            return "connection", None, f"connection failed: {brief(exc.__cause__ or exc)}", \
                ("connection", connection == "refused")
        if isinstance(exc, (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError)):
            return "timeout", None, f"no complete answer within {self.config.timeout_s:g} s", None
        if isinstance(exc, openai.APIConnectionError):
            return "connection", None, f"connection failed: {brief(exc.__cause__ or exc)}", None
        if isinstance(exc, ContentFiltered):
            return None, None, str(exc), None
        if isinstance(exc, (MalformedResponse, openai.APIResponseValidationError)):
            return "malformed", None, f"unreadable answer: {brief(exc)}", None
        return "connection", None, f"{type(exc).__name__}: {brief(exc)}", None


def _shut_down(loop: LoopThread, clients: list[Any]) -> None:
    """Close a target's clients on its loop, then stop the loop (holds no reference to the target)."""
    async def close_all() -> None:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)

    if threading.current_thread() is loop.thread:  # dropped from inside its own loop: just let it end
        loop.loop.call_soon(loop.loop.stop)
        return
    try:
        loop.run(close_all(), timeout=5)
    except (TimeoutError, RuntimeError):
        pass
    clients.clear()
    loop.close()


_RUNNER_ONLY = ("batch_size",)  # a run's batch size: concurrency sets an API target's batches


def _target(model: str, base_url: str | None, stored: dict[str, Any], settings: dict[str, Any],
            **identity: Any) -> OpenAITarget:
    settings = {k: v for k, v in settings.items() if k not in _RUNNER_ONLY}
    try:  # stored settings a newer version wrote are skipped; a caller's unknown setting is an error
        config = replace(OpenAIConfig.from_settings(model, base_url, stored), **settings)
    except (TypeError, ValueError) as exc:
        raise UnknownTarget(f"openai target {model!r}: {exc}") from None
    return OpenAITarget(config, **identity)


@register_target("openai:", "any OpenAI-compatible server (openai:MODEL alone is api.openai.com)",
                 usage="openai:MODEL@BASE_URL")
def _openai(rest: str, settings: dict[str, Any]) -> OpenAITarget:
    try:
        model, base_url = parse_spec("openai:" + rest)
    except ValueError as exc:
        raise UnknownTarget(str(exc)) from None
    return _target(model, base_url, {}, settings)


@register_backend("openai", "an OpenAI-compatible server saved with its settings (never its key)")
def _saved_openai(saved: dict[str, Any], settings: dict[str, Any]) -> OpenAITarget:
    return _target(saved["model"], saved["base_url"], saved["settings"], settings, target_id=saved["target_id"],
                   family=saved["family"], size_b=saved["size_b"])
