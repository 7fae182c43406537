"""The reliability suite: crashes, bad input, faulty servers, hostile content, access. Every test in this
folder carries the `reliability` marker (select with `pytest -m reliability`, skip with `-m "not reliability"`);
plain `pytest -q` (what `make test` runs) includes them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_openai_server import FakeOpenAIServer

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: crash safety, bad input, faults, hostile content, access "
                            "(tests/reliability; `make soak` runs the long version)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.reliability)


@pytest.fixture(scope="module")
def server():
    """The loopback OpenAI-compatible server, shared by a module; `fake` resets it for each test."""
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture()
def fake(server):
    server.reset()
    server.behaviour.latency = 0.0
    server.behaviour.retry_after = 0.2
    server.behaviour.drip_chunk_delay = 0.5
    return server
