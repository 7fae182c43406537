"""An empty database is never mistaken for a real one: `make run` restores the demo into a database that is
missing or holds no completions (never into one that holds results), and visiting the app creates none."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from ui.jobs import MANAGER
from core.store import Store
from tests.fixtures import dashboard_db
from tests.fixtures.paths import PYTHON, ROOT
from tests.fixtures.apptest import app_test


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    """A small dump standing in for the demo results (24 completions, tests/fixtures/dashboard_db.py)."""
    folder = tmp_path_factory.mktemp("dump")
    source = folder / "source.duckdb"
    dashboard_db.build(source)
    out = folder / "results.jsonl.gz"
    Store(source, readonly=True).dump(out)
    return out


def _make_demo_db(db, dump) -> subprocess.CompletedProcess:
    """`make demo-db` (what `make run` and `make demo` do first) with this repository's recipe, no setup."""
    return subprocess.run(["make", "-s", "--no-print-directory", "demo-db", f"DB={db}", f"DEMO_RESULTS={dump}",
                           f"PY={PYTHON}", "READY="], cwd=ROOT, capture_output=True, text=True, timeout=180)


def _completions(db) -> int:
    return Store(db, readonly=True).summary()["completions"]


def test_make_restores_the_demo_into_a_missing_database(tmp_path, dump):
    db = tmp_path / "audit.duckdb"
    done = _make_demo_db(db, dump)
    assert done.returncode == 0, done.stderr
    assert _completions(db) == 24


def test_make_restores_the_demo_into_an_existing_empty_database(tmp_path, dump):
    db = tmp_path / "audit.duckdb"
    Store(db)  # what `streamlit run app.py` or any other tool may have left: the schema and nothing else
    assert db.exists() and _completions(db) == 0
    done = _make_demo_db(db, dump)
    assert done.returncode == 0, done.stderr
    assert _completions(db) == 24


def test_make_never_restores_into_a_database_that_holds_results(tmp_path, dump):
    db = tmp_path / "audit.duckdb"
    dashboard_db.build(db)
    store = Store(db)
    store.create_run("mine", {"targets": []}, [])  # the user's own work, which must stay as it is
    before = store.summary()
    done = _make_demo_db(db, dump)
    assert done.returncode == 0, done.stderr
    assert "holds 24 completions: left as it is" in done.stdout
    assert Store(db, readonly=True).summary() == before


def test_visiting_every_page_without_a_database_creates_none(tmp_path, monkeypatch):
    db = tmp_path / "data" / "audit.duckdb"
    monkeypatch.setenv("AUDIT_DB", str(db))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    from app import PAGES  # noqa: PLC0415 (app.py draws only when Streamlit runs it)

    app = app_test(timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    for file, *_ in PAGES:
        if (ROOT / file).exists():
            app.switch_page(file).run()
            assert not app.exception, (file, [e.value for e in app.exception])
    assert not db.exists() and not db.parent.exists()

    # The Run page works from the bundled probes; the first run creates the database.
    app.switch_page("pages/run.py").run()
    assert next(m.value for m in app.metric if m.label == "Probes") == str(13 * 5 * 2)
    for key, value in (("run_groups", ["black"]), ("run_strategies", ["chaining"])):
        next(w for w in app.multiselect if w.key == key).set_value(value)
    for key, value in (("run_per_cell", 1), ("run_tokens", 2)):
        next(w for w in app.number_input if w.key == key).set_value(value)
    app.run()
    next(b for b in app.button if b.key == "run_start").click().run()
    assert not app.exception, [e.value for e in app.exception]
    job = MANAGER.jobs(db)[0]
    MANAGER.wait(job.run_id, timeout=300)
    assert job.status == "completed", job.error
    assert _completions(db) == 1
    shutil.rmtree(db.parent)
