"""Access: a read-only session cannot write because DuckDB opens the file read-only (not only because buttons
are hidden); an optional password (Streamlit secrets `[auth] password`, or AUDIT_PASSWORD) guards the pages
that write; exports of hostile content are inert."""
from __future__ import annotations

import csv
import hashlib

import pytest
from streamlit.testing.v1 import AppTest

from core.files.export import write_csv
from core.probes.schema import Probe
from core.report.html import write_report
from core.store import CompletionRecord, Store, StoreError, VerdictRecord
from tests.fixtures.apptest import app_test

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def no_password(monkeypatch):
    monkeypatch.delenv("AUDIT_PASSWORD", raising=False)


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_write_through_a_read_only_store_is_refused_and_the_file_is_unchanged(audit):
    path = audit["path"]
    before = _digest(path)
    store = Store(path, readonly=True)
    probe = audit["probes"][0]
    writes = {
        "add_probes": lambda: store.add_probes([Probe(**{**vars(probe), "probe_id": "new", "prompt": "new"})]),
        "save_results": lambda: store.save_results([CompletionRecord("r2", probe.probe_id, "model-c", "text")], []),
        "create_run": lambda: store.create_run("r2", {}, [probe.probe_id]),
        "set_run_status": lambda: store.set_run_status("r1", "failed"),
        "save_target": lambda: store.save_target("evil", "openai", "m"),
        "set_human_verdict": lambda: store.set_human_verdict(audit["completions"][0], "complied", "x", "y"),
        "verdict": lambda: store.save_results([], [VerdictRecord(audit["completions"][0], "refusal", "complied")]),
    }
    for name, write in writes.items():
        with pytest.raises(StoreError, match="is open read-only"):  # a plain message, not DuckDB's
            write()
    assert _digest(path) == before
    assert Store(path, readonly=True).run("r1")["status"] == "completed"


def test_a_demo_session_store_is_read_only_even_when_a_page_asks_to_write(audit, monkeypatch):
    from ui.common import open_store

    monkeypatch.setenv("AUDIT_READONLY", "1")
    assert open_store(write=True).readonly
    monkeypatch.delenv("AUDIT_READONLY")
    assert not open_store(write=True).readonly


def _app(page: str, secrets: dict | None = None, **params) -> AppTest:
    app = app_test(timeout=120)
    if secrets:
        app.secrets.update(secrets)
    app.run()
    app.switch_page(page)
    app.query_params.update(params)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def _unlock(app: AppTest, password: str) -> AppTest:
    app.text_input(key=next(w.key for w in app.text_input if w.key.startswith("write_password_input"))).input(password)
    next(b for b in app.button if b.label == "Unlock").click().run()
    assert not app.exception, [e.value for e in app.exception]
    return app


@pytest.mark.parametrize("source", ["env", "secrets"])
def test_the_run_page_needs_the_password_when_one_is_set(audit, monkeypatch, source):
    secrets = {"auth": {"password": PASSWORD}} if source == "secrets" else None
    if source == "env":
        monkeypatch.setenv("AUDIT_PASSWORD", PASSWORD)
    app = _app("pages/run.py", secrets)
    assert "A password is needed to start or resume runs." in [t.value for t in app.text]
    assert "Start the run" not in [b.label for b in app.button] and not app.multiselect
    _unlock(app, "wrong guess")
    assert "Wrong password." in [e.value for e in app.error]
    assert "Start the run" not in [b.label for b in app.button]
    _unlock(app, PASSWORD)
    assert "Start the run" in [b.label for b in app.button]
    assert app.session_state["_write_unlocked"] is True  # the session keeps a flag, not the password


def test_without_a_password_the_write_pages_open_as_before(audit):
    app = _app("pages/run.py")
    assert "Start the run" in [b.label for b in app.button] and not app.get("form")


def test_relabelling_needs_the_password_and_a_locked_session_writes_nothing(audit, monkeypatch):
    monkeypatch.setenv("AUDIT_PASSWORD", PASSWORD)
    before = _digest(audit["path"])
    target = audit["completions"][1]
    app = _app("pages/drilldown.py", completion=target)
    assert "Save human verdict" not in [b.label for b in app.button]
    assert "A password is needed to correct verdicts." in [t.value for t in app.text]
    assert _digest(audit["path"]) == before
    _unlock(app, PASSWORD)
    app.radio[0].set_value("complied")
    next(b for b in app.button if b.label == "Save human verdict").click().run()
    assert not app.exception
    assert Store(audit["path"], readonly=True).completion_detail(target)["label"] == "complied"


HOSTILE = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1",
           "\u202eevil\u202c.exe =1", "ctrl\x07\x1b[31mred\x08", "<script>alert(1)</script>",
           "![x](http://127.0.0.1:9/x.png) <img src=x onerror=alert(1)> [link](javascript:alert(1))"]


def test_hostile_prompts_and_completions_export_inert(tmp_path):
    """CSV: every formula prefix escaped with an apostrophe, nothing else altered (RTL overrides and control
    characters kept as data). HTML report: statistics only (no prompt or answer in it), and the text it does
    show from the store (model names, which come from user-typed target specs) is escaped."""
    store = Store(tmp_path / "hostile.duckdb")
    probes = [Probe(f"h{i}", "en", "women", text, "", "s", "chaining", text, "attack", "custom")
              for i, text in enumerate(HOSTILE)]
    store.add_probes(probes)
    model = "<script>alert(1)</script>\u202e@evil"
    store.create_run("h", {"targets": [model], "judges": ["refusal"]}, [p.probe_id for p in probes])
    store.add_run_targets("h", [model])
    records = [CompletionRecord("h", p.probe_id, model, p.prompt) for p in probes]
    store.save_results(records, [VerdictRecord(r.completion_id, "refusal", "complied") for r in records])
    out = tmp_path / "rows.csv"
    write_csv(store.completion_rows(), out)
    with out.open(encoding="utf-8", newline="") as handle:  # newline="": a CR inside a field is data
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(HOSTILE)
    for row in rows:
        for column in ("prompt", "completion", "seed_text"):
            assert not row[column].startswith(("=", "+", "-", "@", "\t", "\r")), row[column]
            assert row[column].removeprefix("'") in HOSTILE  # escaped, not altered otherwise
    assert sum(row["completion"].startswith("'") for row in rows) == 6
    report = tmp_path / "report.html"
    write_report(store, report)
    html = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the model name, shown as text
    assert "<script" not in html.lower() and "onerror" not in html and "javascript:" not in html
    assert not any(text in html for text in HOSTILE)  # no prompt or answer is in the report at all


def test_rtl_overrides_and_control_characters_are_shown_verbatim_as_plain_text(audit):
    """The browser tests cover script, HTML and Markdown; here a completion with a right-to-left override,
    terminal escapes and other control characters reaches the drill-down only as a plain-text code block."""
    text = "\u202eSafe reply\u202c =cmd\x1b[2J\x07 <b>bold?</b> **no** \u200f\u2066x\u2069"
    probe = audit["probes"][0]
    store = Store(audit["path"])
    store.create_run("rtl", {"targets": ["model-c"], "judges": ["refusal"]}, [probe.probe_id])
    store.add_run_targets("rtl", ["model-c"])
    record = CompletionRecord("rtl", probe.probe_id, "model-c", text)
    store.save_results([record], [VerdictRecord(record.completion_id, "refusal", "complied")])
    app = _app("pages/drilldown.py", completion=record.completion_id)
    assert text in [code.value for code in app.code]
    assert not any(text in block.value or "Safe reply" in block.value for block in app.markdown)
