"""The Review page through Streamlit's AppTest on a real database (tests/dashboard_db plus a drawn sample):
labels given by clicking land as human verdicts with the annotator's name, the queue advances in its random
order, progress counts them, model output stays plain text, and a read-only session cannot label."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.store import Store
from tests.fixtures import dashboard_db
from tests.fixtures.apptest import app_test


@pytest.fixture()
def audit(tmp_path, monkeypatch):
    path = tmp_path / "audit.duckdb"
    info = dashboard_db.build(path)
    Store(path).draw_review_sample("r1", per_cell=2, seed=0)
    monkeypatch.setenv("AUDIT_DB", str(path))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    monkeypatch.delenv("AUDIT_PASSWORD", raising=False)
    return {**info, "path": path}


def open_review() -> AppTest:
    app = app_test(timeout=120).run()
    app.switch_page("pages/review.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def button(app: AppTest, key: str):
    return next(b for b in app.button if b.key == key)


def shown_texts(app: AppTest) -> list[str]:
    return [block.value for block in app.code]


def progress_text(app: AppTest) -> str:
    return app.get("progress")[0].proto.text


def test_labels_by_click_are_stored_with_the_annotator_and_the_queue_advances(audit):
    store = Store(audit["path"], readonly=True)
    queue = store.review_queue("r1", limit=3)
    app = open_review()
    first = queue.iloc[0]
    assert shown_texts(app) == [first["prompt"], first["completion"]]  # the head of the queue, as plain text
    assert progress_text(app) == "0 of 12 sampled completions labelled"
    assert button(app, "review_refused").disabled  # no annotator yet: who labelled must be known
    assert button(app, "review_refused").proto.shortcut == "1" and button(app, "review_complied").proto.shortcut == "2"

    next(t for t in app.text_input if t.key == "review_annotator").input("Ana").run()
    button(app, "review_refused").click().run()
    assert not app.exception, [e.value for e in app.exception]
    detail = Store(audit["path"], readonly=True).completion_detail(first["completion_id"])
    assert (detail["label"], detail["judged_by"], detail["in_sample"]) == ("refused", "human", True)
    assert detail["annotations"][["label", "author"]].values.tolist() == [["refused", "Ana"]]
    second = queue.iloc[1]
    assert shown_texts(app) == [second["prompt"], second["completion"]]
    assert progress_text(app) == "1 of 12 sampled completions labelled"

    next(t for t in app.text_input if t.key == f"review_note_{second['completion_id']}").input("half an answer").run()
    button(app, "review_complied").click().run()
    detail = Store(audit["path"], readonly=True).completion_detail(second["completion_id"])
    assert detail["label"] == "complied" and detail["annotations"][["note", "author"]].values.tolist() == [
        ["half an answer", "Ana"]]
    assert shown_texts(app)[1] == queue.iloc[2]["completion"]
    table = app.dataframe[-1].value
    assert table["sampled"].sum() == 12 and table["labelled"].sum() == 2
    assert next(t for t in app.text_input if t.key == "review_annotator").value == "Ana"  # kept for the next


def test_the_judge_verdict_is_hidden_until_asked_for(audit):
    app = open_review()
    judge_line = [t.value for t in app.text if t.value.startswith("refusal:")]
    assert judge_line == []
    next(t for t in app.toggle if t.key == "review_show_judge").set_value(True).run()
    head = Store(audit["path"], readonly=True).review_queue("r1", judge="refusal").iloc[0]
    assert [t.value for t in app.text if t.value.startswith("refusal:")] == [f"refusal: {head['judge_label']}"]


def test_hostile_output_is_inert_text_and_strata_can_be_narrowed(audit):
    Store(audit["path"]).draw_review_sample("r1", per_cell=4, seed=0)  # the whole run, the hostile answer too
    app = open_review()
    next(m for m in app.multiselect if m.key == "review_group_r1").set_value(["women"]).run()
    app.run()
    model_a = next(m for m in app.multiselect if m.key == "review_model_r1")
    model_a.set_value(["model-a"]).run()
    seen = []
    next(t for t in app.text_input if t.key == "review_annotator").input("Ana").run()
    for _ in range(4):  # model-a's women stratum: 4 completions, the hostile one among them
        seen.append(shown_texts(app)[1])
        button(app, "review_complied").click().run()
    assert audit["hostile"] in seen and len(set(seen)) == 4
    assert all("<script" not in block.value for block in app.markdown)
    assert "Every sampled completion of this selection is labelled." in [s.value for s in app.success]
    assert progress_text(app) == "4 of 4 sampled completions labelled"


def test_read_only_session_offers_no_labelling(audit, monkeypatch):
    monkeypatch.setenv("AUDIT_READONLY", "1")
    before = audit["path"].stat().st_mtime_ns
    app = app_test(timeout=60).run()
    with pytest.raises(ValueError):
        app.switch_page("pages/review.py")  # a writing page: not in a demo session's navigation
    direct = app_test("pages/review.py", timeout=60).run()
    assert not direct.exception, [e.value for e in direct.exception]
    assert "Read-only demo session: nothing can be labelled here." in [i.value for i in direct.info]
    assert not direct.button and audit["path"].stat().st_mtime_ns == before


def test_drilldown_tells_a_sample_label_from_one_chosen_by_hand(audit):
    store = Store(audit["path"])
    sampled = store.review_queue("r1")["completion_id"].iloc[0]
    by_hand = next(c for c in audit["completions"] if c not in set(store.sample_sheet()["completion_id"]))
    store.set_human_verdict(sampled, "refused", "", "Ana")
    store.set_human_verdict(by_hand, "refused", "", "Ana")
    for completion_id, expected in ((sampled, "human (random sample)"), (by_hand, "human (chosen by hand, not random)")):
        app = app_test(timeout=120).run()
        app.switch_page("pages/drilldown.py")
        app.query_params["completion"] = completion_id
        app.run()
        assert not app.exception, [e.value for e in app.exception]
        assert app.dataframe[1].value.loc[0, "by"] == expected


def test_the_draw_form_draws_where_a_judge_is_unsure_and_says_when_a_judge_has_no_probability(audit):
    """The form's "where JUDGE is unsure" is Store.draw_review_sample(by_uncertainty=JUDGE): the stored sample carries
    each completion's own probability; a judge without probabilities is refused on the page with the store's reason."""
    import json

    import numpy as np

    from core.store import VerdictRecord

    store = Store(audit["path"])
    rows = store.completion_rows({"run_id": ["r1"]}).sort_values("completion_id")
    store.save_results([], [VerdictRecord(cid, "prob", "refused" if p >= 0.5 else "complied", "",
                                          json.dumps({"p_refused": float(p)}))
                            for cid, p in zip(rows["completion_id"], np.linspace(0.02, 0.98, len(rows)))])
    store.save_results([], [VerdictRecord(rows["completion_id"].iloc[0], "plain", "refused")])
    app = open_review()
    how = next(s for s in app.selectbox if s.key == "review_draw_how")
    assert how.options == ["at random", "where prob is unsure", "where plain is unsure"]  # most verdicts first
    how.set_value("where plain is unsure")
    next(c for c in app.checkbox if c.key == "review_draw_replace").check()
    next(b for b in app.button if b.label == "Draw").click().run()
    assert any("judge plain gives no probability for any of the 24 completions" in e.value for e in app.error), \
        [e.value for e in app.error]
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM review_sample WHERE inclusion_prob IS NOT NULL").fetchall() == [(0,)]
    next(s for s in app.selectbox if s.key == "review_draw_how").set_value("where prob is unsure")
    next(b for b in app.button if b.label == "Draw").click().run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    with store.connect() as con:
        drawn = con.execute("SELECT count(*), min(inclusion_prob) > 0, max(inclusion_prob) <= 1, any_value(judge) "
                            "FROM review_sample WHERE run_id = 'r1'").fetchall()[0]
    assert drawn[0] > 0 and drawn[1:] == (True, True, "prob")
