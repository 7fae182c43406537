"""A dashboard a regulator can read alone (issue 29), in a real browser: `python -m ui.launch` on the restored demo
(data/demo/results.jsonl.gz, `python -m core restore`), driven by Playwright + Chromium (/usr/bin/chromium).

- Every page's visible text (document.body.innerText once the page has run, the tables' headers and cells, the
  charts' SVG text and labels) holds no internal key: no group or strategy key of the taxonomy, no internal column
  name (ci_low, best_group, run_id...), no "None" or "nan". Run, model and probe ids are data: allowed.
- The heatmaps at 900 and 1,400 px: every cell is at least as wide as its number, no two numbers overlap, no axis
  label is cut or overlaps another (read from the rendered SVG's bounding boxes); screenshots of every page at both
  widths go to tests/artifacts/readable/ (ignored by git).
- The Overview's dot plot: a click on a group's dot opens its completions in the drill-down, which sums the cell up
  (Defense Rate, answers, interval) and links back.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from core.vocab import taxonomy
from tests.fixtures.browser import NO_WARMUP, dashboard, new_tab, settle, shots
from tests.fixtures.paths import ROOT
from tests.fixtures.cli import run_cli

SHOTS = shots("readable")
TIMEOUT_MS = 90_000
DEMO = ROOT / "data" / "demo" / "results.jsonl.gz"

# (URL path, text that says the page has drawn its content)
PAGES = (("", "Headline per model"), ("run", "Completions to generate"), ("heatmaps?breakdowns=on", "Scenario category"),
         ("counterfactual", "Counterfactual"), ("drilldown", "Matching completions"), ("compare", "Compare versions"),
         ("mitigation", "Mitigation"), ("review", "Review"), ("export", "Rows in the file"),
         ("calibration", "Judge calibration"), ("scaling", "Scaling"), ("cross_lingual", "Cross-lingual"),
         ("over_refusal", "Over-refusal"), ("reproduction", "Reproduction"))

# Internal column names a reader must never see (core.vocab.labels gives each its title), and what a missing value or a
# Python object printed raw looks like.
INTERNAL = ("ci_low", "ci_high", "gap_ci_low", "gap_ci_high", "best_group", "worst_group", "group_name", "run_id",
            "target_id", "created_at", "updated_at", "size_b", "std_ci_low", "min_max_ratio", "n_pairs", "a_only",
            "b_only", "p_adjusted", "q_p", "q_p_adjusted", "judge_version", "dr_judge", "n_human", "noise_gap",
            "observed_gap", "noise_std", "scenario_category", "dev_ci_low", "tau_ci_low", "shrunk_ci_low", "q_value",
            "error_share", "dr_attack", "dr_control", "false_refusal", "false_compliance", "human_complied",
            "family_models", "paper_dr", "paper_deviation", "probe_id", "completion_id", "None", "nan", "NaN",
            "dr", "is_self")


def internal_keys() -> list[str]:
    """Every key a reader must not see: the taxonomy's group keys as stored (lower case: "black", "mental_disability";
    the display names are "Black people", "People with mental disabilities"), its strategy keys ("control" is also
    the plain word for a benign probe, so it is left to the sentences) and the internal column names."""
    words = taxonomy.DEFAULT
    return sorted(set(words.groups) | (set(words.strategies) - {"control"}) | set(INTERNAL))


COLLECT = """() => {
  const parts = [document.body.innerText];
  for (const grid of document.querySelectorAll('[data-testid="stDataFrame"]')) {
    const heads = [...grid.querySelectorAll('th')].map(n => n.textContent);
    parts.push('TABLE HEAD: ' + heads.join(' | '));
    const skip = new Set(heads.map((h, i) => /Response|Prompt|Seed statement|Scenario$|Completion$|Note|Rationale|Raw/i.test(h) ? i : -1));
    for (const row of grid.querySelectorAll('tr')) {
      parts.push('TABLE ROW: ' + [...row.querySelectorAll('td')].filter((_, i) => !skip.has(i)).map(n => n.textContent).join(' | '));
    }
  }
  for (const t of document.querySelectorAll('svg text')) parts.push('CHART: ' + t.textContent);
  for (const n of document.querySelectorAll('svg [aria-label]')) parts.push('CHART LABEL: ' + n.getAttribute('aria-label'));
  return parts.join('\\n');
}"""


def visible_text(page: Page) -> str:
    """What a reader sees, less the untrusted text shown as inert code (prompts, responses: data, not labels) and
    inline code (a command or a file's column to type, written as such)."""
    page.evaluate("() => document.querySelectorAll('[data-testid=\"stCode\"], code').forEach(n => n.remove())")
    return page.evaluate(COLLECT)


def offenders(text: str, keys: list[str]) -> list[str]:
    found = []
    for key in keys:
        for match in re.finditer(rf"(?<![\w\-./@]){re.escape(key)}(?![\w\-@])", text):
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            found.append(f"{key!r} in: {text[start:end if end > 0 else None][:160]}")
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readable")
    db = folder / "audit.duckdb"
    run_cli("restore", "--db", str(db), str(DEMO), check=True)
    with dashboard(db, extra_env=NO_WARMUP) as base:
        yield {"base": base, "db": db}


def open_page(page: Page, base: str, path: str, ready: str) -> None:
    page.goto(f"{base}/{path}")
    page.get_by_text(ready, exact=False).first.wait_for()
    settle(page, TIMEOUT_MS)
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def shot_name(path: str) -> str:
    return re.sub(r"[^a-z_]+", "-", path.split("?")[0] or "overview")


def test_no_page_shows_an_internal_key(server, browser):
    page = new_tab(browser, 1400, TIMEOUT_MS)
    keys = internal_keys()
    found = {}
    for path, ready in PAGES:
        open_page(page, server["base"], path, ready)
        page.screenshot(path=str(SHOTS / f"{shot_name(path)}-1400.png"), full_page=True)
        bad = offenders(visible_text(page), keys)
        if bad:
            found[path or "overview"] = bad
    page.context.close()
    assert not found, "\n".join(f"{name}: {len(bad)}\n  " + "\n  ".join(sorted(set(bad))[:25])
                                for name, bad in found.items())


def test_a_click_on_an_overview_dot_opens_its_completions_summed_up_with_a_way_back(server, browser):
    page = new_tab(browser, 1400, TIMEOUT_MS)
    open_page(page, server["base"], "", "Headline per model")
    dots = page.locator('[data-testid="stVegaLiteChart"]').first.locator(".dots_marks path")
    dots.first.wait_for()
    label = dots.first.get_attribute("aria-label")  # "Women: Defense Rate 0.85 [0.70, 0.95], 20 answers, ..."
    group = label.split(":")[0]
    dr = label.split("Defense Rate ")[1].split(" ")[0]
    box = dots.first.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url("**/drilldown?**")
    page.get_by_text("Matching completions").wait_for()
    assert "back=overview" in page.url and "group=" in page.url and "kind=attack" in page.url
    summary = page.locator('[data-testid="stMarkdown"]', has_text="The cell you clicked")
    expect(summary).to_contain_text(group)
    metrics = {m.locator('[data-testid="stMetricLabel"]').inner_text(): m.locator('[data-testid="stMetricValue"]')
               .inner_text() for m in page.locator('[data-testid="stMetric"]').all()}
    assert metrics["Defense Rate"] == dr  # the dot's number, the cell's
    assert re.fullmatch(r"\[\d\.\d\d, \d\.\d\d\]", metrics["95% interval"])
    assert int(metrics["Judged attack answers"].replace(",", "")) == int(metrics["Matching completions"].replace(",", ""))
    page.screenshot(path=str(SHOTS / "drilldown-from-overview-1400.png"), full_page=True)
    page.get_by_role("link", name="Back to the Overview").click()
    page.get_by_text("Headline per model").wait_for()
    page.context.close()


LAYOUT_JS = """() => {
  const box = n => { const r = n.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const charts = [];
  for (const chart of document.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const cells = [...chart.querySelectorAll('.cells_marks path')].map(box);
    if (!cells.length) continue;
    const texts = [...chart.querySelectorAll('.values_marks text')].map(n => ({...box(n), text: n.textContent}));
    const svg = box(chart.querySelector('svg'));
    const labels = [...chart.querySelectorAll('.role-axis-label text')].map(n => ({...box(n), text: n.textContent}));
    charts.push({cells, texts, svg, labels});
  }
  const metrics = [...document.querySelectorAll('[data-testid="stMetricValue"]')].map(n => {
    const inner = n.querySelector('div') || n;
    return {text: n.textContent, cut: inner.scrollWidth > inner.clientWidth + 1};
  });
  return {charts, metrics};
}"""


def overlapping(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] - 0.5 and b["x"] < a["x"] + a["w"] - 0.5 and \
        a["y"] < b["y"] + b["h"] - 0.5 and b["y"] < a["y"] + a["h"] - 0.5


def layout_problems(drawn: dict) -> list[str]:
    """What a reader could not read: a heatmap number wider than its cell or over another number, an axis label cut
    (an ellipsis) or outside its chart, a metric cut."""
    problems = []
    for index, chart in enumerate(drawn["charts"]):
        assert len(chart["texts"]) == len(chart["cells"])  # one number per cell, in the cells' order
        for cell, text in zip(chart["cells"], chart["texts"]):
            if text["w"] > cell["w"] + 0.5:
                problems.append(f"chart {index}: {text['text']!r} is {text['w']:.0f} px in a {cell['w']:.0f} px cell")
        texts = sorted(chart["texts"], key=lambda t: (round(t["y"]), t["x"]))
        for a, b in zip(texts, texts[1:]):
            if a["text"] and b["text"] and overlapping(a, b):
                problems.append(f"chart {index}: {a['text']!r} overlaps {b['text']!r}")
        for label in chart["labels"]:
            svg = chart["svg"]
            if label["text"].endswith("…"):
                problems.append(f"chart {index}: axis label cut: {label['text']!r}")
            if label["x"] < svg["x"] - 1 or label["x"] + label["w"] > svg["x"] + svg["w"] + 1:
                problems.append(f"chart {index}: axis label {label['text']!r} outside its chart")
    problems += [f"metric cut: {m['text']!r}" for m in drawn["metrics"] if m["cut"]]
    return problems


@pytest.mark.parametrize("width", [900, 1400])
def test_every_page_reads_at_900_and_1400_px(server, browser, width):
    """Screenshots of every page (tests/artifacts/readable/<page>-<width>.png, the window 2,400 px tall so most of a
    page is in it), and on each page with heatmaps or metrics: every number inside its cell and clear of the
    others, every axis label whole and inside its chart, every metric whole."""
    context = browser.new_context(viewport={"width": width, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    found, heatmaps = {}, 0
    for path, ready in PAGES:
        open_page(page, server["base"], path, ready)
        if path.startswith("heatmaps"):
            page.locator(".cells_marks path").first.wait_for()
        page.screenshot(path=str(SHOTS / f"{shot_name(path)}-{width}.png"))
        drawn = page.evaluate(LAYOUT_JS)
        heatmaps += len(drawn["charts"])
        problems = layout_problems(drawn)
        if problems:
            found[path or "overview"] = problems
    context.close()
    assert heatmaps >= 4  # the heatmaps page's four (two languages, and one model's breakdowns) and Compare's
    assert not found, "\n".join(f"{name}: " + "\n  ".join(problems[:12]) for name, problems in found.items())
