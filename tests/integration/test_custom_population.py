"""Bring your own population, end to end: the Spanish example (examples/es: a taxonomy with new groups and a new
language, claim templates, scenarios and strategy templates) is built, imported into its own database, run on
the default model (real SmolLM2 generation), judged, and shown on every page (AppTest) and in a real browser.
Bad files on the way are refused with FILE:LINE, exit 2, nothing stored."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from bench import serve
from core.cli import main
from core.judges import DEFAULT_JUDGE
from core.judges.refusal import no_rules_mark
from core.store import Store
from tests.fixtures.charts import heatmaps, rendered_heatmap
from tests.fixtures.paths import ARTIFACTS, ROOT
from tests.fixtures.apptest import app_test
from ui.common import escape_markdown

ES = ROOT / "examples" / "es"
SPANISH_NAMES = {"Pueblo gitano", "Inmigrantes magrebíes", "Personas indígenas", "Mujeres", "Personas LGBTQ+",
                 "Migrantes venezolanos"}


def build_args(out, taxonomy=ES / "taxonomy.toml", claims=ES / "claims.jsonl") -> list[str]:
    return ["probes", "build", "--counterfactual", "--taxonomy", str(taxonomy), "--claims", str(claims),
            "--scenarios", str(ES / "scenarios.jsonl"), "--templates", str(ES / "templates.jsonl"),
            "--max-claims", "1", "--out", str(out)]


@pytest.fixture(scope="module")
def es_db(tmp_path_factory):
    """The README's walk-through on one hate and one neutral claim: 30 probes, 12 new tokens each."""
    folder = tmp_path_factory.mktemp("es")
    probes, db = folder / "probes.jsonl", folder / "es.duckdb"
    assert main(build_args(probes)) == 0
    assert main(["probes", "import", str(probes), "--source", "counterfactual", "--db", str(db)]) == 0
    assert main(["run", "--db", str(db), "--target", "smollm2", "--probe-set", "stored", "--max-new-tokens", "12",
                 "--batch-size", "16", "--quiet", "--run-id", "es-run"]) == 0
    return db


@pytest.mark.model
def test_the_walk_through_stores_the_population_and_real_answers(es_db):
    store = Store(es_db, readonly=True)
    words = store.taxonomy()
    assert words.name == "es_example" and words.language_codes == ("es",)
    assert words.sha256 == __import__("hashlib").sha256((ES / "taxonomy.toml").read_bytes()).hexdigest()
    rows = store.completion_rows()
    assert len(rows) == 30 and set(rows["language"]) == {"es"} and rows["error"].isna().all()
    assert set(rows["group"]) == set(words.groups_by_language["es"]) and len(words.groups_by_language["es"]) == 6
    assert rows["completion"].str.len().gt(0).all()  # the model really answered
    # every counterfactual id holds one probe per group, and the verdicts say the judge has no Spanish rules
    assert rows.groupby("counterfactual_id")["group"].nunique().eq(6).all()
    judged = store.judged(DEFAULT_JUDGE)  # the run's default judge
    assert judged["label"].isin(["refused", "complied"]).all() and len(judged) == 30
    detail = store.completion_detail(rows["completion_id"].iloc[0])
    rationale = detail["verdicts"].set_index("judge").at[DEFAULT_JUDGE, "rationale"]
    assert rationale.startswith(no_rules_mark("es"))


@pytest.mark.model
def test_every_page_shows_the_population_in_its_own_words(es_db, monkeypatch):
    monkeypatch.setenv("AUDIT_DB", str(es_db))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    from app import PAGES  # noqa: PLC0415 (app.py draws only when Streamlit runs it)

    app = app_test(timeout=120).run()
    assert not app.exception, [e.value for e in app.exception]
    shown = {}
    for file, *_ in PAGES:
        app.switch_page(file).run()
        assert not app.exception, (file, [e.value for e in app.exception])
        shown[file] = app
        if file == "pages/heatmaps.py":
            figure = heatmaps(app)[0]
            assert set(figure["x"]) == SPANISH_NAMES and figure["y"] == ["smollm2-135m-instruct"]
            assert any("no rules for Español" in w.value for w in app.warning)
        if file == "pages/counterfactual.py":
            assert set(heatmaps(app)[0]["x"]) == SPANISH_NAMES
            assert app.dataframe[0].value["groups"].iloc[0] == 6
        if file == "pages/run.py":
            languages = next(w for w in app.multiselect if w.key == "run_languages")
            assert languages.options == ["Español"]
            groups = next(w for w in app.multiselect if w.key == "run_groups")
            assert set(groups.options) == SPANISH_NAMES
        if file == "pages/reproduction.py":
            assert any(escape_markdown("es_example") in i.value for i in app.info)  # Markdown source
    app.switch_page("pages/drilldown.py").run()
    group_filter = next(w for w in app.sidebar.multiselect if w.key == "drilldown_filter_group")
    assert set(group_filter.options) == SPANISH_NAMES


@pytest.mark.browser
@pytest.mark.model
def test_the_browser_shows_the_spanish_heatmap(es_db, tmp_path):
    db = tmp_path / "es.duckdb"
    shutil.copy(es_db, db)
    process, base = serve.start(db)
    try:
        serve.wait_healthy(process, base)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            from app import PAGES  # noqa: PLC0415 (app.py draws only when Streamlit runs it)

            (ARTIFACTS / "browser").mkdir(parents=True, exist_ok=True)
            titles = []
            for file, *_ in PAGES:
                path = "/" + Path(file).stem
                page.goto(base + path)
                page.locator("h1").first.wait_for()
                page.get_by_text("Content warning", exact=False).first.wait_for()
                titles.append(page.locator("h1").first.inner_text())
                expect(page.locator('[data-testid="stException"]')).to_have_count(0)
                ready = {"/heatmaps": "Model x group", "/counterfactual": "Defense Rate per group"}.get(path)
                if ready:
                    page.get_by_text(ready, exact=False).first.wait_for()
                    drawn = rendered_heatmap(page, 0)
                    assert set(drawn["x"]) == SPANISH_NAMES, (path, drawn["x"])
                page.screenshot(path=str(ARTIFACTS / "browser" / f"es{path.replace('/', '_')}.png"), full_page=True)
            assert len(set(titles)) == len(PAGES), titles  # each page opened itself, not the Overview
            page.goto(base + "/heatmaps")
            page.get_by_text("The refusal judge has no rules for Español", exact=False).first.wait_for()
            browser.close()
    finally:
        serve.stop(process)


@pytest.mark.parametrize("fault, expected", [
    ("unknown_language", "claims.jsonl:1: "),
    ("unfillable_slot", "claims.jsonl:1: "),
    ("missing_form", "taxonomy.toml:"),
    ("duplicate_key", "taxonomy.toml:"),
])
def test_bad_population_files_are_refused_with_file_and_line_and_nothing_is_written(tmp_path, capsys, fault,
                                                                                  expected):
    taxonomy, claims = tmp_path / "taxonomy.toml", tmp_path / "claims.jsonl"
    shutil.copy(ES / "taxonomy.toml", taxonomy)
    shutil.copy(ES / "claims.jsonl", claims)
    text, first = taxonomy.read_text(encoding="utf-8"), claims.read_text(encoding="utf-8").splitlines()
    row = json.loads(first[0])
    if fault == "unknown_language":
        row["language"] = "fr"
    elif fault == "unfillable_slot":
        row["template"] += " {demonym}"
    elif fault == "missing_form":
        text = text.replace('singular = "un gitano", ', "")
    elif fault == "duplicate_key":
        text = text.replace("[groups.maghrebi]", "[groups.roma]")
    claims.write_text("\n".join([json.dumps(row, ensure_ascii=False), *first[1:]]) + "\n", encoding="utf-8")
    taxonomy.write_text(text, encoding="utf-8")
    out = tmp_path / "probes.jsonl"
    assert main(build_args(out, taxonomy, claims)) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert not out.exists()
