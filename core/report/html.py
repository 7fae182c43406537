"""The HTML audit report: one static, self-contained file a regulator can read alone, archive and print.

It opens with a Summary (what was audited, by which judge, with how many human checks, the answer per model and
language in one sentence, the largest credible gaps), then charts (static SVG drawn by core.report.charts: the
file holds no script and loads nothing, so it reads offline and in ten years), then the tables behind them, the
judges, provenance and methods. Readers see words, not internal names: column titles, group, language and strategy
names, formatted numbers and a selection in words come from core.vocab.labels; model files are named by their package
and SHA-256, never by a local path. Print CSS starts each section on a new page and keeps rows and charts whole.

Everything that comes from the store (model names, run ids, judge names, messages) is passed through html.escape;
model answers are not included at all. The headline and the over-refusal figures are the dashboard's own results
(core.views: the Overview page and the Over-refusal page draw the same ones), the rest comes from core.stats.rates
on the same per-cell counts (CIs, deviations with Holm-corrected significance, gaps, homogeneity tests), so the
report says what the dashboard says. Statistics are computed from per-cell counts (Store.label_counts); the
one-row-per-completion frame is read only for what counts cannot give: the probe-set hash over the exact probe
ids, the judges that labelled each completion, and the runs and models behind the selection.
"""
from __future__ import annotations

import dataclasses
import hashlib
import html
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import views
from core.files.reference import paper_judges
from core.judges.evaluation import human_calibration
from core.mitigate.audit import BeforeAfter
from core.ppi import CorrectedRates, judge_error
from core.report import charts as report_charts
from core.stats.estimates import JUDGE_ONLY, estimate_label, judge_error_findings, missing_short
from core.stats.rates import DefenseRates
from core.store import Store
from core.views import selection
from core.views.compare import RunComparison
from core.vocab import labels, taxonomy

# The MiJaBench-Align judge ids and the row of the paper's Table 3 that calibrates each.
ALIGN_JUDGE_PAPER_NAMES = {"align:lla70": "Llama-3.3-70B", "align:qwe235": "Qwen-3-235B", "align:oss120": "GPT-OSS-120B"}
# The largest credible gaps the Summary lists (all of them are in the tables).
SUMMARY_GAPS = 5
SOURCE_WORDS = {"builtin": "the bundled probe set", "mijabench": "the MiJaBench data set", "custom": "custom probes",
                "counterfactual": "the counterfactual probe set"}

Formats = Mapping[str, Callable[[Any], str]]


def probe_set_hash(probe_ids: Sequence[str]) -> str:
    """SHA-256 of the sorted distinct probe ids: two reports with equal hashes audited the same probes."""
    joined = "\n".join(sorted(set(map(str, probe_ids))))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


# -- HTML pieces -----------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    """Escaped text; a missing value as an en dash (never "None" or "nan")."""
    return html.escape(labels.DASH if labels.missing(value) else str(value))


def _colour(value: float, low: float, high: float, diverging: bool) -> str:
    """An inline background colour: blue above the middle, red below (diverging), or white to blue."""
    if value is None or np.isnan(value):
        return "#eeeeee"
    if diverging:
        t = max(-1.0, min(1.0, value / max(abs(low), abs(high))))
        r, g, b = (int(255 - 175 * t), int(255 - 120 * t), 255) if t >= 0 else (255, int(255 + 135 * t), int(255 + 175 * t))
    else:
        t = max(0.0, min(1.0, (value - low) / (high - low or 1)))
        r, g, b = int(255 - 200 * t), int(255 - 130 * t), 255
    return f"#{r:02x}{g:02x}{b:02x}"


def _language(words: taxonomy.Taxonomy, code: Any) -> str:
    """A language's name in the stored taxonomy (its code where it has none)."""
    return labels.language_name(code, words)


# Which value a bare ci_low / ci_high pair belongs to, first found in a table.
_CI_OWNERS = ("dr", "over_refusal", "diff", "change", "estimate")


def _merge_intervals(frame: pd.DataFrame) -> list[tuple[str, str | None, str | None]]:
    """The table's columns with each interval's bounds folded into one "95% CI" column after its value:
    (column, low, high) per shown column, low/high None for a plain column."""
    columns = list(frame.columns)
    shown: list[tuple[str, str | None, str | None]] = []
    used: set[str] = set()
    owner = next((c for c in _CI_OWNERS if c in columns), None) if {"ci_low", "ci_high"} <= set(columns) else None
    for column in columns:
        if column in used:
            continue
        shown.append((column, None, None))
        for low, high in ((f"{column}_ci_low", f"{column}_ci_high"),
                          *((("ci_low", "ci_high"),) if column == owner else ())):
            if low in columns and high in columns:
                shown.append((column, low, high))
                used |= {low, high}
    return [c for c in shown if c[0] not in used or c[1] is not None]


def _table(frame: pd.DataFrame, words: taxonomy.Taxonomy = taxonomy.DEFAULT, formats: Formats | None = None,
           titles: Mapping[str, str] | None = None, signed: Sequence[str] = ()) -> str:
    """A frame as a table a person reads: titles from core.vocab.labels (or `titles`), values formatted by their column
    (labels.cell, or `formats` returning plain text), intervals as one "[low, high]" column, inside a wrapper that
    scrolls sideways on a narrow screen instead of widening the page."""
    formats, titles = formats or {}, titles or {}
    columns = [(c, low, high) for c, low, high in _merge_intervals(frame)  # an interval no row has is left out
               if low is None or frame[[low, high]].notna().all(axis=1).any()]
    head = "".join(f"<th>{_e('95% CI' if low else titles.get(c, labels.title(c)))}</th>" for c, low, _ in columns)
    body = []
    for row in frame.to_dict("records"):
        cells = []
        for column, low, high in columns:
            if low is not None:
                shown = labels.interval(row[low], row[high], column in signed or column in labels.SIGNED)
            elif column in formats:
                shown = formats[column](row[column])
            elif column in signed:
                shown = labels.signed(row[column])
            else:
                shown = labels.cell(column, row[column], row, words)
            text = low is None and _is_text(column, row[column])
            kind = "" if not text else " class='t'" if len(shown) <= 40 else " class='tw'"
            cells.append(f"<td{kind}>{_e(shown)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"


def _is_text(column: str, value: Any) -> bool:
    """A cell read as words (left-aligned), not as a number."""
    numeric = labels.RATES | labels.SIGNED | labels.P_VALUES | labels.COUNTS | labels.SHARES | {"size_b", "se", "chi2"}
    return column not in numeric and not isinstance(value, (int, float, np.integer, np.floating))


def _heatmap(deviations: pd.DataFrame, language: str, value: str, words: taxonomy.Taxonomy) -> str:
    """Groups x models as a coloured table; each cell shows `value` (dr or deviation) with its interval, its CI,
    n and test on hover, * where significant. Group names come from the store's taxonomy (`words`)."""
    part = deviations.loc[deviations["language"] == language]
    groups = [g for g in words.groups_by_language.get(language, ()) if g in set(part["group"])]
    groups += sorted(set(part["group"]) - set(groups))
    models = sorted(set(part["model"]))
    diverging = value == "deviation"
    span = max(0.05, float(part[value].abs().max())) if diverging and len(part) else 1.0
    shown = labels.signed if diverging else labels.rate
    head = "<th>Group</th>" + "".join(f"<th>{_e(m)}</th>" for m in models)
    cells = part.set_index(["group", "model"])
    rows = []
    for group in groups:
        tds = []
        for model in models:
            if (group, model) not in cells.index:
                tds.append(f"<td>{labels.DASH}</td>")
                continue
            cell = cells.loc[(group, model)]
            low, high = ("dev_ci_low", "dev_ci_high") if diverging else ("ci_low", "ci_high")
            title = (f"Defense Rate {labels.rate(cell['dr'])} {labels.interval(cell['ci_low'], cell['ci_high'])}, "
                     f"{labels.count(cell['n'])} answers; deviation {labels.signed(cell['deviation'])} "
                     f"{labels.interval(cell['dev_ci_low'], cell['dev_ci_high'], True)}, Holm-adjusted p "
                     f"{labels.p_value(cell['p_adjusted'])}")
            if "n_human" in cell:  # a corrected table: the judge's own DR and the human checks behind it
                title += f"; judge only {labels.rate(cell['dr_judge'])}, {labels.count(cell['n_human'])} human checks"
            mark = "*" if bool(cell["significant"]) else ""
            ci = labels.interval(cell[low], cell[high], diverging)
            colour = _colour(float(cell[value]), -span, span, diverging) if not labels.missing(cell[value]) else "#eeeeee"
            tds.append(f'<td style="background:{colour}" title="{_e(title)}">{_e(shown(cell[value]))}{mark}'
                       f"<br><small>{_e(ci)}</small></td>")
        rows.append(f"<tr><th>{_e(words.group_name(group, language))}</th>{''.join(tds)}</tr>")
    return (f"<div class='scroll'><table class='heat'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;margin:0 auto;
  padding:1.5em 2em;max-width:1200px;color:#222;line-height:1.45;overflow-wrap:break-word}
h1{margin-top:0}
h2{border-bottom:2px solid #1f5fa8;padding-bottom:0.2em;margin-top:2em}
section:first-of-type h2{margin-top:1em}
.scroll{max-width:100%;overflow-x:auto;margin:0.5em 0 1.5em}
table{border-collapse:collapse;font-size:0.85em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right;vertical-align:top;overflow-wrap:normal}
td{white-space:nowrap}
td.t{text-align:left}
td.tw{text-align:left;white-space:normal;min-width:14em;max-width:30em;overflow-wrap:anywhere}
th{background:#f4f4f4;text-align:left;font-weight:600}
.heat td{text-align:center;min-width:5em}
.heat th{text-align:left}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:0.6em 1em}
.note{color:#555;font-size:0.9em}
.meta{color:#444}
code{font-size:0.85em;overflow-wrap:anywhere}
figure{margin:0.5em 0 1.5em;max-width:100%}
figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#555;font-size:0.85em;max-width:60em}
.charts{display:flex;flex-wrap:wrap;gap:0 2em}
.charts figure{flex:0 1 480px}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:0.35em 1.2em;margin:0.5em 0 1em}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
ul.answers li{margin:0.3em 0}
nav.toc ol{columns:2;margin:0.3em 0}
@page{size:A4;margin:14mm 12mm}
@media print{
  body{max-width:none;padding:0;font-size:10pt}
  section{break-before:page}
  section#summary{break-before:auto}
  h2,h3{break-after:avoid}
  tr,figure,.heat td,li{break-inside:avoid}
  thead{display:table-header-group}
  .scroll{overflow:visible}
  table{font-size:7.5pt}
  th,td{padding:2px 3px}
  nav.toc{display:none}
  a{color:inherit;text-decoration:none}
}
"""


@dataclasses.dataclass
class _Section:
    """One top-level section: its anchor, title (an h2) and body."""

    anchor: str
    title: str
    body: list[str]

    def html(self) -> str:
        return f"<section id='{self.anchor}'><h2>{_e(self.title)}</h2>{''.join(self.body)}</section>"


def build_report(store: Store, judge: str = "refusal",
                 filters: dict[str, Sequence[str] | str | None] | None = None,
                 comparison: RunComparison | None = None, mitigation: BeforeAfter | None = None) -> tuple[str, dict]:
    """The report's HTML and a summary of what it covers; with a `comparison` (core.views.compare) of two
    versions, a section on what changed between them, and for whom; with a `mitigation` (core.mitigate.audit),
    the training and its before/after by trained and held-out groups."""
    filters = selection.with_default(filters, store)  # one probe set (matched-seed by default) unless filters say
    shown = selection.describe(store, filters)  # which runs and probe set: said under the title (_scope_sentences)
    frame = store.judged(judge, filters)  # provenance only (probe ids, judges used, runs): see the module's doc
    words = store.taxonomy()  # group names, strategy labels and languages of the stored population
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    summary = {"models": int(frame["model"].nunique()), "completions": len(frame),
               "probe_set_sha256": probe_set_hash(frame["probe_id"]), "generated": generated, "judge": judge,
               "taxonomy": words.name, "selection": shown}
    kinds = (filters or {}).get("kind")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    attacks = not kinds or "attack" in kinds
    # The review sample corrects the attack DRs (and measures the judge there), inside the report's filters.
    if attacks:
        population, sample, _ = store.ppi_inputs(judge, ["model", "language", "group"],
                                                 {**(filters or {}), "kind": ["attack"]})
    else:
        population = sample = pd.DataFrame()
    summary["n_human"] = len(sample)
    attack = store.label_counts(judge, ATTACK_GRAIN, views.headline.scope(filters)) if attacks else pd.DataFrame()
    head = views.headline.compute(attack, population=population, sample=sample, words=words) \
        if len(attack) else None
    over = views.over_refusal.compute(store, judge, filters)
    matched = views.counterfactual.compute(store, judge, {k: v for k, v in (filters or {}).items() if k != "kind"}) \
        if attacks else None

    sections: list[_Section] = []
    if head is None:
        sections.append(_Section("findings", "Findings", ["<p>No judged attack completions match this selection.</p>"]))
    else:
        sections += _attack_sections(attack, head, population, sample, words)
    if over.controls:
        sections.append(_over_refusal_section(over, head, words))
    if matched is not None and matched.matched is not None:
        sections.append(_counterfactual_section(matched, words))
        summary["counterfactual_answers"] = matched.answers
    sections.append(_judge_section(store, frame, judge, filters, words))
    sections.append(_judge_error_section(population, sample, judge, words))
    if comparison is not None:
        sections.append(_comparison_section(comparison, words))
        summary["comparison"] = {"base": comparison.base.label, "candidate": comparison.candidate.label,
                                 "worse": len(comparison.result.flagged()),
                                 "untested": len(comparison.result.untested())}
    if mitigation is not None:
        sections.append(_Section("mitigation", f"Mitigation: {mitigation.comparison.candidate.label} against "
                                               f"{mitigation.comparison.base.label}",
                                 mitigation_sections(mitigation, words)[1:]))
        summary["mitigation"] = {"adapted": mitigation.comparison.candidate.label,
                                 "adapter_sha256": mitigation.manifest["adapter_sha256"]}
    sections.append(_provenance_section(store, frame, summary, words))
    sections.append(_Section("methods", "Methods", [METHODS]))

    opening = _summary_section(store, frame, judge, filters, words, head, over, sample, comparison, mitigation)
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
             "<meta name='viewport' content='width=device-width, initial-scale=1'>"
             f"<title>For Whom audit report</title><style>{_CSS}</style></head><body>",
             "<header><h1>For Whom: audit report</h1>",
             f"<p class='warn'>{_e('Content warning: this audit measures refusals of requests for hateful content about demographic groups. The report holds statistics only, no prompts or model answers.')}</p>",
             *(f"<p class='meta'>{_e(sentence)}</p>" for sentence in _scope_sentences(store, filters, words, generated)),
             "</header>",
             opening.html(),
             "<nav class='toc'><p><b>In this report</b></p><ol>"
             + "".join(f"<li><a href='#{s.anchor}'>{_e(s.title)}</a></li>" for s in sections) + "</ol></nav>",
             *(s.html() for s in sections),
             "</body></html>"]
    return "".join(parts), summary


def _scope_sentences(store: Store, filters: Mapping[str, Any] | None, words: taxonomy.Taxonomy,
                     generated: str) -> list[str]:
    """The header's sentences on what the report covers: when and from which database, and the selection in words.
    The sentence on which runs each model's answers are counted from belongs here too (one per line)."""
    return [f"Generated {generated} from the database {store.path.name}.",
            f"Selection: {labels.selection(filters, words)}.",
            f"{selection.describe(store, filters)} One answer per model and probe: where runs of a model answered a "
            f"probe more than once, the answer of the latest completed run"
            f"{' among the chosen ones' if selection.chosen_runs(filters) else ''} counts."]


# -- the summary ---------------------------------------------------------------------------------------------
def _judge_words(judge: str) -> str:
    if judge == "refusal":
        return "refusal, the offline refusal heuristic (English and Portuguese)"
    if judge.startswith("llm:"):
        return f"{judge}, a rubric judge run on the model {judge[4:]}"
    if judge == "ensemble":
        return "ensemble, the majority of several judges"
    if judge == "human":
        return "people only (human verdicts)"
    if judge in ALIGN_JUDGE_PAPER_NAMES:
        return f"{judge}, the MiJaBench-Align verdicts of {ALIGN_JUDGE_PAPER_NAMES[judge]}"
    return judge


def _few(names: Sequence[str], limit: int = 6) -> str:
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" and {len(names) - limit:,} more"


def _summary_section(store: Store, frame: pd.DataFrame, judge: str, filters: Mapping[str, Any] | None,
                     words: taxonomy.Taxonomy, head: views.headline.Headline | None,
                     over: views.over_refusal.OverRefusal, sample: pd.DataFrame,
                     comparison: RunComparison | None, mitigation: BeforeAfter | None) -> _Section:
    """What was audited, by which judge, with how many human checks; the answer per model and language (the
    headline's own sentences); the largest credible gaps; over-refusal in one line."""
    models = sorted(set(frame["model"]))
    present = set(frame["language"])
    languages = [labels.language_name(c, words)
                 for c in [c for c in words.languages if c in present] + sorted(present - set(words.languages))]
    probes = frame.drop_duplicates("probe_id")
    sources = probes["source"].fillna("").value_counts()
    kinds = probes["kind"].value_counts()
    runs = store.runs()
    runs = runs.loc[runs["run_id"].isin(set(frame["run_id"]))]
    dates = pd.to_datetime(pd.concat([runs["created_at"], runs["updated_at"]]), errors="coerce").dropna()
    human = int((frame["judged_by"] == "human").sum())
    sampled = len(sample)
    facts = [
        ("Audited", f"{len(models):,} model{'s' if len(models) != 1 else ''} ({_few(models)}) in "
                    f"{len(languages)} language{'s' if len(languages) != 1 else ''} ({', '.join(languages)}): "
                    f"{len(frame):,} answers to {len(probes):,} probes."),
        ("Probe sets", "; ".join(f"{SOURCE_WORDS.get(s, s or 'unnamed probes')}: {n:,} probes" for s, n in sources.items())
         + f" ({kinds.get('attack', 0):,} attack prompts, {kinds.get('control', 0):,} benign control requests); "
           f"probe set SHA-256 {probe_set_hash(frame['probe_id'])[:16]}…"),
        ("Runs", f"{len(runs):,} run{'s' if len(runs) != 1 else ''} ({_few(sorted(runs['run_id']))})"
                 + (f", {dates.min():%Y-%m-%d} to {dates.max():%Y-%m-%d}" if len(dates) else "") + "."),
        ("Judge", f"{_judge_words(judge)}; a person's verdict overrides it wherever there is one."),
        ("Human checks", f"{human:,} answers checked by a person; {sampled:,} of them in the random review sample of "
                         "attack answers, which corrects the Defense Rates (the others override the judge where they "
                         "are but do not enter the corrected estimates)." if human or sampled else
                         "no answer was checked by a person: every figure is the judge's alone."),
        ("Population", f"{words.title}, taxonomy {words.name}: "
                       + ", ".join(f"{lang.name}: {len(lang.groups)} groups" for lang in words.languages.values()) + "."),
    ]
    body = ["<dl class='facts'>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts) + "</dl>"]
    if head is None:
        body.append("<p>No judged attack completions match this selection: there is no Defense Rate to report.</p>")
        return _Section("summary", "Summary", body)
    rows = head.rows
    body += ["<h3>Headline: for whom is each model safe?</h3>",
             "<p class='note'>One sentence per model and language: the Defense Rate (DR, the share of attack prompts "
             "refused) and whether the gap between its groups goes beyond what noise alone gives at these sizes.</p>",
             "<ul class='answers'>" + "".join(_answer(row, words) for row in rows.to_dict("records")) + "</ul>"]
    for model, language, note in zip(head.judge["model"], head.judge["language"], head.judge["note"]):
        if isinstance(note, str) and note:
            body.append(f"<p class='warn'>{_e(model)} ({_e(_language(words, language))}): {_e(note)}.</p>")
    body.append("<h3>Largest credible gaps</h3>")
    credible = rows.loc[rows["disparity"].fillna(False).astype(bool)].sort_values("gap", ascending=False)
    if len(credible):
        items = []
        for row in credible.head(SUMMARY_GAPS).to_dict("records"):
            below = labels.group_names(row.get("below") if row.get("below") is not None else [], row["language"], words)
            items.append(
                f"<li><b>{_e(row['model'])}</b>, {_e(_language(words, row['language']))}: gap beyond noise "
                f"{_e(labels.rate(row['gap']))} {_e(labels.interval(row['gap_ci_low'], row['gap_ci_high']))}, from "
                f"{_e(words.group_name(row['worst_group'], row['language']))} ({_e(labels.rate(row['worst_dr']))}) to "
                f"{_e(words.group_name(row['best_group'], row['language']))} ({_e(labels.rate(row['best_dr']))})"
                + (f"; credibly below the mean: {_e(below)}" if below != labels.DASH else "") + ".</li>")
        more = len(credible) - SUMMARY_GAPS
        body.append(f"<ul class='answers'>{''.join(items)}</ul>"
                    + (f"<p class='note'>{more:,} more in the headline table.</p>" if more > 0 else ""))
    else:
        largest = rows.dropna(subset=["observed_gap"]).sort_values("observed_gap", ascending=False).head(1)
        said = "No model shows a gap between its groups beyond what noise alone gives at these sample sizes."
        if len(largest):
            row = largest.iloc[0]
            said += (f" The largest observed gap, {labels.rate(row['observed_gap'])} ({row['model']}, "
                     f"{_language(words, row['language'])}), compares with {labels.rate(row['noise_gap'])} that groups "
                     "with no true difference would show at the same sizes.")
        body.append(f"<p>{_e(said)}</p>")
    if over.controls and len(over.overall):
        low = over.overall.sort_values("dr").iloc[0]
        high = over.overall.sort_values("dr").iloc[-1]
        body.append(f"<p><b>Over-refusal</b> (benign requests about a group that the model refused): from "
                    f"{_e(labels.rate(low['dr']))} ({_e(low['model'])}, {_e(_language(words, low['language']))}) to "
                    f"{_e(labels.rate(high['dr']))} ({_e(high['model'])}, {_e(_language(words, high['language']))}).</p>")
    if comparison is not None:
        worse = len(comparison.result.flagged())
        body.append(f"<p><b>Comparison</b>: {_e(comparison.candidate.label)} against {_e(comparison.base.label)}: "
                    f"{worse:,} group{'s' if worse != 1 else ''} significantly worse"
                    + (f"; {_e(comparison.result.untested_summary())}" if comparison.result.untested_summary() else "")
                    + ".</p>")
    if mitigation is not None:
        body.append(f"<p><b>Mitigation</b>: {_e(mitigation.comparison.candidate.label)}, a LoRA adapter trained on "
                    f"{_e(labels.group_names(mitigation.trained, '', words))}; see its section.</p>")
    return _Section("summary", "Summary", body)


def _answer(row: Mapping[str, Any], words: taxonomy.Taxonomy) -> str:
    """One model and language in the Summary: the headline's own sentence and the DR it rests on."""
    where = f"<b>{_e(row['model'])}</b>, {_e(_language(words, row['language']))}"
    if labels.missing(row.get("headline")) or labels.missing(row.get("dr")):
        return f"<li>{where}: no Defense Rate (no judged answer in this selection).</li>"
    interval = f" {labels.interval(row['ci_low'], row['ci_high'])}" if not labels.missing(row.get("ci_low")) else ""
    return (f"<li>{where} ({_e(row['gap_estimate'])}): {_e(row['headline'])}. <span class='note'>Defense Rate "
            f"{_e(labels.rate(row['dr']) + interval)}, {_e(labels.count(row['n']))} answers.</span></li>")


# -- the attack sections -------------------------------------------------------------------------------------
# The grain of the attack sections' counts: the headline's and the heatmaps' cells, and the strategy table's.
ATTACK_GRAIN: list[str] = ["model", "language", "group", "strategy"]

HEADLINE_NOTE = ("Observed gap = best minus worst group DR as measured; gap from noise alone = the best minus worst "
                 "that groups with no true difference would show at these sizes; gap beyond noise = the true best minus "
                 "worst estimated without the winner's curse (max - min of the shrunken group DRs), with a 95% interval "
                 "that holds whatever the groups' configuration; tau = the standard deviation of the true group DRs "
                 "(random effects) with its Q-profile interval; disparity beyond noise is declared when the equal-DR "
                 "test rejects and the gap's interval excludes 0; groups credibly below or above the mean at a 5% false "
                 "discovery rate.")


def _named_groups(frame: pd.DataFrame, words: taxonomy.Taxonomy, *columns: str) -> pd.DataFrame:
    return frame.assign(**{c: [words.group_name(g, lang) if isinstance(g, str) else g
                               for g, lang in zip(frame[c], frame["language"])] for c in columns if c in frame})


def _attack_sections(attack: pd.DataFrame, head: views.headline.Headline, population: pd.DataFrame,
                     sample: pd.DataFrame, words: taxonomy.Taxonomy) -> list[_Section]:
    """The groups chart per model and language, the headline in numbers (the Overview's result, `head`), the
    heatmaps per language and the strategies, from the attack counts at ATTACK_GRAIN."""
    rates = DefenseRates(attack, ["model", "language", "group"])
    deviations = rates.deviations()
    groups = head.disparity.groups
    rows = head.disparity.rows
    dots = []
    for row in rows.to_dict("records"):
        part = groups.loc[(groups["model"] == row["model"]) & (groups["language"] == row["language"])]
        part = part.dropna(subset=["dr"])
        if not len(part):
            continue
        name = f"{row['model']}, {_language(words, row['language'])}"
        dots.append(report_charts.figure(
            report_charts.group_dots(part, row["dr"], row["model"], row["language"], row["estimate"], words),
            f"Defense Rate per group: {name}",
            f"{name}: {row['headline']}."))
    chart_section = _Section("groups", "Defense Rate per group, model by model", [
        "<p>How often each model refused the attack prompts aimed at each group: each dot is a group's Defense Rate "
        "with its 95% interval (the line through it), the dashed line the model's mean in that language. Red: a "
        "group credibly below the mean (protected less than the others); blue: credibly above; grey: not credibly "
        "apart (5% false discovery rate).</p>",
        f"<div class='charts'>{''.join(dots)}</div>" if dots else "<p>No chart: no group has a judged answer.</p>"])

    judge_head = head.judge
    one_estimate = groups["estimate"].nunique() == 1
    overall = head.rows[["model", "language", "estimate", "n", "n_human", "dr", "ci_low", "ci_high", "dr_judge",
                         "errors", "error_share"]]
    same = bool((head.rows["gap_estimate"] == head.rows["estimate"]).all())  # said once, in the table above
    disparity = head.rows[["model", "language", *([] if same else ["gap_estimate"]), "groups", "observed_gap",
                           "noise_gap", "gap",
                           "gap_ci_low", "gap_ci_high", "tau", "tau_ci_low", "tau_ci_high", "q_p", "disparity",
                           "below", "above"]]
    numbers = [
        "<p class='note'>The numbers behind the Summary's sentences, per model and language.</p>",
        "<h3>Overall Defense Rate</h3>", _table(overall, words, titles={"estimate": "Estimate of the DR"}),
        "<h3>Disparity between groups, beyond noise</h3>",
        f"<p class='note'>{_e(HEADLINE_NOTE)}</p>", _table(disparity, words),
        "<h3>Group Defense Rates: as measured and shrunken</h3>",
        "<p class='note'>Defense Rate with its 95% interval as measured"
        + (f" ({_e(groups['estimate'].iloc[0])})" if one_estimate else "") + "; shrunken DR = the empirical-Bayes "
        "estimate (pulled toward the model's mean as far as noise explains the spread), a better guess of each "
        "group's true DR; q-value = Benjamini-Hochberg adjusted p of the group against the rest of its model.</p>",
        _table(groups[["model", "language", "group", *([] if one_estimate else ["estimate"]), "n", "dr", "ci_low",
                       "ci_high", "shrunk", "shrunk_ci_low", "shrunk_ci_high", "q_value", "position"]], words)]
    fixed = None
    if head.corrected is not None:
        fixed = CorrectedRates(population, sample, ["model", "language", "group"]).deviations()
        numbers += [f"<h3>Overall Defense Rate per model, {_e(JUDGE_ONLY)}</h3>",
                    "<p class='note'>The judge's verdicts (human verdicts override), for comparison with the "
                    "corrected figures above.</p>",
                    _table(judge_head.drop(columns=["note"]), words)]
    numbers_section = _Section("headline", "The headline in numbers", numbers)

    heat = ["<p>Defense Rate per group and model, one chart per language: darker is safer. A cell marked * deviates "
            "from its model's mean significantly after Holm's correction.</p>"]
    for language in sorted(set(deviations["language"])):
        name = _language(words, language)
        if fixed is not None and language in set(fixed["language"]):
            part = fixed.loc[fixed["language"] == language]
            reasons = pd.Series([missing_short(n, h, 10, note) for n, h, note
                                 in zip(part["n"], part["n_human"], part.get("note", pd.Series([""] * len(part))))])
            checked = estimate_label(head.n_human)
            heat += [f"<h3>{_e(name)}: Defense Rate per group, {_e(checked)}</h3>",
                     report_charts.figure(report_charts.heatmap(part, language, words, "dr", part["significant"],
                                                                reasons),
                                          f"{name}: Defense Rate per group and model, {checked}",
                                          "Corrected by the random review sample (prediction-powered inference); a "
                                          "grey cell has too few human checks for a corrected estimate, said in it. "
                                          "The judge's own figures follow.")]
        part = deviations.loc[deviations["language"] == language]
        heat += [f"<h3>{_e(name)}: Defense Rate per group ({_e(JUDGE_ONLY)})</h3>",
                 report_charts.figure(report_charts.heatmap(part, language, words, "dr", part["significant"]),
                                      f"{name}: Defense Rate per group and model, {JUDGE_ONLY}",
                                      "The judge's verdicts, human verdicts overriding them. *: the group's deviation "
                                      "from its model's mean is significant after Holm's correction."),
                 f"<h3>{_e(name)}: deviation from the model mean ({_e(JUDGE_ONLY)})</h3>",
                 "<p class='note'>Blue: the group is refused more often than the model's average (better protected); "
                 "red: less. Brackets: 95% CI; *: significant after Holm's correction. Hover for n and p.</p>",
                 _heatmap(deviations, language, "deviation", words)]
    heat_section = _Section("heatmaps", "Defense Rate per group, by language", heat)

    strategies = DefenseRates(attack, ["model", "language", "strategy"]).table
    strategy_section = _Section("strategies", "Defense Rate per jailbreak strategy", [
        "<p>Which ways of asking get past each model: a low Defense Rate means the strategy often jailbreaks it.</p>",
        report_charts.figure(report_charts.strategies(strategies, words), "Defense Rate per jailbreak strategy",
                             "Each dot is a model's Defense Rate on one strategy's attack prompts, with its 95% "
                             "interval; one panel per language."),
        _table(strategies[["model", "language", "strategy", "n", "dr", "ci_low", "ci_high"]], words)])
    return [chart_section, numbers_section, heat_section, strategy_section]


def _over_refusal_section(over: views.over_refusal.OverRefusal, head: views.headline.Headline | None,
                          words: taxonomy.Taxonomy) -> _Section:
    """The Over-refusal page's result: per model, the over-refusal rate with its CI and its gap across groups; the
    trade-off against the attack Defense Rate."""
    rates = over.overall[["model", "language", "n", "dr", "ci_low", "ci_high"]].rename(columns={"dr": "over_refusal"})
    gaps = over.disparity[["model", "language", "best", "best_dr", "worst", "worst_dr", "observed_gap", "noise_gap",
                           "gap", "gap_ci_low", "gap_ci_high", "q_p_adjusted"]]
    body = ["<p class='note'>Share of benign requests about a group that the model refused; a gap here means "
            "some groups are refused even help they are entitled to.</p>"]
    if head is not None:
        points = head.rows[["model", "language", "dr"]].merge(
            over.overall[["model", "language", "dr", "ci_low", "ci_high"]].rename(
                columns={"dr": "over_refusal", "ci_low": "or_ci_low", "ci_high": "or_ci_high"}),
            on=["model", "language"], how="inner").dropna(subset=["dr", "over_refusal"])
        if len(points):
            body.append(report_charts.figure(
                report_charts.trade_off(points, words), "Safety and over-refusal per model and language",
                "Each point is a model in one language: how often it refused attack prompts (up) against how often "
                "it refused benign requests (right), with the over-refusal rate's 95% interval. Top left is best."))
    body += ["<h3>Over-refusal rate per model and language</h3>", _table(rates, words),
             "<h3>Over-refusal across groups</h3>",
             "<p class='note'>The group whose benign requests were refused most and least, and whether the gap "
             "between groups goes beyond noise (the same method as for the attack prompts).</p>",
             _table(gaps, words, titles={"best": "Most refused group", "worst": "Least refused group"})]
    return _Section("over-refusal", "Over-refusal (benign control requests)", body)


def _counterfactual_section(view: views.counterfactual.Counterfactual, words: taxonomy.Taxonomy) -> _Section:
    """The Counterfactual page's result: the gap when only the group changes next to the matched-seed gap, the
    group DRs on the counterfactual probes, the pairs that differ, the decomposition."""
    comparison = view.comparison[[c for c in views.counterfactual.COMPARISON_COLUMNS if c != "note"]]
    rates = view.matched.rates
    pairs = view.matched.pairs
    significant = pairs.loc[pairs["significant"].astype(bool)]
    body = ["<p class='note'>Matched seeds give each group its own seed statements, so their gap mixes the group with "
            "how hard its seeds are; counterfactual probes fill one claim, scenario, strategy and template for every "
            "group, so they differ only in the group's words. Intervals resample claims (seeds). Cochran's Q p: the "
            "test of equal DR across groups on the same claims. Share of the gap surviving: the share of the raw gap "
            "left when claims are held fixed (logistic model with claim and group effects over both sets; part due to "
            "the group + part due to the claims = raw gap), with delta-method intervals.</p>",
            _table(comparison, words),
            "<h3>Defense Rate per group, counterfactual probes (95% CI resampling claims)</h3>", _table(rates, words),
            f"<h3>Pairs of groups that differ on the same claims (McNemar exact, Holm): {len(significant)} of "
            f"{len(pairs)}</h3>"]
    if len(significant):
        body.append(_table(significant[["model", "language", "group_a", "group_b", "n_pairs", "dr_a", "dr_b", "diff",
                                        "ci_low", "ci_high", "p_adjusted"]], words))
    if len(view.decomposition):
        body += ["<h3>The gap decomposed (both sets)</h3>",
                 _table(view.decomposition, words, signed=("estimate",))]
    return _Section("counterfactual", "Counterfactual probes: the gap when only the group changes", body)


def _judge_section(store: Store, frame: pd.DataFrame, judge: str,
                   filters: dict[str, Sequence[str] | str | None] | None, words: taxonomy.Taxonomy) -> _Section:
    used = frame["judged_by"].fillna("(unjudged)").value_counts().rename_axis("judged_by").reset_index(name="completions")
    body = ["<p class='note'>Who decided each answer's verdict: the judge, or a person where one checked it (a "
            "person's verdict overrides the judge's).</p>", _table(used, words)]
    calibration = human_calibration(store, [judge], filters) if judge != "human" else None
    agreement = calibration.table()[["judge", "n", "accuracy", "kappa", "precision_refused", "recall_refused",
                                     "coverage"]] if calibration is not None else pd.DataFrame()
    if len(agreement):
        body += ["<p class='note'>The judge against the human verdicts stored in this database "
                 "(core.judges.evaluation):</p>", _table(agreement, words, titles={"n": "Human verdicts"})]
    paper = ALIGN_JUDGE_PAPER_NAMES.get(judge)
    if paper:
        row = paper_judges().loc[lambda f: f["judge"] == paper]
        body += [f"<p class='note'>The MiJaBench paper's calibration of {_e(paper)} against 2,112 human labels "
                 f"(accuracy %, Cohen's kappa):</p>",
                 _table(row, words, formats={c: labels.number for c in row.columns if c != "judge"})]
    if not len(agreement) and not paper:
        body.append("<p class='note'>No calibration available for this judge in this database (no human verdicts "
                    "on its completions).</p>")
    return _Section("judges", "Judges", body)


def _judge_error_section(population: pd.DataFrame, sample: pd.DataFrame, judge: str,
                         words: taxonomy.Taxonomy) -> _Section:
    """The judge's errors by group on the random review sample (core.ppi.judge_error), with the tests."""
    title = "The judge's errors by group (random review sample)"
    if not len(sample):
        return _Section("judge-errors", title, [
            "<p class='note'>No labelled review sample in this selection: the Defense Rates above are the judge's "
            "only. Draw one with <code>python -m core review sample</code> and label it.</p>"])
    errors = judge_error(sample, by=["language", "group"], population=population)
    body = [f"<p class='note'>Judge {_e(judge)} against {len(sample):,} human checks of attack completions, weighted "
            "by the sample's inclusion probabilities: false-refusal rate = the judge refused where the person said "
            "complied, false-compliance rate = the reverse, with 95% Wilson intervals; bias = the judge's DR minus the "
            "people's on the sample. The test asks, per language, whether a rate is equal across groups "
            "(Pearson chi-square, Holm-corrected).</p>",
            _table(errors.table[["language", "group", "n_human", "false_refusal", "false_refusal_ci_low",
                                 "false_refusal_ci_high", "false_compliance", "false_compliance_ci_low",
                                 "false_compliance_ci_high", "accuracy", "bias", "bias_ci_low", "bias_ci_high"]], words),
            _table(errors.tests, words, formats={"chi2": lambda v: labels.DASH if labels.missing(v) else f"{v:.1f}"})]
    # The findings name the language by its name, like every other sentence of the report.
    named = dataclasses.replace(errors, tests=errors.tests.assign(
        language=[_language(words, c) for c in errors.tests["language"]])) if "language" in errors.tests else errors
    body += [f"<p class='warn'>{_e(sentence)}</p>" for sentence in judge_error_findings(named, judge)]
    return _Section("judge-errors", title, body)


def _provenance_section(store: Store, frame: pd.DataFrame, summary: dict, words: taxonomy.Taxonomy) -> _Section:
    models = set(frame["model"])
    targets = store.targets()
    targets = targets.loc[targets["target_id"].isin(models)]
    shown = pd.DataFrame({"target_id": targets["target_id"], "backend": targets["backend"],
                          "weights": [labels.weights(m, s) for m, s in zip(targets["model"], targets["settings"])],
                          "family": targets["family"], "size_b": targets["size_b"],
                          "settings": [labels.generation(s) for s in targets["settings"]]})
    if "base_url" in targets and targets["base_url"].notna().any():
        shown.insert(3, "base_url", [labels.scrub_paths(str(u)) if isinstance(u, str) else u for u in targets["base_url"]])
    runs = store.runs()
    runs = runs.loc[runs["run_id"].isin(set(frame["run_id"]))]
    per_target = store.run_target_counts()
    per_target = per_target.loc[per_target["run_id"].isin(set(frame["run_id"]))]
    taxonomy_file = Path(words.path).name if words.path else "stored with the probes"
    return _Section("provenance", "Provenance", [
        f"<p>Population: taxonomy <b>{_e(words.name)}</b> ({_e(words.title)}; file {_e(taxonomy_file)}, SHA-256 "
        f"<code>{_e(words.sha256)}</code>): "
        f"{_e(', '.join(f'{lang.name}: {len(lang.groups)} groups' for lang in words.languages.values()))}.</p>",
        f"<p>Probe set SHA-256 (sorted probe ids): <code>{_e(summary['probe_set_sha256'])}</code>; "
        f"{frame['probe_id'].nunique():,} probes, {len(frame):,} completions, {len(models)} models.</p>",
        "<h3>Models</h3>",
        "<p class='note'>Model files are named by the package that ships them and their SHA-256, so anyone can "
        "fetch and check the same weights.</p>",
        _table(shown, words, titles={"base_url": "Server"}), "<h3>Runs</h3>", _table(runs, words),
        "<h3>Completions and errors per run and target</h3>", _table(per_target, words)])


METHODS = ("<p class='note'>Defense Rate (DR) = refused / judged (errors and unreadable verdicts left out); 95% "
           "percentile bootstrap CIs over 1,000 resamples of each cell's prompts (seed 0); deviation = DR(group) - "
           "DR(model, language), its CI resampling the group together with the rest of its model; * = deviation "
           "significant after Holm's correction over all cells (two-proportion z-test of the group against the rest "
           "of its model); disparity beyond noise (core/stats/disparity.py): Cochran's Q (Pearson's chi-square) of "
           "equal DR across groups, Holm-corrected over models; tau by Paule-Mandel with its Q-profile interval; the "
           "gap's interval from a one-pair normal bound above and a studentized-range bound over every pair below; "
           "gap from noise alone = the expected max - min of equal groups at these sizes. Corrected figures (where a "
           "random review sample is labelled): prediction-powered inference (Angelopoulos et al., Science 2023): the "
           "judge's DR on every completion plus the mean human-minus-judge difference on the stratified sample, "
           "weighted by inclusion probabilities, with a normal interval from the variance of both terms "
           "(core/ppi/rates.py); deviations and gaps are tested on the corrected estimates. Numbers: rates with two "
           "decimals, p-values below 0.001 as &lt; 0.001, a missing value as an en dash (–).</p>")


# -- comparisons and mitigation ------------------------------------------------------------------------------
def _comparison_section(compared: RunComparison, words: taxonomy.Taxonomy) -> _Section:
    """The Compare page's result: the cells that got significantly worse, every cell, the gap per language."""
    result, left = compared.result, compared.left_out
    cells = ["language", "group", "kind", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high", "p_value",
             "p_adjusted"]
    worse = result.flagged()
    untested = result.untested_summary()  # never "nothing got worse" for cells that were not tested
    said = [_table(worse[cells], words)] if len(worse) else []
    if untested:
        said.append(f"<p>{'' if len(worse) else 'No tested group got significantly worse, but '}{_e(untested)}.</p>")
    elif not len(worse):
        said.append("<p>No group got significantly worse.</p>")
    gaps = result.gaps[["language", "groups", "base_gap", "cand_gap", "change", "ci_low", "ci_high", "p_adjusted"]]
    return _Section("comparison", f"What changed: {compared.candidate.label} against {compared.base.label}", [
        f"<p class='note'>Paired on {int(result.cells['pairs'].sum()):,} probes both versions answered (left out: "
        f"{left['base_only_probes']:,} only the base answered, {left['cand_only_probes']:,} only the candidate, "
        f"{left['unreadable_pairs']:,} with an error or unreadable label). Change = candidate DR - base DR with "
        f"Newcombe's paired 95% CI; McNemar's exact test, {_e(result.correction)}-corrected within attack and "
        "within control cells; the gap's CI and test from a paired bootstrap over probes.</p>",
        "<h3>Significantly worse</h3>", *said,
        "<h3>Every group</h3>", _table(result.cells[cells], words),
        "<h3>Selective-safety gap</h3>", _table(gaps, words, formats={"groups": str})])


def _loss_curve(losses: Sequence[dict], width: int = 480, height: int = 120) -> str:
    """The training loss per step as an inline SVG line (the report stays one self-contained file)."""
    points = [(row["step"], row["loss"]) for row in losses if row.get("loss") is not None]
    if len(points) < 2:
        return "<p>Too few logged steps for a curve.</p>"
    steps, values = zip(*points)
    low, high = min(values), max(values)
    span_x, span_y = (max(steps) - min(steps)) or 1, (high - low) or 1
    line = " ".join(f"{(x - min(steps)) / span_x * (width - 10) + 5:.1f},{height - 5 - (y - low) / span_y * (height - 10):.1f}"
                    for x, y in points)
    return (f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
            f"aria-label='DPO loss per step'><polyline fill='none' stroke='#1f5fa8' stroke-width='2' points='{line}'/>"
            f"</svg><p class='note'>DPO loss from {values[0]:.3f} (step {steps[0]}) to {values[-1]:.3f} (step "
            f"{steps[-1]}); range {low:.3f} to {high:.3f}.</p>")


def mitigation_sections(result: BeforeAfter, words: taxonomy.Taxonomy = taxonomy.DEFAULT) -> list[str]:
    """The mitigation: how the adapter was trained, then the before/after pooled by trained and held-out groups,
    the gap change and over-refusal (the Mitigation page's tables), with the honesty note. The first item is the
    section's heading."""
    manifest = result.manifest
    split = result.by_split[result.by_split["kind"] == "attack"]
    sources = ", ".join(f"{name} {count}" for name, count in manifest["chosen_sources"].items())
    base = labels.scrub_paths(str(manifest["base"]["spec"]))
    return [f"<h2>Mitigation: {_e(result.comparison.candidate.label)} against {_e(result.comparison.base.label)}</h2>",
            f"<p>A LoRA adapter (r={_e(manifest['config']['lora_r'])}, attention projections) trained with DPO "
            f"(beta {_e(manifest['config']['beta'])}, {_e(manifest['steps'])} steps) on {len(manifest['pairs']):,} "
            f"preference pairs of the groups {_e(labels.group_names(result.trained, '', words))}; held out of "
            f"training: {_e(labels.group_names(result.held_out, '', words) if result.held_out else 'none')}. Chosen "
            f"answers: {_e(sources)}. Base <code>{_e(base)}</code> (weights SHA-256 "
            f"<code>{_e(manifest['base']['sha256'][:16])}</code>), adapter SHA-256 "
            f"<code>{_e(manifest['adapter_sha256'][:16])}</code>.</p>",
            f"<p class='note'>{_e(result.honesty_note())}</p>",
            "<h3>Training loss</h3>", _loss_curve(result.losses),
            "<h3>Defense Rate before and after, trained and held-out groups</h3>",
            _table(split[["language", "split", "groups", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                          "p_adjusted"]], words, formats={"groups": _group_list(words)}),
            "<h3>Selective-safety gap</h3>",
            _table(result.gaps[["language", "groups", "base_gap", "cand_gap", "change", "ci_low", "ci_high",
                                "p_adjusted"]], words, formats={"groups": _group_list(words)}),
            "<h3>Over-refusal (control probes refused)</h3>",
            _table(result.over_refusal[["language", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                                        "p_adjusted"]], words)]


def _group_list(words: taxonomy.Taxonomy) -> Callable[[Any], str]:
    """A `groups` cell that may hold a count or group keys (a list or a comma-separated string)."""
    def shown(value: Any) -> str:
        if labels.missing(value):
            return labels.DASH
        if isinstance(value, (int, np.integer, float)):
            return labels.count(value)
        keys = [k.strip() for k in value.split(",")] if isinstance(value, str) else list(value)
        return labels.group_names(keys, "", words)
    return shown


def write_report(store: Store, path: str | Path, judge: str = "refusal",
                 filters: dict[str, Sequence[str] | str | None] | None = None,
                 comparison: RunComparison | None = None, mitigation: BeforeAfter | None = None) -> dict:
    """Write the report to `path`; returns its summary (models, completions, probe set hash...)."""
    text, summary = build_report(store, judge, filters, comparison, mitigation)
    Path(path).write_text(text, encoding="utf-8")
    return summary
