"""The server runs its landing pages once at start (ui.warmup), as a first visitor's request would, so that visitor
finds them computed: the real launcher (`python -m ui.launch`, as `make run`) on a real database, its log read."""
from __future__ import annotations

import re

from bench import serve
from core.store import Store
from tests.fixtures import dashboard_db
from ui.warmup import STARTED_LINE

# "/heatmaps 0.42 s, 2 charts; / 0.30 s, 0 charts" -> per page: seconds, charts, what follows (errors, unfinished)
RUN = re.compile(r"/(?P<page>[\w-]*) (?P<seconds>[\d.]+) s, (?P<charts>\d+) charts?(?P<rest>[^;]*)")


def _started_pages(db, tmp_path, readonly: bool = False) -> dict[str, dict]:
    """What the server said it ran at start: per page (URL path), its seconds, charts and anything else said."""
    log = tmp_path / "server.log"
    process, base = serve.start(db, readonly=readonly, log=log)
    try:
        serve.wait_healthy(process, base)
        line = serve.wait_started_pages(log, process, timeout=180)
    finally:
        serve.stop(process)
    assert line is not None, log.read_text()
    return {m["page"]: {"seconds": float(m["seconds"]), "charts": int(m["charts"]), "rest": m["rest"]}
            for m in RUN.finditer(line[len(STARTED_LINE):])}


def test_the_server_runs_the_heatmaps_and_the_overview_at_start(tmp_path):
    db = tmp_path / "audit.duckdb"
    dashboard_db.build(db)
    languages = Store(db, readonly=True).summary()["languages"]
    runs = _started_pages(db, tmp_path)
    assert list(runs) == ["heatmaps", ""]
    # The Heatmaps page ran to its end: the early 1-pixel chart, then one model x group heatmap per language.
    assert runs["heatmaps"]["charts"] == 1 + len(languages)
    for page, run in runs.items():
        assert run["rest"] == "", (page, run)  # no error shown, not left unfinished
        assert 0 < run["seconds"] < 180


def test_the_start_up_run_creates_no_database(tmp_path):
    db = tmp_path / "data" / "audit.duckdb"
    runs = _started_pages(db, tmp_path)
    assert runs["heatmaps"]["charts"] == 0 and runs["heatmaps"]["rest"] == ""  # "No audit database at ..."
    assert not db.exists() and not db.parent.exists()


def test_the_start_up_run_reads_a_readonly_demo_without_writing(tmp_path):
    db = tmp_path / "demo.duckdb"
    dashboard_db.build(db)
    languages = Store(db, readonly=True).summary()["languages"]
    before = db.stat().st_mtime_ns, db.stat().st_size
    runs = _started_pages(db, tmp_path, readonly=True)
    assert runs["heatmaps"]["charts"] == 1 + len(languages) and runs["heatmaps"]["rest"] == ""
    assert (db.stat().st_mtime_ns, db.stat().st_size) == before
