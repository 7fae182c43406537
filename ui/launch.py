"""`python -m ui.launch [streamlit options]`: the dashboard server, with the pages' imports done at start.

Streamlit imports what a page needs during the first visit, so the first person to open a freshly
started dashboard waited for pandas, pyarrow, plotly, DuckDB and the core modules to load (2.5 s on an
idle 2-core machine, 8 s on a busy one: most of the first heatmap's wait, bench/README.md). Importing
them here, before the server accepts connections, moves that cost to start-up, where nobody is looking
at a blank page; the pages then find the modules already loaded. Once the server accepts sessions it also runs
the Heatmaps page and the Overview once itself (ui.warmup), so the first visitor finds their tables computed and
Streamlit's chart code already run. `make run`, `make demo`, the browser tests and the render benchmark all start
the dashboard this way.
"""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# What the overview and heatmap pages import through ui/, and what Streamlit's dataframe and chart
# elements load on first use. Not the ui/ modules themselves: their st.cache_data functions must be
# created once Streamlit's runtime exists, or they would cache outside it.
WARM_MODULES: tuple[str, ...] = (
    "numpy", "pandas", "pyarrow", "duckdb", "plotly.graph_objects", "plotly.io",
    "core.vocab.taxonomy", "core.store", "core.stats.rates", "core.ppi", "core.stats.estimates",
    "streamlit.elements.plotly_chart", "streamlit.elements.arrow",
    "altair", "streamlit.elements.vega_charts",  # the Heatmaps page draws with Vega-Lite
)


# Options the dashboard is served with unless given on the command line (a later option wins). No file watcher:
# Streamlit's watches the checkout recursively, .venv included (7,400 folders: 0.15 s of the first visit, and
# "Inotify queue overflowed" in the log of `make run`); nobody edits the code of a running audit dashboard.
# `python -m ui.launch --server.fileWatcherType auto` brings it back for development.
SERVER_DEFAULTS: tuple[str, ...] = ("--server.fileWatcherType", "none")


def _warm_altair() -> None:
    """Altair loads and compiles the Vega-Lite JSON schema on its first chart (0.1-0.3 s): do it now."""
    import altair
    import pandas

    altair.Chart(pandas.DataFrame({"x": ["a"]})).mark_rect().encode(x="x:N").to_dict()


def _navigation_first() -> None:
    """Every session routes through app.py's st.navigation from its first run.

    Streamlit starts in its legacy multipage mode when a `pages/` folder sits beside the main script, so the
    first deep link on a fresh server (/heatmaps) ran the page alone, and ui.common.ensure_navigation had it
    rerun through app.py: the first visitor's page ran twice (0.4 s of a cold first heatmap, bench/README.md).
    The flag is read once, when the first session's PagesManager is made; setting it first skips that run.
    `streamlit run app.py` without the launcher still works, through ensure_navigation.
    """
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


def main(argv: list[str] | None = None) -> None:
    """Import WARM_MODULES, then hand over to `streamlit run app.py` with the given options; once the server
    accepts sessions, it runs the landing pages once itself (ui.warmup; FORWHOM_WARMUP=off leaves that out)."""
    for name in WARM_MODULES:
        importlib.import_module(name)
    _warm_altair()
    _navigation_first()
    if os.environ.get("FORWHOM_WARMUP", "on") != "off":
        from ui import warmup

        warmup.start()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *SERVER_DEFAULTS, *(sys.argv[1:] if argv is None else argv)]
    cli.main()


if __name__ == "__main__":
    main()
