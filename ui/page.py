"""The start every dashboard page shares: routing through app.py, title, content warning, store, judge."""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from ui.cached import summary
from ui.common import content_warning
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


def ensure_navigation() -> None:
    """Make a deep link on a freshly started server go through app.py's st.navigation.

    Streamlit starts in its legacy multipage mode whenever a `pages/` folder sits beside the main script,
    and stays there until a session runs the main script: until then a link such as /drilldown?group=x
    runs the page alone, with the folder's file list as navigation (the run page included in a demo).
    A page that finds itself in that mode switches it off and reruns, which runs app.py. Only on a session's
    first run: a rerun drops a button click, and first runs carry none.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        if not st.session_state.get("_navigation_ensured"):
            st.session_state["_navigation_ensured"] = True
            st.rerun()
