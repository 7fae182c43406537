"""Exports for analysts and alignment engineers: Parquet, balanced preference pairs, the HTML audit report."""
from __future__ import annotations

import json
import re
import subprocess

import pandas as pd
import pytest

from core.files.export import PAIR_FIELDS, preference_pairs
from core.probes.builder import build_bundled
from core.report.html import probe_set_hash
from core.store import CompletionRecord, Store, VerdictRecord
from tests.fixtures.cli import run_cli

EVIL = "<script>alert(1)</script>"


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_cli(*args, env=env, timeout=300)


@pytest.fixture()
def audit(db_path):
    """Three models over 6 black, 4 women and 3 muslim attack probes (+2 controls), labels chosen per cell:

    black: every probe has a refusal (model a) and a jailbreak (model b) -> 6 pairs possible;
    women: 4 probes, only the first two have both -> 2 pairs; muslim: everyone refuses -> no pair.
    Model names include an HTML script tag, which every export must keep inert.
    """
    store = Store(db_path)
    english = [p for p in build_bundled() if p.language == "en"]
    attack = {g: [p for p in english if p.kind == "attack" and p.group == g] for g in ("black", "women", "muslim")}
    probes = attack["black"][:6] + attack["women"][:4] + attack["muslim"][:3]
    controls = [p for p in english if p.kind == "control" and p.group == "black"][:2]
    store.add_probes(probes + controls)
    store.create_run("r", {}, [p.probe_id for p in probes + controls])
    models = ["a", f"b{EVIL}", "c"]
    labels: dict[tuple[str, str], str] = {}
    for i, p in enumerate(attack["black"][:6]):
        labels |= {(p.probe_id, "a"): "refused", (p.probe_id, models[1]): "complied", (p.probe_id, "c"): "complied"}
    for i, p in enumerate(attack["women"][:4]):
        both = i < 2
        labels |= {(p.probe_id, "a"): "refused" if both else "complied", (p.probe_id, models[1]): "complied",
                   (p.probe_id, "c"): "complied"}
    for p in attack["muslim"][:3]:
        labels |= {(p.probe_id, m): "refused" for m in models}
    for p in controls:
        labels |= {(p.probe_id, m): "refused" if m == "a" else "complied" for m in models}
    records = [CompletionRecord("r", pid, model, f"{label} answer of {model} to {pid}") for (pid, model), label in labels.items()]
    verdicts = [VerdictRecord(r.completion_id, "refusal", labels[(r.probe_id, r.target_id)]) for r in records]
    store.save_results(records, verdicts)
    store.save_target(models[1], "local", models[1], family="fam", size_b=1.0)
    return store, labels, models


def test_preference_pairs_are_a_refusal_and_a_jailbreak_of_one_probe_balanced_per_group(audit):
    store, labels, models = audit
    frame = store.judged("refusal", with_text=True)
    pairs, summary = preference_pairs(frame, seed=1)
    assert summary["available"] == {"en/black": 6, "en/women": 2}
    assert summary["groups_without_pairs"] == ["en/muslim"]
    assert summary["per_group"] == 2 and summary["groups"] == {"en/black": 2, "en/women": 2}
    assert len(pairs) == 4 and pairs["probe_id"].is_unique
    prompts = frame.drop_duplicates("probe_id").set_index("probe_id")["prompt"]
    for pair in pairs.itertuples():
        assert labels[(pair.probe_id, pair.chosen_model)] == "refused"
        assert labels[(pair.probe_id, pair.rejected_model)] == "complied"
        assert pair.chosen == f"refused answer of {pair.chosen_model} to {pair.probe_id}"
        assert pair.rejected == f"complied answer of {pair.rejected_model} to {pair.probe_id}"
        assert pair.prompt == prompts[pair.probe_id]
    again, _ = preference_pairs(frame, seed=1)
    pd.testing.assert_frame_equal(pairs, again)
    capped, capped_summary = preference_pairs(frame, per_group=1, seed=1)
    assert capped_summary["groups"] == {"en/black": 1, "en/women": 1}


def test_pairs_balance_strategies_within_a_group():
    rows = []
    for s, strategy in enumerate(["chaining", "persona_assign"]):
        for i in range(10 if s == 0 else 3):
            pid = f"{strategy}{i}"
            for model, label in (("a", "refused"), ("b", "complied")):
                rows.append({"completion_id": f"{pid}{model}", "probe_id": pid, "model": model, "kind": "attack",
                             "error": None, "label": label, "completion": f"{label} text", "prompt": f"p {pid}",
                             "language": "en", "group": "black" if i % 2 == 0 or s else "women", "strategy": strategy,
                             "scenario_category": "History"})
    pairs, summary = preference_pairs(pd.DataFrame(rows), seed=0)
    black = pairs.loc[pairs["group"] == "black", "strategy"].value_counts().to_dict()
    assert summary["per_group"] == 5  # women has 5 chaining probes, black 5 chaining + 3 persona
    assert black == {"chaining": 3, "persona_assign": 2}  # 5 of 8 taken, strategies taking turns (not 5 chaining)


def test_cli_exports_parquet_pairs_and_report(audit, db_path, cli_env, tmp_path):
    store, labels, models = audit
    parquet = tmp_path / "out.parquet"
    done = cli(["export", "--format", "parquet", "--out", str(parquet), "--db", str(db_path), "--json"], cli_env)
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(parquet)
    assert len(table) == len(labels) == json.loads(done.stdout)["rows"]
    assert set(table["verdict_refusal"]) == {"refused", "complied"}
    assert models[1] in set(table["model"])  # data, stored as it is; Parquet has no formula or markup to escape

    pairs_path = tmp_path / "pairs.jsonl"
    done = cli(["export", "--format", "pairs", "--out", str(pairs_path), "--db", str(db_path), "--json"], cli_env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["groups_without_pairs"] == ["en/muslim"]
    records = [json.loads(line) for line in pairs_path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 4 and all(list(r) == list(PAIR_FIELDS) for r in records)
    assert {r["judge"] for r in records} == {"refusal"}
    assert sorted(r["group"] for r in records) == ["black", "black", "women", "women"]


def test_html_report_is_static_escaped_and_says_what_the_metrics_say(audit, db_path, cli_env, tmp_path):
    store, labels, models = audit
    report = tmp_path / "report.html"
    done = cli(["export", "--format", "report", "--out", str(report), "--db", str(db_path), "--json"], cli_env)
    assert done.returncode == 0, done.stderr
    page = report.read_text(encoding="utf-8")
    assert EVIL not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"<script|<link|src=|@import", page, flags=re.IGNORECASE)  # self-contained, no code
    assert "Content warning" in page
    frame = store.judged("refusal")
    assert probe_set_hash(frame["probe_id"]) in page
    assert json.loads(done.stdout)["probe_set_sha256"] == probe_set_hash(frame["probe_id"])
    # model a refuses black 6/6, women 2/4, muslim 3/3: DR 11/13 = 0.85; gap black - women = 0.5
    assert "<td>0.85</td>" in page and "0.50" in page
    assert "Over-refusal" in page and "Provenance" in page and "refusal" in page
    assert "No calibration available" in page


def test_report_shows_the_judge_against_human_verdicts(audit, tmp_path):
    from core.report.html import write_report

    store, labels, models = audit
    rows = store.completion_rows()
    # A person agrees with the judge on three completions and overrules it on a fourth.
    picked = rows.sort_values("completion_id").head(4)
    for index, row in enumerate(picked.itertuples()):
        agree = index < 3
        label = row.verdict_refusal if agree else ("complied" if row.verdict_refusal == "refused" else "refused")
        store.set_human_verdict(row.completion_id, label, note="checked", author="tester")
    write_report(store, tmp_path / "r.html", judge="refusal")
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "against the human verdicts" in page and "No calibration available" not in page
    table = page[page.index("against the human verdicts"):]
    assert "<td class='t'>refusal</td><td>4</td><td>0.75</td>" in table


# -- analyst CSV: byte order mark, the verdict that counts, readable headers (issue 29) --------------------------
BOM = b"\xef\xbb\xbf"


def _csv(path) -> tuple[bytes, list[dict]]:
    import csv
    import io

    raw = path.read_bytes()
    return raw, list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_cli_csv_has_the_byte_order_mark_only_with_bom_and_keeps_accents(db_path, cli_env, tmp_path):
    store = Store(db_path)
    portuguese = [p for p in build_bundled() if p.language == "pt" and p.group == "disability"][:2]
    store.add_probes(portuguese)
    store.create_run("pt", {}, [p.probe_id for p in portuguese])
    records = [CompletionRecord("pt", p.probe_id, "m", "Não posso ajudar com isso: deficiência.") for p in portuguese]
    store.save_results(records, [VerdictRecord(r.completion_id, "refusal", "refused") for r in records])
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    assert cli(["export", "--out", str(plain), "--db", str(db_path), "--quiet"], cli_env).returncode == 0
    done = cli(["export", "--out", str(marked), "--db", str(db_path), "--bom", "--quiet"], cli_env)
    assert done.returncode == 0, done.stderr
    raw, rows = _csv(marked)
    assert raw.startswith(BOM) and not plain.read_bytes().startswith(BOM)
    assert raw[len(BOM):] == plain.read_bytes()  # the mark is the only difference
    assert {r["completion"] for r in rows} == {"Não posso ajudar com isso: deficiência."}
    assert list(rows[0])[0] == "completion_id"  # a reader that knows the mark sees the first header intact
    wrong = cli(["export", "--format", "parquet", "--out", str(tmp_path / "x.parquet"), "--db", str(db_path), "--bom"],
                cli_env)
    assert wrong.returncode == 2 and "--bom is for csv" in wrong.stderr


def test_effective_verdict_is_the_persons_where_one_set_it_and_the_judges_elsewhere(audit, db_path, cli_env, tmp_path):
    store, labels, models = audit
    rows = store.completion_rows().sort_values("completion_id")
    overruled, agreed, anonymous = rows["completion_id"].iloc[:3]
    flip = {"refused": "complied", "complied": "refused"}
    store.set_human_verdict(overruled, flip[rows["verdict_refusal"].iloc[0]], note="no", author="Ana Souza")
    store.set_human_verdict(agreed, rows["verdict_refusal"].iloc[1], note="yes", author="=HYPERLINK(\"x\")")
    store.set_human_verdict(anonymous, flip[rows["verdict_refusal"].iloc[2]])
    out = tmp_path / "out.csv"
    done = cli(["export", "--out", str(out), "--db", str(db_path), "--quiet"], cli_env)
    assert done.returncode == 0, done.stderr
    _, exported = _csv(out)
    assert len(exported) == len(rows)
    for row in exported:
        if row["verdict_human"]:
            assert row["effective_verdict"] == row["verdict_human"]
        else:
            assert row["effective_verdict"] == row["verdict_refusal"] and row["decided_by"] == "refusal"
    by_id = {r["completion_id"]: r for r in exported}
    assert by_id[overruled]["decided_by"] == "human: Ana Souza"
    assert by_id[overruled]["effective_verdict"] != by_id[overruled]["verdict_refusal"]
    assert by_id[agreed]["decided_by"] == "human: =HYPERLINK(\"x\")"  # starts with "human", never a formula
    assert by_id[anonymous]["decided_by"] == "human"
    # the effective verdicts are the ones every view counts
    judged = store.judged("refusal").set_index("completion_id")["label"]
    assert {r["completion_id"]: r["effective_verdict"] for r in exported} == judged.to_dict()


def test_readable_headers_and_formula_escaping_together(tmp_path):
    from core.files.export import csv_bytes, readable_headers, with_effective_verdict, write_csv

    frame = pd.DataFrame({"completion_id": ["c1", "c2"], "group": ["mental_disability", "women"],
                          "strategy": ["chaining", "chaining"], "completion": ["=1+1", "-2"],
                          "verdict_refusal": ["refused", None], "verdict_human": [None, "complied"]})
    shown = readable_headers(with_effective_verdict(frame, "refusal"))
    assert list(shown.columns) == ["Completion ID", "Group", "Jailbreak strategy", "Response", "Verdict by refusal",
                                   "Verdict by a person", "Verdict that counts", "Decided by"]
    raw = csv_bytes(shown)
    assert raw.startswith(BOM)
    text = raw.decode("utf-8-sig")
    assert "'=1+1" in text and "'-2" in text and "Verdict that counts" in text
    assert text.splitlines()[1].endswith("refused,refusal") and text.splitlines()[2].endswith("complied,human")
    path = tmp_path / "chunked.csv"
    write_csv(shown, path, on_progress=lambda *_: None, bom=True)
    assert path.read_bytes() == raw  # the chunked writer writes the same file


def test_cli_readable_headers_for_csv_and_parquet(audit, db_path, cli_env, tmp_path):
    out = tmp_path / "readable.csv"
    done = cli(["export", "--out", str(out), "--db", str(db_path), "--readable-headers", "--quiet"], cli_env)
    assert done.returncode == 0, done.stderr
    _, rows = _csv(out)
    assert {"Completion ID", "Jailbreak strategy", "Verdict by refusal", "Verdict that counts", "Decided by"} <= set(rows[0])
    assert not any("_" in column for column in rows[0])
    parquet = tmp_path / "readable.parquet"
    done = cli(["export", "--format", "parquet", "--out", str(parquet), "--db", str(db_path), "--readable-headers"],
               cli_env)
    assert done.returncode == 0, done.stderr
    assert "Verdict that counts" in pd.read_parquet(parquet).columns


def test_the_app_download_starts_with_the_byte_order_mark_by_default(audit_page, monkeypatch):
    """The Export page's download: built on click (a callable), with the byte order mark unless unticked, without
    rerunning the page on click (so the file Streamlit registered for the button stays valid until fetched)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    from tests.fixtures.apptest import open_page

    built = []
    register = MediaFileManager.add_deferred

    def keep(self, data_callable, *args, **kwargs):
        built.append(data_callable)
        return register(self, data_callable, *args, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", keep)
    app = open_page("pages/export.py", group="women")
    button = app.get("download_button")[0]
    assert button.proto.deferred_file_id and button.proto.ignore_rerun
    assert {c.key: c.value for c in app.checkbox} == {"export_bom": True, "export_readable": False}
    raw = built[-1]()
    assert raw.startswith(BOM)
    rows = raw.decode("utf-8-sig").splitlines()
    assert rows[0].startswith("completion_id,") and rows[0].endswith("effective_verdict,decided_by")
    assert len(rows) == 1 + 8

    next(c for c in app.checkbox if c.key == "export_bom").uncheck()
    next(c for c in app.checkbox if c.key == "export_readable").check()
    app.run()
    raw = built[-1]()
    assert not raw.startswith(BOM) and raw.decode("utf-8").startswith("Completion ID,")


@pytest.fixture()
def audit_page(tmp_path, monkeypatch):
    from tests.fixtures import dashboard_db

    path = tmp_path / "pages.duckdb"
    dashboard_db.build(path)
    monkeypatch.setenv("AUDIT_DB", str(path))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    return path
