"""The start every dashboard page shares: routing through app.py, title, content warning, store, judge."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ui.cached import summary
from ui.common import content_warning, db_path, ensure_navigation, readonly
from ui.stat_figures import judge_choice, require_store


@dataclass(frozen=True)
class PageContext:
    """What a page reads the store with: the file, its version (the cache key), what it holds, the judge."""

    path: str
    mtime: float
    facts: dict
    judge: str


# What a database that does not exist yet holds (the Run page on a fresh machine, see start's missing_ok).
NO_FACTS: dict = {"probes": 0, "runs": 0, "completions": 0, "verdicts": 0, "models": [], "languages": [],
                  "judges": []}


def start(title: str, page: str, judge: bool = True, missing_ok: bool = False) -> PageContext:
    """Draw a page's head and open the store (stopping with a message when there is none).

    The judge select box goes in the sidebar and the URL (key `<page>_judge`); `judge=False` leaves it out.
    `missing_ok`: a page that works without a database (the Run page, whose first run creates it) gets an
    empty context (mtime 0, NO_FACTS) instead; nothing is created by a visit, so no empty file is left behind.
    """
    ensure_navigation()
    st.title(title)
    content_warning()
    if missing_ok and not readonly() and not db_path().exists():
        return PageContext(str(db_path()), 0.0, dict(NO_FACTS), "")
    path, mtime = require_store()
    chosen = ""
    if judge:
        with st.sidebar:
            chosen = judge_choice(path, mtime, key=f"{page}_judge")
    return PageContext(path, mtime, summary(path, mtime), chosen)
