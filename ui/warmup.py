"""The dashboard's landing pages run once by the server itself as soon as it starts, so the first visitor finds
them computed.

A page's first run on a fresh server costs far more than any later one: the ui/ and core.views modules are
imported, Streamlit's chart and dataframe code runs for the first time, and the store's tables are read and
cached (st.cache_data). On a fresh server the Heatmaps page took 1.3 s from the browser's request to its first
heatmap, against 0.3-0.5 s once another session had run it (bench/README.md). `start` runs WARM_PAGES in a
session of the server's own, with no browser attached, exactly as a visitor's first request would (same
script, same default widgets, so the same cache keys), then closes that session. Nothing is written: the
pages warmed only read the store, and a missing database stays missing (the pages stop with their message).

It uses Streamlit's Runtime (the object its web server hands each browser session to): connect_session,
handle_backmsg and close_session, called on the runtime's event loop as the server does. Should a Streamlit
upgrade change those, the warm-up logs why it could not run and the dashboard works as before, only colder.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

LOG = logging.getLogger("forwhom.warmup")

# URL paths of the pages run at start: the Heatmaps page (the first heatmap is what a visitor waits for longest),
# then the landing page (the Overview), which shares most of its first-run cost.
WARM_PAGES: tuple[str, ...] = ("heatmaps", "")
# The line printed once the pages have run (bench.serve.wait_started_pages waits for it).
STARTED_LINE = "For Whom: pages run at start: "
STARTED_WITHIN_S = 120.0  # how long to wait for the server to start before giving up
PAGE_WITHIN_S = 300.0  # how long one page may take (a very large store) before the warm-up moves on


@dataclass
class PageRun:
    """What one page's run at start did: how long it took, the charts it drew, the errors it showed."""

    seconds: float = 0.0
    charts: int = 0
    errors: list[str] = field(default_factory=list)
    finished: bool = False

    def __str__(self) -> str:
        told = f"{self.seconds:.2f} s, {self.charts} chart{'s' * (self.charts != 1)}"
        if not self.finished:
            told += f", unfinished after {PAGE_WITHIN_S:.0f} s"
        return told + "".join(f", error: {error}" for error in self.errors)


class _Session:
    """A browser-less session client: it counts the charts and errors the page sends and notes when its run ends."""

    def __init__(self) -> None:
        self.finished = threading.Event()
        self.run = PageRun()

    def write_forward_msg(self, msg) -> None:  # SessionClient protocol (streamlit.runtime.session_manager)
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            shown = element.WhichOneof("type")
            if shown in ("vega_lite_chart", "plotly_chart"):
                self.run.charts += 1
            elif shown == "exception":
                self.run.errors.append(f"{element.exception.type}: {element.exception.message}")
        elif kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
            self.run.finished = True
            self.finished.set()

    @property
    def client_context(self) -> None:
        return None


def _started_runtime(within_s: float):
    """The server's Runtime once it accepts sessions, or None when it did not start in time."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.runtime import RuntimeState

    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if Runtime.exists() and Runtime.instance().state != RuntimeState.INITIAL:
            return Runtime.instance()
        time.sleep(0.02)
    return None


def _on_loop(loop: asyncio.AbstractEventLoop, call: Callable, *args):
    """call(*args) on the runtime's event loop (its session methods are not thread-safe); returns its result."""
    async def run():
        return call(*args)
    return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout=30)


def warm(pages: Sequence[str] = WARM_PAGES) -> dict[str, PageRun]:
    """Run each page once in a session of its own, one after the other; what each run did, also printed to stderr
    as one line ("For Whom: pages run at start: /heatmaps 0.42 s, 2 charts; / 0.43 s, 0 charts")."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ClientState_pb2 import ClientState

    runtime = _started_runtime(STARTED_WITHIN_S)
    if runtime is None:
        LOG.warning("warm-up skipped: the server did not start within %.0f s", STARTED_WITHIN_S)
        return {}
    loop = runtime._get_async_objs().eventloop
    runs: dict[str, PageRun] = {}
    for page in pages:
        started = time.perf_counter()
        client = _Session()
        session_id = _on_loop(loop, runtime.connect_session, client, {})
        try:
            message = BackMsg(rerun_script=ClientState(page_name=page, query_string=""))
            _on_loop(loop, runtime.handle_backmsg, session_id, message)
            client.finished.wait(PAGE_WITHIN_S)
        finally:
            _on_loop(loop, runtime.close_session, session_id)
        client.run.seconds = time.perf_counter() - started
        runs[page] = client.run
    print(STARTED_LINE + "; ".join(f"/{page} {run}" for page, run in runs.items()),
          file=sys.stderr, flush=True)
    return runs


def _warm_logged(pages: Sequence[str]) -> None:
    try:
        warm(pages)
    except Exception:  # a warm-up that fails must never take the server down
        LOG.exception("warm-up failed; the dashboard works, its first visit is only slower")


def start(pages: Sequence[str] = WARM_PAGES) -> threading.Thread:
    """warm(pages) in a daemon thread, begun before the server starts (it waits for the server to accept sessions)."""
    thread = threading.Thread(target=_warm_logged, args=(tuple(pages),), name="forwhom-warmup", daemon=True)
    thread.start()
    return thread
