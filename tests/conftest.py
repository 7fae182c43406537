"""Shared fixtures and markers. Tests use real parts: a real DuckDB file, the real SmolLM2 model, real Streamlit.

Fixtures live in tests/fixtures/ and reach tests only through this file (pytest_plugins below); test modules may
import plain helpers and constants from tests.fixtures.*, never from this file or from another test module."""
from __future__ import annotations

import pathlib

import pytest

from tests.fixtures.cli import cli_environment

pytest_plugins = ["tests.fixtures.models", "tests.fixtures.openai", "tests.fixtures.browser", "tests.fixtures.databases"]

HERE = pathlib.Path(__file__).resolve().parent
MODEL_FIXTURES = ("smollm2", "gemma3")  # tests/fixtures/models.py: a test asking for one loads a model
BY_FOLDER = {"browser": "browser", "reliability": "reliability"}  # tests/<folder>/ -> the marker its tests carry


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Markers by place and by fixture: everything under tests/browser/ is `browser`, under tests/reliability/
    `reliability`; a test that asks for an embedded model's fixture is `model`."""
    for item in items:
        parts = pathlib.Path(str(item.fspath)).resolve().relative_to(HERE).parts
        if parts[0] in BY_FOLDER:
            item.add_marker(BY_FOLDER[parts[0]])
        if set(MODEL_FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker("model")


@pytest.fixture()
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "audit.duckdb"


@pytest.fixture()
def cli_env() -> dict[str, str]:
    return cli_environment()
