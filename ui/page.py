"""The start every dashboard page shares: routing through app.py, title, content warning, store, judge."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ui.cached import summary
from ui.common import content_warning, ensure_navigation
from ui.stat_figures import judge_choice, require_store


@dataclass(frozen=True)
class PageContext:
    """What a page reads the store with: the file, its version (the cache key), what it holds, the judge."""

    path: str
    mtime: float
    facts: dict
    judge: str


def start(title: str, page: str, judge: bool = True) -> PageContext:
    """Draw a page's head and open the store (stopping with a message when there is none).

    The judge select box goes in the sidebar and the URL (key `<page>_judge`); `judge=False` leaves it out.
    """
    ensure_navigation()
    st.title(title)
    content_warning()
    path, mtime = require_store()
    chosen = ""
    if judge:
        with st.sidebar:
            chosen = judge_choice(path, mtime, key=f"{page}_judge")
    return PageContext(path, mtime, summary(path, mtime), chosen)
