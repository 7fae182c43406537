"""The reliability suite: crashes, bad input, faulty servers, hostile content, access. Every test in this
folder carries the `reliability` marker (select with `pytest -m reliability`, skip with `-m "not reliability"`);
plain `pytest -q` (what `make test` runs) includes them."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_openai_target import fake, server  # noqa: F401 - the loopback server's fixtures, shared

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability: crash safety, bad input, faults, hostile content, access "
                            "(tests/reliability; `make soak` runs the long version)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.reliability)
