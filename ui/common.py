"""What every page needs: the database path, read-only mode, the content warning, and the one way text from
outside reaches the page (escape_markdown, dataframe, inert_text)."""
from __future__ import annotations

import hmac
import os
import re
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from core.files.export import neutralise_formula
from core.store import Store
from core.vocab import taxonomy

CONTENT_WARNING = ("Content warning: this tool stores and shows prompts that ask for hateful content about "
                   "demographic groups, and model outputs that may contain it. Both are shown as plain text.")


# The pages of this session's navigation that are not files (the Overview), by name: app.py sets them each run, so
# a page can link to them (st.page_link needs the page itself).
NAVIGATION: dict[str, Any] = {}


def db_path() -> Path:
    return Path(os.environ.get("AUDIT_DB", "data/audit.duckdb"))


def readonly() -> bool:
    """Demo sessions (AUDIT_READONLY=1, `make demo`) open the database read-only and hide write controls."""
    from core.options import read_only_env

    return read_only_env()


def content_warning() -> None:
    st.warning(CONTENT_WARNING, icon=":material/warning:")


def open_store(write: bool = False) -> Store:
    """The audit store; read-only unless a page needs to write, the session is not a demo, and the session
    has given the write password where one is set (so a hidden button is not the only guard)."""
    return Store(db_path(), readonly=not write or readonly() or not write_unlocked())


PASSWORD_ENV = "AUDIT_PASSWORD"
_UNLOCKED = "_write_unlocked"


def write_password() -> str | None:
    """The password guarding the pages that write (runs, verdict corrections): `[auth] password` in the
    Streamlit secrets (.streamlit/secrets.toml), else the AUDIT_PASSWORD environment variable; None = open."""
    if st.secrets.load_if_toml_exists():
        secret = st.secrets.get("auth", {}).get("password")
        if secret:
            return str(secret)
    return os.environ.get(PASSWORD_ENV) or None


def write_unlocked() -> bool:
    """Whether this session may write: no password is set, or it was given in this browser session."""
    return write_password() is None or bool(st.session_state.get(_UNLOCKED))


def require_write_access(what: str) -> bool:
    """Draw a password form in place of write controls until the session unlocks them; True when it may
    write. Demo sessions never may. The password is compared in constant time and never stored."""
    if readonly():
        return False
    password = write_password()
    if write_unlocked():
        return True
    with st.form(f"write_password_{what}"):
        st.text(f"A password is needed to {what}.")
        typed = st.text_input("Password", type="password", key=f"write_password_input_{what}")
        if st.form_submit_button("Unlock"):
            if hmac.compare_digest(typed.encode("utf-8"), str(password).encode("utf-8")):
                st.session_state[_UNLOCKED] = True
                st.rerun()
            st.error("Wrong password.")
    return False


def demo_banner() -> None:
    """Marks every page of a read-only demo session, so nobody mistakes it for a live audit."""
    st.info("Demo session: this database is opened read-only. Every view and the CSV export work; "
            "runs and verdict corrections are switched off.", icon=":material/visibility:")


def inert_text(text: str | None, empty: str = "(no text)") -> None:
    """Show untrusted text (a prompt, a model's answer) as plain preformatted text, never as Markdown/HTML."""
    st.code(text if text else empty, language="text", wrap_lines=True)


# Text from outside is never Markdown. Whatever comes from the store (model, run, judge, probe and taxonomy names,
# a stopped run's message, an API server's error body), a file or the URL reaches a widget that renders Markdown
# (titles, headers, captions, alerts, st.toast, metric labels and values, widget and expander labels, radio options,
# st.progress text, tooltips) only through escape_markdown; long text goes through inert_text, tables through
# dataframe. Streamlit renders Markdown images (a request to any URL as the page opens), links and autolinks,
# directives (:red[...], :material/...:) and LaTeX; HTML is never enabled (no unsafe_allow_html, no st.html).
_MARKDOWN_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def escape_markdown(value: Any) -> str:
    """`value` as Markdown that shows it literally: every ASCII punctuation character backslash-escaped (CommonMark
    lets each be, and shows it as itself), so no image, link, autolink (http\\://, www\\.), emphasis, heading,
    list, HTML tag, entity, directive or formula is formed from it. A select box's or multiselect's options are
    plain text already (their format_func needs none of this); a radio's options are Markdown."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", "" if value is None else str(value))


def _safe_cell(value: Any) -> Any:
    """A table cell as a spreadsheet may read it: a carriage return becomes a line feed (the table's CSV download
    quotes only cells with a line feed, a comma or a quote, so a bare CR would end the row there and start a cell
    of its own), then core.files.export.neutralise_formula, the Export page's escaping (a ' before = + - @ tab CR)."""
    if isinstance(value, str):
        return neutralise_formula(value.replace("\r\n", "\n").replace("\r", "\n"))
    return value


def safe_cells(data: Any) -> Any:
    """A table's data with its text cells (and text index) escaped as _safe_cell says; other data as it is."""
    if isinstance(data, (list, tuple)) and data and all(isinstance(row, dict) for row in data):
        data = pd.DataFrame(list(data))
    if not isinstance(data, pd.DataFrame):
        return data
    safe = data.copy()
    for column in safe.columns:
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(_safe_cell)
    if safe.index.dtype == object or pd.api.types.is_string_dtype(safe.index):
        safe.index = safe.index.map(_safe_cell)
    return safe


def _is_missing(value: Any) -> bool:
    from core.vocab import labels

    return not isinstance(value, (list, tuple, set, dict)) and labels.missing(value)


def _numeric_format(column: str) -> str | None:
    """The number format of a column a reader sees (core.vocab.labels' kinds): rates with two decimals, differences signed,
    counts with thousands separators, shares as percentages; None: Streamlit's own."""
    from core.vocab import labels

    base = column
    for suffix in ("_ci_low", "_ci_high"):
        if column.endswith(suffix):
            base = column[: -len(suffix)]
    if base in labels.RATES or base in ("dr", "ci") or column in ("ci_low", "ci_high"):
        return "%.2f"
    if base in labels.SIGNED or base.startswith("dev"):
        return "%+.2f"
    if column in labels.COUNTS:
        return "localized"
    if column in labels.SHARES:
        return "percent"
    return None


def _text_of(column: str, value: Any, row: dict, words: taxonomy.Taxonomy) -> str:
    """One cell as text for a reader (core.vocab.labels.cell), for columns that cannot stay numbers (a missing value,
    a p-value below 0.001)."""
    from core.vocab import labels

    base = column
    for suffix in ("_ci_low", "_ci_high"):
        if column.endswith(suffix):
            base = column[: -len(suffix)]
    if base != column and not _is_missing(value) and isinstance(value, (int, float)):
        return labels.signed(value) if base in labels.SIGNED or base.startswith("dev") else labels.rate(value)
    if column.endswith("_p") or column == "pvalue":
        return labels.p_value(value)
    return labels.cell(column, value, row, words)


P_COLUMNS = ("pvalue", "spearman_p", "kendall_p")


def readable(data: pd.DataFrame, column_config: dict | None = None,
             words: taxonomy.Taxonomy | None = None) -> tuple[pd.DataFrame, dict, set]:
    """A frame as a person reads it : group keys as display names (in each row's language), strategies by
    their labels, languages by name, lists of groups as words, a missing value as an en dash (never "None" or "nan"),
    p-values as "< 0.001"; and a column configuration whose titles come from core.vocab.labels (a page's own title wins)
    with numbers formatted by their kind. Returns (frame, column_config, the columns whose text was made here)."""
    from core.vocab import labels

    words = words or vocabulary()
    frame = data.copy()
    config = dict(column_config or {})
    made: set = set()
    rows = frame.to_dict("records") if len(frame.columns) else []
    has_language = "language" in frame.columns
    for column in list(frame.columns):
        if not isinstance(column, str):
            continue
        values = frame[column]
        kind = values.dtype.kind if hasattr(values.dtype, "kind") else "O"
        textual = kind in ("O", "U", "S") or pd.api.types.is_string_dtype(values)
        if column in labels.GROUP_COLUMNS or column == "group_name":
            frame[column] = [labels.DASH if _is_missing(v) else
                             words.group_name(str(v), str(row.get("language") or "") if has_language else "")
                             for v, row in zip(values, rows)]
        elif column in labels.GROUP_LISTS and textual:
            frame[column] = [labels.cell(column, v, row, words) for v, row in zip(values, rows)]
        elif column == "strategy" and textual:
            frame[column] = [labels.DASH if _is_missing(v) else words.strategy_label(str(v)) for v in values]
        elif column in labels.VALUE_WORDS and textual:
            frame[column] = [labels.cell(column, v, row, words) for v, row in zip(values, rows)]
        elif (column in labels.P_VALUES or column in P_COLUMNS or column.endswith("_p")) and kind in "fiu":
            frame[column] = [_text_of(column, v, row, words) for v, row in zip(values, rows)]
            made.add(column)
        elif kind in "fiub" and values.isna().any():
            frame[column] = [_text_of(column, v, row, words) for v, row in zip(values, rows)]
            made.add(column)
        elif kind == "M" and values.isna().any():
            frame[column] = [labels.when(v) for v in values]
            made.add(column)
        elif textual:
            frame[column] = [labels.DASH if _is_missing(v) else v for v in values]
        if column in config and config[column] is None:  # a column the page hides
            continue
        given = config.get(column)
        if given is None or isinstance(given, str):
            label = given if isinstance(given, str) else labels.title(column)
            if column in made:
                config[column] = st.column_config.TextColumn(label)
            elif kind in "fiu" and _numeric_format(column):
                config[column] = st.column_config.NumberColumn(label, format=_numeric_format(column))
            else:
                config[column] = {"label": label}
        elif isinstance(given, dict):
            given = dict(given)
            if not given.get("label"):
                given["label"] = labels.title(column)
            if column in made and (given.get("type_config") or {}).get("type") not in (None, "text"):
                given = dict(st.column_config.TextColumn(given["label"]))
            config[column] = given
    if has_language:
        frame["language"] = [labels.language_name(code, words) for code in frame["language"]]
    return frame, config, made


def dataframe(data: Any, readable_text: bool = True, **options: Any) -> Any:
    """st.dataframe of `data` with its text cells made safe for the table toolbar's "Download as CSV" (a cell a
    spreadsheet would run as a formula gets the Export page's ' prefix). Cells are drawn as plain text, never
    Markdown. Every page draws its tables through here, in words (readable): column titles from core.vocab.labels, group,
    strategy and language names, numbers formatted, no "None"."""
    if isinstance(data, (list, tuple)) and data and all(isinstance(row, dict) for row in data):
        data = pd.DataFrame(list(data))
    if not readable_text or not isinstance(data, pd.DataFrame):
        return st.dataframe(safe_cells(data), **options)
    frame, config, made = readable(data, options.pop("column_config", None))
    safe = safe_cells(frame.drop(columns=list(made)))
    for column in made:
        safe[column] = frame[column]
    safe = safe[list(frame.columns)]
    return st.dataframe(safe, column_config=config, **options)



def vocabulary() -> taxonomy.Taxonomy:
    """The taxonomy of the open database: every group name, strategy label and language a page shows comes from
    the store (Store.taxonomy), never from constants, so a custom population reads in its own words. The bundled
    default where there is no database yet (the Run page on a fresh machine)."""
    from ui.cached import vocabulary as stored

    path = db_path()
    if not path.exists():
        return taxonomy.DEFAULT
    return stored(str(path), path.stat().st_mtime)


UNSUPPORTED_WARNING = ("The refusal judge has no rules for {language}: its verdicts there use the English and "
                       "Portuguese phrase tables. Use an llm: judge or a review sample (Review page) for numbers you "
                       "can rely on.")


def warn_unsupported_languages(languages: Iterable[str], judge: str) -> list[str]:
    """One warning per shown language that has no `refusal` rules file, when the chosen judge relies on those
    rules: its refusals in its own words are missed there, so its figures must not be read as measurements.
    Language names come from the store's taxonomy. Returns the codes warned about (the drill-down's detail
    does not warn twice)."""
    from core.judges import relies_on_rules
    from core.judges.refusal import unsupported

    if not relies_on_rules(judge):
        return []
    missing = sorted({code for code in languages if isinstance(code, str) and code and unsupported(code)})
    if missing:
        declared = vocabulary().languages
        for code in missing:
            name = declared[code].name if code in declared else code
            st.warning(UNSUPPORTED_WARNING.format(language=escape_markdown(name)), icon=":material/translate:")
    return missing


def group_label(key: str, language: str = "en") -> str:
    """A group's display name in a language (the store's taxonomy); a key it does not know is shown as stored."""
    return vocabulary().group_name(key, language)


def strategy_label(key: str) -> str:
    return vocabulary().strategy_label(key)


def language_name(code: str) -> str:
    language = vocabulary().languages.get(code)
    return language.name if language else str(code)


def group_names(table: pd.DataFrame, column: str) -> list:
    """Display names for a column of group keys, each in its row's language (empty cells stay empty)."""
    return [group_label(key, language) if isinstance(key, str) else key
            for key, language in zip(table[column], table["language"])]


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
