"""The real dashboard server (`python -m ui.launch`, as `make run` starts it) on a free port, and headless
Chromium to drive it.

Shared by the browser tests (tests/browser/test_dashboard.py) and the render benchmark (bench/dashboard_render.py),
so both measure the app exactly as a user opens it.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from ui.warmup import STARTED_LINE

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(db: Path, readonly: bool = False, log: Path | None = None,
          launcher: bool = True, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start the dashboard on `db` (AUDIT_READONLY=1 when readonly) the way `make run` does (`python -m
    ui.launch`; launcher=False: a bare `streamlit run app.py`, for comparison); returns the process and its URL."""
    port = free_port()
    env = {**os.environ, "AUDIT_DB": str(db), "PYTHONPATH": str(ROOT)}
    env.pop("AUDIT_READONLY", None)
    env.update(extra_env or {})
    if readonly:
        env["AUDIT_READONLY"] = "1"
    out = (log or db.with_suffix(".streamlit.log")).open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", *(["ui.launch"] if launcher else ["streamlit", "run", "app.py"]),
         "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(process: subprocess.Popen, base: str, timeout: float = 90.0) -> None:
    """Block until the server answers its health check; a server that exits or hangs is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {process.returncode} before serving {base}")
        try:
            if urllib.request.urlopen(base + "/_stcore/health", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on {base} within {timeout:.0f} s")


def wait_started_pages(log: Path, process: subprocess.Popen, timeout: float = 120.0) -> str | None:
    """The server log's line saying it has run its landing pages at start (ui.warmup), once written; None when it
    was not written within `timeout` seconds or the server exited first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(STARTED_LINE):
                return line
        time.sleep(0.05)
    return None


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@contextlib.contextmanager
def serve(db: Path, readonly: bool = False) -> Iterator[str]:
    """The dashboard on `db` for the duration of a with-block; yields its base URL."""
    process, base = start(db, readonly)
    try:
        wait_healthy(process, base)
        yield base
    finally:
        stop(process)
