"""The start every dashboard page shares: routing through app.py, title, content warning, store, judge.

`header` is the one way a page's head is drawn (the title, then the content warning the UI must always show);
`start` draws it and opens the store with the judge (and, for the statistics pages, one language) chosen.
"""
from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from core.views import selection as answer_sets
from core.vocab import taxonomy
from ui import filters
from ui.cached import answered_runs, default_probe_set, selection_sentence, summary, vocabulary
from ui.common import content_warning, db_path, ensure_navigation, readonly
from ui.stat_figures import judge_choice, require_store


@dataclass(frozen=True)
class PageContext:
    """What a page reads the store with: the file, its version (the cache key), what it holds, the judge, and
    the language chosen where the page asked for one (else None)."""

    path: str
    mtime: float
    facts: dict
    judge: str
    language: str | None = None
    vocabulary: taxonomy.Taxonomy = taxonomy.DEFAULT  # the store's: group names, languages (Store.taxonomy)
    selection: dict | None = None  # the runs and probe set the page's views read (ui.filters.selection), or None


# What a database that does not exist yet holds (the Run page on a fresh machine, see start's missing_ok).
NO_FACTS: dict = {"probes": 0, "runs": 0, "completions": 0, "verdicts": 0, "models": [], "languages": [],
                  "judges": []}


def header(title: str) -> None:
    """A page's head: its title and the content warning (every page, the Overview included, draws it here)."""
    ensure_navigation()
    st.title(title)
    content_warning()


def start(title: str, page: str, judge: bool | str = True, missing_ok: bool = False, language: bool = False,
          language_names: dict[str, str] | None = None, runs: bool | None = None,
          probe_sets: bool = True) -> PageContext:
    """Draw a page's head and open the store (stopping with a message when there is none).

    judge: the judge select box (key `<page>_judge`, kept in the URL) in the sidebar (True or "sidebar"), in the
    page under the title ("main"), or left out (False). language: a language select box (key
    `<page>_option_language`, in the URL) beside the judge's, both in the page (the statistics pages), with
    `language_names` as its labels. `missing_ok`: a page that works without a database (the Run page, whose
    first run creates it) gets an empty context (mtime 0, NO_FACTS) instead; nothing is created by a visit, so
    no empty file is left behind. runs: the sidebar's run selector and probe-set choice (ui.filters.selection_sidebar,
    kept in the URL; every cached read of the page follows them) and, under the title, the sentence that says which
    runs and probe set the page shows (core.views.selection.describe); default: pages that choose a judge. A page whose
    views pick their own runs (Compare, Review) passes False. probe_sets=False: the page reads both probe sets by
    design (Counterfactual), so no choice is offered and the sentence says both.
    """
    header(title)
    if missing_ok and not readonly() and not db_path().exists():
        return PageContext(str(db_path()), 0.0, dict(NO_FACTS), "")
    path, mtime = require_store()
    words = vocabulary(path, mtime)
    facts = summary(path, mtime)
    chosen_selection = None
    if judge if runs is None else runs:
        chosen_selection = filters.selection_sidebar(answered_runs(path, mtime), page=page, probe_sets=probe_sets,
                                                     default_probe_set=default_probe_set(path, mtime))
        if not probe_sets:
            chosen_selection = {**chosen_selection, "probe_set": list(answer_sets.PROBE_SETS["all"])}
        # Plain text: run ids are a user's text, and st.text never reads Markdown.
        st.text(selection_sentence(path, mtime, chosen_selection))
    chosen, language_chosen = "", None
    key = f"{page}_judge"
    if language:
        left, right = st.columns(2)
        with right:
            chosen = judge_choice(path, mtime, key=key) if judge else ""
        held = list(words.language_codes)
        names = {code: language.name for code, language in words.languages.items()} | (language_names or {})
        language_chosen = filters.select_option("Language", "language", held, page=page, where=left,
                                                format_func=lambda code: names.get(code, code))
    elif judge == "main":
        chosen = judge_choice(path, mtime, key=key)
    elif judge:
        with st.sidebar:
            chosen = judge_choice(path, mtime, key=key)
    return PageContext(path, mtime, facts, chosen, language_chosen, words, chosen_selection)
