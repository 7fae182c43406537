"""What every page needs: the database path, read-only mode, the content warning."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core.store import Store

CONTENT_WARNING = ("Content warning: this tool stores and shows prompts that ask for hateful content about "
                   "demographic groups, and model outputs that may contain it. Both are shown as plain text.")


def db_path() -> Path:
    return Path(os.environ.get("AUDIT_DB", "data/audit.duckdb"))


def readonly() -> bool:
    """Demo sessions (AUDIT_READONLY=1, `make demo`) open the database read-only and hide write controls."""
    return os.environ.get("AUDIT_READONLY", "").strip().lower() in ("1", "true", "yes")


def content_warning() -> None:
    st.warning(CONTENT_WARNING, icon=":material/warning:")


def open_store(write: bool = False) -> Store:
    """The audit store; read-only unless a page needs to write and the session is not a demo."""
    return Store(db_path(), readonly=not write or readonly())
