"""Filters that live in the URL's query parameters, so a link reopens the same view.

A filter is a list of values per name (`?group=black&group=women&model=m1`); options such as the judge
or the sort order are single values. Widgets start from the URL and write back to it on every run,
and links to other pages (a heatmap cell to the drill-down, the drill-down to the export) carry them.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence

import streamlit as st

from core.store import VERDICT_FILTERS
from core.views import selection as answers
from core.vocab import dimensions, taxonomy
from ui.common import escape_markdown, group_label, language_name, strategy_label, vocabulary

# Names Store queries accept as filters (core/vocab/dimensions.py), in the order the sidebar shows them.
STORE_FILTERS: tuple[str, ...] = dimensions.filterable()
LABELS: dict[str, str] = {**dimensions.labels(), "verdict": "Verdict"}

Filters = dict[str, list[str]]


def read(names: Sequence[str] = (*STORE_FILTERS, "verdict")) -> Filters:
    """The filters the URL holds (only non-empty ones)."""
    found = {name: [v for v in st.query_params.get_all(name) if v] for name in names}
    return {name: values for name, values in found.items() if values}


def store_filters(filters: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The part of `filters` that Store queries take as `filters=` (the verdict goes separately)."""
    return {name: list(values) for name, values in filters.items() if name in STORE_FILTERS and values}


def option(name: str, choices: Sequence[str], default: str | None = None) -> str:
    """A single-valued URL option (judge, metric, sort...), falling back to `default` or the first choice."""
    value = st.query_params.get(name)
    if value in choices:
        return value
    return default if default is not None else choices[0]


def number(name: str, default: int, minimum: int = 1) -> int:
    """A positive whole-number URL option (a page number); anything else reads as `default`."""
    value = st.query_params.get(name, "")
    return max(int(value), minimum) if value.isdigit() else default


def select_option(label: str, name: str, choices: Sequence[str], default: str | None = None, *, page: str,
                  format_func: Callable[[str], str] = str, where=None, help: str | None = None) -> str:
    """A select box for a single-valued option, kept in the URL."""
    if not choices:
        return default or ""
    start = option(name, choices, default)
    chosen = (where or st.sidebar).selectbox(label, list(choices), index=list(choices).index(start),
                                             key=f"{page}_option_{name}", format_func=format_func, help=help)
    st.query_params[name] = chosen
    return chosen


def number_option(label: str, name: str, default: int, *, page: str, minimum: int = 1, where=None,
                  help: str | None = None) -> int:
    """A whole-number option kept in the URL (`name=12`) when it differs from `default`."""
    start = number(name, default, minimum)
    chosen = int((where or st.sidebar).number_input(label, min_value=minimum, value=start, step=1,
                                                    key=f"{page}_option_{name}", help=help))
    if chosen != default:
        st.query_params[name] = str(chosen)
    elif name in st.query_params:
        del st.query_params[name]
    return chosen


def toggle_option(label: str, name: str, *, page: str, where=None, help: str | None = None) -> bool:
    """An on/off option kept in the URL (`name=on`), off unless the link says on."""
    chosen = (where or st.sidebar).toggle(label, value=st.query_params.get(name) == "on",
                                          key=f"{page}_option_{name}", help=help)
    if chosen:
        st.query_params[name] = "on"
    elif name in st.query_params:
        del st.query_params[name]
    return chosen


def format_value(name: str) -> Callable[[str], str]:
    """How a filter's values read in widgets: display names for groups and strategies, else as stored."""
    if name == "group":
        return group_label
    if name == "strategy":
        return strategy_label
    if name == "language":
        return language_name
    return str


def sidebar(options: Mapping[str, Sequence[str]], *, page: str, closed: Sequence[str] = ()) -> Filters:
    """Multiselects in the sidebar, one per filter name with its possible values, started from the URL.

    Empty means "all". Values in the URL that are not among the options are kept (shown in a caption), so
    a link to a slice that the current options do not list still filters, rather than silently widening;
    except for the `closed` names, whose options are every value there is (the verdict filters): a value the
    link names beyond them is said to be ignored, never handed to the store (which refuses it).
    """
    chosen: Filters = {}
    for name, values in options.items():
        values = list(values)
        wanted = [v for v in st.query_params.get_all(name) if v]
        key = f"{page}_filter_{name}"
        if key not in st.session_state:
            st.session_state[key] = [v for v in wanted if v in values]
        picked = st.sidebar.multiselect(LABELS.get(name, name), values, key=key, format_func=format_value(name),
                                        placeholder="all")
        extra = [v for v in wanted if v not in values and v not in picked] if not picked else []
        if extra and name in closed:
            st.sidebar.caption(f"{LABELS.get(name, name)} from the link, unknown and ignored: "
                               f"{escape_markdown(', '.join(extra))}")
            extra = []
        if extra:
            st.sidebar.caption(f"{LABELS.get(name, name)} from the link: {escape_markdown(', '.join(extra))}")
        selected = picked or extra
        if selected:
            st.query_params[name] = selected
            chosen[name] = selected
        elif name in st.query_params:
            del st.query_params[name]
    return chosen


# The selection every view of a page reads (core/views/selection.py): the runs (URL `run_id`, repeated; none: the
# latest completed run's answer of each probe) and the probe set (URL `probe_set`: matched, counterfactual or all;
# left out of the URL when it is the store's default: matched-seed, or counterfactual in a store of those only).
RUNS, PROBE_SET = "run_id", "probe_set"
_DEFAULT_PROBE_SET = "_default_probe_set"  # session state: the store's default, set by selection_sidebar


def _default() -> str:
    """The probe set a page reads when the URL names none (core.views.selection.default_probe_set of its store)."""
    try:
        return st.session_state.get(_DEFAULT_PROBE_SET, answers.DEFAULT_PROBE_SET)
    except Exception:  # no script run context (a test's direct call of a cached read)
        return answers.DEFAULT_PROBE_SET


def _url_selection() -> tuple[list[str], str]:
    """The runs and probe-set name the URL holds (none, and the default, outside a page run: a test's direct
    call of a cached read)."""
    try:
        runs = [v for v in st.query_params.get_all(RUNS) if v]
        probe_set = st.query_params.get(PROBE_SET)
    except Exception:  # no script run context: nothing chosen
        return [], answers.DEFAULT_PROBE_SET
    return runs, probe_set if probe_set in answers.PROBE_SETS else _default()


def selection() -> Filters:
    """The store filters of the page's selection: `run_id` (chosen runs, absent for the default) and
    `probe_set`. ui.cached adds them to every read, so every view of a page shows the answers its header names."""
    return answers.filters(*_url_selection())


def selection_sidebar(runs: Sequence[str], *, page: str, probe_sets: bool = True,
                      default_probe_set: str = answers.DEFAULT_PROBE_SET) -> Filters:
    """The sidebar's run selector and probe-set choice, started from the URL and written back to it; returns
    selection(). `runs`: the runs that hold answers, newest first; `default_probe_set`: the store's (what no
    `probe_set` in the URL means). Without `probe_sets` (the Counterfactual view reads both by design) the choice
    is not offered and the URL's is left as it is."""
    st.session_state[_DEFAULT_PROBE_SET] = default_probe_set
    wanted, probe_set = _url_selection()
    key = f"{page}_filter_{RUNS}"
    if key not in st.session_state:
        st.session_state[key] = [v for v in wanted if v in runs]
    picked = st.sidebar.multiselect(
        "Runs", list(runs), key=key, placeholder="latest answer of each probe",
        help="Which runs the views read. None chosen: for each model and probe, the answer of the latest completed "
             "run (a re-run replaces the answers it re-asked once it completes). Chosen runs: the same rule among them.")
    extra = [v for v in wanted if v not in runs and v not in picked] if not picked else []
    if extra:
        st.sidebar.caption(f"Runs from the link: {escape_markdown(', '.join(extra))}")
    if picked or extra:
        st.query_params[RUNS] = picked or extra
    elif RUNS in st.query_params:
        del st.query_params[RUNS]
    if probe_sets:
        names = list(answers.PROBE_SETS)
        chosen = st.sidebar.selectbox(
            "Probe set", names, index=names.index(probe_set), key=f"{page}_option_{PROBE_SET}",
            format_func=lambda name: answers.PROBE_SET_WORDS[name].capitalize(),
            help="Matched-seed probes (each group its own seed statements) and counterfactual probes (one claim "
                 "for every group) measure different things, so views read one set unless both are chosen.")
        if chosen != default_probe_set:
            st.query_params[PROBE_SET] = chosen
        elif PROBE_SET in st.query_params:
            del st.query_params[PROBE_SET]
    return selection()


def completion_filters(models: Sequence[str], languages: Sequence[str], *, page: str) -> tuple[Filters, list[str]]:
    """The sidebar filters of pages that list completions (drill-down, export): (store filters, verdicts).

    `scenario` has no widget (too many values); links set it, and the sidebar says so. The runs and the probe set
    are the page's selection (selection_sidebar, drawn by ui.page.start).
    """
    words = vocabulary()
    languages = list(languages) or list(words.language_codes)
    chosen = sidebar({
        "model": models, "language": languages,
        "group": [g for g in words.groups if any(g in words.groups_by_language.get(lang, ()) for lang in languages)],
        "strategy": list(words.strategies), "scenario_category": list(words.categories),
        "kind": list(taxonomy.KINDS), "verdict": list(VERDICT_FILTERS),
    }, page=page, closed=("verdict",))
    linked = read(["scenario", "source"])
    if linked:
        st.sidebar.caption("Also filtered by " + escape_markdown("; ".join(f"{k}: {', '.join(v)}"
                                                                          for k, v in linked.items())))
    return store_filters({**chosen, **linked, **selection()}), chosen.get("verdict", [])


def link(filters: Mapping[str, Sequence[str] | str]) -> dict[str, list[str] | str]:
    """Query parameters for st.switch_page / st.page_link that reopen a view with these filters, and with the
    page's runs and probe set (selection) unless `filters` name their own (a probe set as its name or as store
    values)."""
    runs, probe_set = _url_selection()
    given = {name: (values if isinstance(values, str) else list(values)) for name, values in filters.items() if values}
    if PROBE_SET in given and not isinstance(given[PROBE_SET], str):
        given[PROBE_SET] = answers.probe_set_name({PROBE_SET: given[PROBE_SET]})
    kept = {RUNS: runs} if runs else {}
    if probe_set != _default():
        kept[PROBE_SET] = probe_set
    out = {**kept, **given}
    if out.get(PROBE_SET) == _default():
        del out[PROBE_SET]
    return out


def fingerprint(filters: Mapping[str, Sequence[str]]) -> str:
    """A short stable id of a filter set, for widget keys that must reset when the view changes."""
    canonical = sorted((name, sorted(values)) for name, values in filters.items() if values)
    return hashlib.sha1(repr(canonical).encode("utf-8")).hexdigest()[:12]


def file_stem(filters: Mapping[str, Sequence[str] | str], prefix: str = "forwhom") -> str:
    """A file name that records the filter, e.g. forwhom_group-black+women_model-m1 (safe on any system); the probe
    set by its name (probe_set-all), and not at all where it is the store's default."""
    filters = dict(filters)
    if PROBE_SET in filters:
        name = answers.probe_set_name({PROBE_SET: filters.pop(PROBE_SET)})
        if name != _default():
            filters[PROBE_SET] = name
    parts = [prefix]
    for name, values in sorted(filters.items()):
        values = [values] if isinstance(values, str) else list(values)
        if values:
            parts.append(f"{name}-" + "+".join(values))
    stem = "_".join(parts) if len(parts) > 1 else f"{prefix}_all"
    stem = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem)
    return stem[:180]
