"""What an API target's failures mean: which stop it (FATAL_STATUS), which are the server's own words
(server_says), how long it asked us to wait (retry_after_s), which connections were never made
(connection_failure), and from a streak of them across requests whether the server is gone (OutageWatch;
core/targets/openai.py says what the target then does)."""
from __future__ import annotations

import json
import time
from typing import Any

FATAL_STATUS = {401: "the server refused the API key", 403: "the API key may not use this model",
                 404: "the server has no such model or endpoint"}


class MalformedResponse(Exception):
    """A 200 answer whose body is not a usable completion (worth a retry: proxies garble answers)."""


class ContentFiltered(Exception):
    """The provider withheld the answer; not the model's refusal, and retrying would not change it."""


class OutageWatch:
    """Whether a server is gone, judged from consecutive failures across every request of one target.

    A streak is a run of failures of one kind, `connection` (refused, reset, DNS) or one HTTP 5xx status,
    with no answer from the server in between (any answer, even a 400 or a garbled body, shows it is
    there; 429s and timeouts neither extend nor end a streak). The target is down once the streak holds
    `bound` failures and has lasted `window_s`, and, unless a connection was refused (nothing was sent, so
    it cannot be the prompt's fault), failures of at least two prompts: one prompt that always gets a 500
    is that prompt's problem, stored as its error.
    """

    def __init__(self, bound: int, window_s: float, clock=time.monotonic) -> None:
        self.bound, self.window_s, self._clock = bound, window_s, clock
        self.kind: str | None = None
        self.count = 0
        self.prompts: set[int] = set()
        self.refused = False
        self.since = 0.0
        self.last_error = ""
        self.down: str | None = None  # the last error, once the target is judged unreachable

    def answered(self) -> None:
        """The server answered something: any streak ends (a target already down stays down)."""
        self.kind, self.count, self.prompts, self.refused = None, 0, set(), False

    def failed(self, kind: str, refused: bool, prompt: int, message: str) -> bool:
        """Count one failure of `kind` for `prompt`; True when the target is now down."""
        if kind != self.kind:
            self.answered()
            self.kind, self.since = kind, self._clock()
        self.count += 1
        self.prompts.add(prompt)
        self.refused |= refused
        self.last_error = message
        if self.down is None and self.count >= self.bound and self._clock() - self.since >= self.window_s \
                and (self.refused or len(self.prompts) >= 2):
            self.down = message
        return self.down is not None

    def holds(self, refused: bool) -> bool:
        """Whether a prompt whose retries are spent on a failure of the streak should wait for the verdict
        on the server instead of storing an error: its connection was refused (the prompt was never sent),
        or the streak is already long and spans several prompts."""
        return self.kind is not None and (refused or (self.count >= self.bound and len(self.prompts) >= 2))

    def give_up(self) -> None:
        """A held prompt reached its deadline: the server has failed for that long, so it is down."""
        self.down = self.down or self.last_error

    def clear(self) -> None:
        self.answered()
        self.down = None


def connection_failure(exc: BaseException) -> str | None:
    """`refused` where no connection could be made (refused, no such host: the prompt was never sent),
    `reset` where the server closed or reset one, else None. The aiohttp transport reports both as connect
    timeouts; the original error is further down the chain."""
    import socket

    import aiohttp

    found = None
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, (aiohttp.ClientConnectorError, ConnectionRefusedError, socket.gaierror)):
            return "refused"
        if isinstance(exc, (ConnectionError, aiohttp.ClientConnectionError)) and not isinstance(exc, TimeoutError):
            found = "reset"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return found


def server_says(exc: Any) -> str:
    """The server's own explanation of an HTTP error (OpenAI's error.message, FastAPI's detail, or the body):
    the SDK's message is only "Error code: 400", which tells an auditor nothing."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        said = inner.get("message") or inner.get("detail") or body.get("error")
        body = said if said is not None else body
    if body is None or body == "":
        return brief(exc)
    text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return text if len(text) <= 300 else text[:300] + "..."


def brief(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def retry_after_s(headers: Any) -> float | None:
    """Seconds a server asked us to wait: `retry-after-ms`, `retry-after` in seconds, or an HTTP date."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None

