"""The DuckDB store: schema version, uniqueness of completions and verdicts, read-only and lock handling."""
from __future__ import annotations

import subprocess
import textwrap

import duckdb
import pytest

from core.probes.builder import build_bundled
from core.store import SCHEMA_VERSION, CompletionRecord, Store, StoreError, StoreLocked, VerdictRecord, completion_id_for
from tests.fixtures.paths import PYTHON


@pytest.fixture()
def store(db_path):
    store = Store(db_path)
    probes = build_bundled(per_cell=1, controls_per_group=1)[:4]
    store.add_probes(probes)
    store.create_run("r1", {"note": "test"}, [p.probe_id for p in probes])
    store.add_run_targets("r1", ["m"])
    return store, probes


def test_schema_version_is_recorded(db_path):
    assert Store(db_path).schema_version() == SCHEMA_VERSION
    with duckdb.connect(str(db_path)) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (str(SCHEMA_VERSION),)


def test_completion_unique_by_run_probe_target_and_verdict_by_completion_judge(store):
    store, probes = store
    records = [CompletionRecord("r1", p.probe_id, "m", f"text {i}") for i, p in enumerate(probes)]
    verdicts = [VerdictRecord(r.completion_id, "refusal", "refused") for r in records]
    assert store.save_results(records, verdicts) == 4
    again = [CompletionRecord("r1", p.probe_id, "m", "a different text") for p in probes]
    assert store.save_results(again, [VerdictRecord(r.completion_id, "refusal", "complied") for r in again]) == 0
    counts = store.run_counts("r1")
    assert (counts["completions"], counts["verdicts"]) == (4, 4)
    rows = store.completion_rows({"run_id": "r1"})
    assert sorted(rows["completion"]) == [f"text {i}" for i in range(4)]  # first write kept
    assert set(rows["verdict_refusal"]) == {"refused"}
    # the schema itself refuses a duplicate, whatever the code path: the same id again, or another id
    with duckdb.connect(str(store.path)) as con:
        for duplicate in (records[0].completion_id, "x"):
            with pytest.raises(duckdb.ConstraintException):
                con.execute("INSERT INTO completions (completion_id, run_id, probe_id, target_id) VALUES (?, 'r1', ?, 'm')",
                            [duplicate, probes[0].probe_id])


def test_pending_probes_shrink_as_completions_land(store):
    store, probes = store
    assert [p.probe_id for p in store.pending_probes("r1", "m")] == [p.probe_id for p in probes]
    store.save_results([CompletionRecord("r1", probes[1].probe_id, "m", "t")], [])
    assert [p.probe_id for p in store.pending_probes("r1", "m")] == [probes[0].probe_id, *[p.probe_id for p in probes[2:]]]


def test_human_verdict_overrides_judge(store):
    store, probes = store
    record = CompletionRecord("r1", probes[0].probe_id, "m", "t")
    store.save_results([record], [VerdictRecord(record.completion_id, "refusal", "complied"),
                                  VerdictRecord(record.completion_id, "human", "refused")])
    frame = store.judged("refusal", {"run_id": "r1"})
    assert frame.loc[0, "label"] == "refused" and frame.loc[0, "judged_by"] == "human"


def test_read_only_store_cannot_write(store):
    store, probes = store
    readonly = Store(store.path, readonly=True)
    with pytest.raises(StoreError, match="is open read-only .* nothing was written"):
        readonly.save_results([CompletionRecord("r1", probes[0].probe_id, "m", "t")], [])
    assert store.run_counts("r1")["completions"] == 0
    with pytest.raises(StoreError, match="no such database"):
        Store(store.path.with_name("absent.duckdb"), readonly=True)


def test_unknown_filter_is_a_clear_error(store):
    store, _ = store
    with pytest.raises(StoreError, match="unknown filter 'colour'"):
        store.judged("refusal", {"colour": ["red"]})


def test_second_process_gets_a_clear_message_when_the_file_is_locked(db_path):
    Store(db_path)
    holder = subprocess.Popen([PYTHON, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(db_path)!r})
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked) as caught:
            Store(db_path, lock_timeout=0.3)
        message = str(caught.value)
        assert str(db_path) in message and "in use by another process" in message and "Nothing was written" in message
    finally:
        holder.kill()
        holder.wait()
    assert Store(db_path, lock_timeout=5).schema_version() == SCHEMA_VERSION


def test_dump_and_restore_round_trip(store, tmp_path):
    store, probes = store
    records = [CompletionRecord("r1", p.probe_id, "m", f"t{i}", 3, 4, 0.5) for i, p in enumerate(probes)]
    store.save_results(records, [VerdictRecord(r.completion_id, "refusal", "refused", "why") for r in records])
    dump = tmp_path / "dump.jsonl.gz"
    counts = store.dump(dump)
    assert counts["completions"] == 4 and counts["verdicts"] == 4
    copy = Store(tmp_path / "copy.duckdb")
    assert copy.restore(dump)["completions"] == 4
    assert copy.restore(dump)["completions"] == 0  # idempotent
    left = store.completion_rows().drop(columns=["created_at"])
    right = copy.completion_rows().drop(columns=["created_at"])
    assert left.equals(right)


def test_a_version_1_database_is_migrated_in_place_without_losing_rows(db_path):
    from core.store import _MIGRATIONS

    probe = build_bundled(per_cell=1, controls_per_group=1)[0]
    with duckdb.connect(str(db_path)) as con:  # a database written by the first release (schema 1)
        con.execute(_MIGRATIONS[0])
        con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        con.execute("INSERT INTO probes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [probe.probe_id, probe.language, probe.group, probe.seed_text, probe.scenario_category,
                     probe.scenario, probe.strategy, probe.prompt, probe.kind, probe.source])
        old_id = completion_id_for("old-run", probe.probe_id, "m")
        con.execute("INSERT INTO completions (completion_id, run_id, probe_id, target_id, text) VALUES "
                    "(?, 'old-run', ?, 'm', 'an old answer')", [old_id, probe.probe_id])
        con.execute("INSERT INTO verdicts (completion_id, judge, label) VALUES (?, 'refusal', 'refused')", [old_id])
    with pytest.raises(StoreError, match="without read-only to migrate"):
        Store(db_path, readonly=True).summary()
    store = Store(db_path)
    assert store.schema_version() == SCHEMA_VERSION == 8
    rows = store.completion_rows()
    assert list(rows["completion"]) == ["an old answer"] and list(rows["retries"]) == [0]
    # Version 3's integer keys and kept counts are filled from the old rows.
    assert list(store.judged("refusal")["label"]) == ["refused"]
    counts = store.label_counts("refusal", ["model", "group"])
    assert counts[["model", "refused", "complied"]].values.tolist() == [["m", 1, 0]]
    record = CompletionRecord("new-run", probe.probe_id, "m", "a new answer", retries=2)
    assert store.save_results([record], []) == 1
    # one answer per (target, probe) in a view: each run read on its own
    assert [list(store.completion_rows({"run_id": [run]})["retries"]) for run in ("old-run", "new-run")] == [[0], [2]]


def test_ctrl_c_during_a_store_call_is_a_keyboard_interrupt_and_leaves_the_file_free(db_path):
    """DuckDB reports a Ctrl-C that lands inside a query as RuntimeError("Query interrupted"); the store raises
    it as KeyboardInterrupt (so a run stops rather than fails), and the file is detached all the same."""
    import os
    import signal
    import threading
    import time

    store = Store(db_path)
    probes = build_bundled(per_cell=1, controls_per_group=1)[:20]
    store.add_probes(probes)
    store.save_results([CompletionRecord("r", p.probe_id, "m", "t") for p in probes], [])
    seen = set()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for trial in range(40):  # the Ctrl-C lands at many moments: in queries, in attaching, in between
            try:
                threading.Timer(0.0007 * trial, os.kill, (os.getpid(), signal.SIGINT)).start()
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:  # store calls until the Ctrl-C lands in one
                    store.label_counts("refusal", ["model", "group"])
                    store.completion_page("refusal", {"model": "m"}, limit=5)
            except KeyboardInterrupt:
                seen.add("KeyboardInterrupt")
            except BaseException as exc:  # noqa: BLE001 - anything else is the failure this test looks for
                seen.add(f"{type(exc).__name__}: {exc}")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == {"KeyboardInterrupt"}
    assert store.label_counts("refusal", ["model"])["model"].tolist() == ["m"]  # still usable here
    out = subprocess.run([PYTHON, "-c", textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect({str(db_path)!r})  # another process can write: no lock left behind
        print(con.execute("SELECT count(*) FROM completions").fetchall()[0][0])""")],
        capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "20", out.stderr
