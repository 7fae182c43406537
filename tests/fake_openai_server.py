"""A loopback OpenAI-compatible HTTP server whose behaviour the tests and the benchmark control.

It speaks just enough HTTP/1.1 (keep-alive, Content-Length bodies) to serve `/v1/chat/completions`,
`/v1/completions` and `/v1/models` to the real `openai` SDK, and it misbehaves on cue: added latency,
429 bursts with Retry-After, 500s, malformed bodies, dropped connections, slow-drip responses, and
requests that never get an answer. It is written on asyncio streams rather than a web framework so
that every byte it sends (or does not send) is under the test's control.

It binds to 127.0.0.1 only. Use it in-process (`with FakeOpenAIServer(latency=0.1) as server:`; it
runs its own event loop in a thread) or as a separate process (`python tests/fake_openai_server.py
--latency 0.1` prints `PORT <n>` and serves until stdin closes), which the benchmark does so that the
server and the client do not share one interpreter lock.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"

# What one request can be answered with. "ok" is a normal answer; the others are faults.
FAULTS = ("ok", "429", "500", "503", "400", "401", "malformed", "empty", "drop", "drip", "hang")

REFUSAL = "I'm sorry, but I can't help with that request."
COMPLIANCE = "Sure. Here is a short story that follows your instructions: once upon a time"


def default_reply(prompt: str) -> str:
    """A deterministic answer: a refusal for about half of the prompts, compliance for the rest."""
    return REFUSAL if hashlib.sha1(prompt.encode()).digest()[0] % 2 == 0 else COMPLIANCE


@dataclass
class Logged:
    """One request as the server saw it."""

    at: float  # time.monotonic() when the request was read
    path: str
    prompt: str | None
    fault: str
    authorization: str | None


@dataclass
class Behaviour:
    """What the server does; the test may change it at any time (each field is read per request)."""

    latency: float = 0.0
    retry_after: float | None = 1.0  # sent with 429 and 503 answers (None: no header)
    drip_chunk_delay: float = 0.5  # seconds between the bytes of a slow-drip answer
    script: collections.deque = field(default_factory=collections.deque)  # faults for the next requests
    reply: Callable[[str, str], str] | None = None  # (prompt, model) -> answer text; None: default_reply(prompt)
    always: dict[str, str] = field(default_factory=dict)  # prompt substring -> fault, on every request
    mix: dict[str, float] = field(default_factory=dict)  # fault -> probability, drawn for unscripted requests
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # seeded: a soak can be replayed
    die_after: int | None = None  # the server crashes when this many more requests have been read (see die_after)
    # How 400, 401 and 500 answers echo the key the request carried (None: only 401 echoes it, as sent); e.g.
    # str.upper, or lambda key: key[:12], as servers that change or cut what they echo
    echo_key: Callable[[str], str] | None = None


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 with scripted faults; see the module docstring."""

    def __init__(self, latency: float = 0.0, port: int = 0, host: str = HOST) -> None:
        if host != HOST:
            raise ValueError("the fake server binds to 127.0.0.1 only")
        self.behaviour = Behaviour(latency=latency)
        self.requests: list[Logged] = []
        self._host, self._port = host, port
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- control ----------------------------------------------------------------------------------
    def script(self, *faults: str) -> None:
        """Answer the next len(faults) requests with these faults, in arrival order."""
        unknown = [f for f in faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {FAULTS}")
        with self._lock:
            self.behaviour.script.extend(faults)

    def always(self, prompt_part: str, fault: str) -> None:
        """Answer every request whose prompt contains prompt_part with this fault."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {FAULTS}")
        with self._lock:
            self.behaviour.always[prompt_part] = fault

    def mix(self, probabilities: dict[str, float], seed: int = 0) -> None:
        """Answer each request that no script or `always` rule covers with a fault drawn at random
        (seeded): e.g. {"429": 0.1, "drip": 0.05}; the rest of the probability is "ok"."""
        unknown = [f for f in probabilities if f not in FAULTS]
        if unknown or sum(probabilities.values()) > 1:
            raise ValueError(f"a fault mix names known faults {FAULTS} with probabilities summing to at most 1")
        with self._lock:
            self.behaviour.mix = dict(probabilities)
            self.behaviour.rng = random.Random(seed)

    def die_after(self, requests: int) -> None:
        """Crash when `requests` more requests have been read: that request gets no answer, every open
        connection is reset and the port stops listening (connections are refused) until restart()."""
        if requests < 1:
            raise ValueError("die_after counts requests from 1")
        with self._lock:
            self.behaviour.die_after = requests

    def reset(self) -> None:
        with self._lock:
            self.behaviour.script.clear()
            self.behaviour.always.clear()
            self.behaviour.mix.clear()
            self.behaviour.die_after = None
            self.behaviour.echo_key = None
            self.requests.clear()

    def log(self) -> list[Logged]:
        with self._lock:
            return list(self.requests)

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}/v1"

    @property
    def port(self) -> int:
        return self._port

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> FakeOpenAIServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self._host, self._port, backlog=1024))
            self._port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-openai-server", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start within 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    @property
    def alive(self) -> bool:
        """Whether the port is listening (False after kill() or a die_after crash, until restart())."""
        return self._server is not None and self._server.is_serving()

    def kill(self) -> None:
        """Crash now, as a server process killed with kill -9 would: open connections are reset, requests in
        flight get no answer, and the port refuses connections until restart(). The log is kept."""
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._crash(), self._loop).result(5)

    def restart(self) -> None:
        """Listen again on the same port (after kill() or a crash), with the same behaviour."""
        if self._loop is None:
            raise RuntimeError("the server was stopped; start() it")

        async def listen() -> None:
            self._server = await asyncio.start_server(self._handle, self._host, self._port, backlog=1024)

        asyncio.run_coroutine_threadsafe(listen(), self._loop).result(10)

    async def _crash(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        # the handlers of the aborted connections end on their own (their reads fail); nothing else is served

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ----------------------------------------------------------------------------------
    def _next_fault(self, prompt: str | None) -> str:
        with self._lock:
            for part, fault in self.behaviour.always.items():
                if prompt is not None and part in prompt:
                    return fault
            if self.behaviour.script:
                return self.behaviour.script.popleft()
            draw = self.behaviour.rng.random()
            for fault, probability in self.behaviour.mix.items():
                if draw < probability:
                    return fault
                draw -= probability
            return "ok"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                method, path, headers, body = request
                keep = await self._answer(method, path, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away, or the server is stopping
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, method: str, path: str, headers: dict[str, str], body: bytes,
                      writer: asyncio.StreamWriter) -> bool:
        """Send one answer; returns whether the connection stays open."""
        if method == "GET" and path.rstrip("/").endswith("/models"):
            await _send(writer, 200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            return True
        chat = path.rstrip("/").endswith("/chat/completions")
        if method != "POST" or not (chat or path.rstrip("/").endswith("/completions")):
            await _send(writer, 404, {"error": {"message": f"no route {method} {path}", "type": "not_found"}})
            return True
        try:
            payload = json.loads(body or b"{}")
            prompt = payload["messages"][-1]["content"] if chat else payload["prompt"]
        except (ValueError, KeyError, IndexError, TypeError):
            await _send(writer, 400, {"error": {"message": "unreadable request body", "type": "invalid_request"}})
            return True
        fault = self._next_fault(prompt)
        with self._lock:
            crash = self.behaviour.die_after is not None and self.behaviour.die_after <= 1
            if self.behaviour.die_after is not None:
                self.behaviour.die_after -= 1
            if crash:
                self.behaviour.die_after, fault = None, "crash"
            self.requests.append(Logged(time.monotonic(), path, prompt, fault, headers.get("authorization")))
        if fault == "crash":
            await self._crash()  # this request and every other one in flight get no answer
            return False
        behaviour = self.behaviour
        if behaviour.latency:
            await asyncio.sleep(behaviour.latency)
        if fault == "drop":
            writer.transport.abort()  # no answer at all: the client sees the connection reset
            return False
        if fault == "hang":
            await asyncio.sleep(3600)
            return False
        if fault in ("429", "503"):
            extra = {"Retry-After": f"{behaviour.retry_after:g}"} if behaviour.retry_after is not None else {}
            await _send(writer, int(fault), {"error": {"message": "slow down", "type": "rate_limit"}}, extra)
            return True
        key = (headers.get("authorization") or "").removeprefix("Bearer ")
        echoed = behaviour.echo_key(key) if behaviour.echo_key is not None else None
        if fault == "401":  # like some providers, echo the key that was refused (the client must redact it)
            message = f"Incorrect API key provided: {key if echoed is None else echoed}"
            await _send(writer, 401, {"error": {"message": message, "type": "invalid_request_error"}})
            return True
        if fault in ("500", "400"):
            message = f"fault {fault}" + (f" for the key {echoed}" if echoed is not None else "")
            await _send(writer, int(fault), {"error": {"message": message, "type": "server_error"}})
            return True
        if fault == "malformed":
            await _send_raw(writer, 200, b'{"id": "x", "choices": [{"message": ', "application/json")
            return True
        text = behaviour.reply(prompt, str(payload.get("model", ""))) if behaviour.reply else default_reply(prompt)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                 "total_tokens": len(prompt.split()) + len(text.split())}
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        answer = {"id": "cmpl-fake", "object": "chat.completion" if chat else "text_completion",
                  "created": int(time.time()), "model": payload.get("model", "fake-model"),
                  "choices": [choice], "usage": usage}
        if fault == "empty":
            answer["choices"] = []
        if fault == "drip":
            data = json.dumps(answer).encode()
            writer.write(_head(200, len(data), "application/json"))
            for i in range(0, len(data), 16):
                writer.write(data[i:i + 16])
                await writer.drain()
                await asyncio.sleep(behaviour.drip_chunk_delay)
            return True
        await _send(writer, 200, answer)
        return True


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await reader.readexactly(length) if length else b""
    return method, path, headers, body


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error", 503: "Service Unavailable"}


def _head(status: int, length: int, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", f"Content-Type: {content_type}",
             f"Content-Length: {length}", "Connection: keep-alive"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_raw(writer: asyncio.StreamWriter, status: int, data: bytes, content_type: str,
                    extra: dict[str, str] | None = None) -> None:
    writer.write(_head(status, len(data), content_type, extra) + data)
    await writer.drain()


async def _send(writer: asyncio.StreamWriter, status: int, payload: Any, extra: dict[str, str] | None = None) -> None:
    await _send_raw(writer, status, json.dumps(payload).encode(), "application/json", extra)


def main() -> None:
    parser = argparse.ArgumentParser(description="loopback OpenAI-compatible server with scripted faults")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args()
    server = FakeOpenAIServer(latency=args.latency, port=args.port).start()
    print(f"PORT {server.port}", flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin (or exits)
    server.stop()


if __name__ == "__main__":
    main()
