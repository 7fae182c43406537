"""Shared fixtures. Tests use real parts: a real DuckDB file, the real SmolLM2 model, real Streamlit."""
from __future__ import annotations

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ARTIFACTS = ROOT / "tests" / "artifacts"  # screenshots and other outputs, ignored by git


@pytest.fixture(scope="session")
def smollm2():
    """The embedded default model, loaded once per test session (short generations keep tests quick)."""
    from core.targets import resolve_target

    target = resolve_target("smollm2", max_new_tokens=12, batch_size=8)
    target.load()
    return target


@pytest.fixture(scope="session")
def gemma3():
    """The second embedded model (Gemma 3 270M, a base model), loaded once per test session."""
    from core.targets import resolve_target

    target = resolve_target("gemma3-270m", max_new_tokens=12, batch_size=8)
    target.load()
    return target


@pytest.fixture()
def db_path(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "audit.duckdb"


@pytest.fixture()
def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("AUDIT_DB", None)
    return env
