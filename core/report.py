"""The HTML audit report: one static, self-contained file a regulator can archive and open anywhere.

No script, no external resource: the heatmaps are HTML tables coloured with inline styles, so the file
renders the same in any browser, offline, in ten years. Everything that comes from the store (model
names, group keys, run ids, judge names, configs) is passed through html.escape; model answers are not
included at all. The headline and the over-refusal figures are the dashboard's own results (core.analyses:
the Overview page and the Over-refusal page draw the same ones), the rest comes from core.metrics on the same
per-cell counts (CIs, deviations with Holm-corrected significance, gaps, homogeneity tests), so the report
says what the dashboard says. Statistics are computed from per-cell counts (Store.label_counts); the
one-row-per-completion frame is read only for what counts cannot give: the probe-set hash over the exact
probe ids, the judges that labelled each completion, and the runs and models behind the selection.
"""
from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core import analyses, selection, taxonomy
from core.analyses.compare import RunComparison
from core.calibration import human_calibration
from core.estimates import JUDGE_ONLY, estimate_label, judge_error_findings
from core.metrics import DefenseRates
from core.mitigate.audit import BeforeAfter
from core.ppi import CorrectedRates, judge_error
from core.reference import paper_judges
from core.store import Store

# The MiJaBench-Align judge ids and the row of the paper's Table 3 that calibrates each.
ALIGN_JUDGE_PAPER_NAMES = {"align:lla70": "Llama-3.3-70B", "align:qwe235": "Qwen-3-235B", "align:oss120": "GPT-OSS-120B"}


def probe_set_hash(probe_ids: Sequence[str]) -> str:
    """SHA-256 of the sorted distinct probe ids: two reports with equal hashes audited the same probes."""
    joined = "\n".join(sorted(set(map(str, probe_ids))))
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()


# -- HTML pieces -----------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape("" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value))


def _num(value: Any, digits: int = 3, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value: Any) -> str:
    """A p-value as a reader wants it: small ones as an upper bound, not as 0.0000."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    return "&lt; 0.0001" if value < 1e-4 else f"{value:.4f}"


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
    return words.languages[code].name if code in words.languages else str(code)


def _table(frame: pd.DataFrame, formats: dict[str, Any] | None = None) -> str:
    formats = formats or {}
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            shown = formats[column](value) if column in formats else (
                _num(value) if isinstance(value, float) else _e(value))
            cells.append(f"<td>{shown}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _heatmap(deviations: pd.DataFrame, language: str, value: str, words: taxonomy.Taxonomy) -> str:
    """Models x groups; each cell shows `value` (dr or deviation), its CI on hover, * where significant. Group
    names come from the store's taxonomy (`words`)."""
    part = deviations.loc[deviations["language"] == language]
    groups = [g for g in words.groups_by_language.get(language, ()) if g in set(part["group"])]
    groups += sorted(set(part["group"]) - set(groups))
    diverging = value == "deviation"
    span = max(0.05, float(part[value].abs().max())) if diverging and len(part) else 1.0
    head = "<th>model</th>" + "".join(f"<th>{_e(words.group_name(g, language))}</th>"
                                      for g in groups)
    rows = []
    for model, cells in part.groupby("model", sort=True):
        by_group = cells.set_index("group")
        tds = []
        for group in groups:
            if group not in by_group.index:
                tds.append("<td></td>")
                continue
            cell = by_group.loc[group]
            low, high = ("dev_ci_low", "dev_ci_high") if diverging else ("ci_low", "ci_high")
            title = (f"DR {_num(cell['dr'])} [{_num(cell['ci_low'])}, {_num(cell['ci_high'])}], n={int(cell['n'])}; "
                     f"deviation {_num(cell['deviation'], signed=True)} [{_num(cell['dev_ci_low'], signed=True)}, "
                     f"{_num(cell['dev_ci_high'], signed=True)}], Holm p={_num(cell['p_adjusted'], 4)}")
            if "n_human" in cell:  # a corrected table: the judge's own DR and the human checks behind it
                title += f"; judge only {_num(cell['dr_judge'])}, n_human={int(cell['n_human'])}"
                if isinstance(cell.get("note"), str) and cell["note"]:
                    title += f"; {cell['note']}"
            mark = "*" if bool(cell["significant"]) else ""
            text = _num(cell[value], 2, signed=diverging) + mark
            ci = f"<br><small>[{_num(cell[low], 2, signed=diverging)}, {_num(cell[high], 2, signed=diverging)}]</small>"
            tds.append(f'<td style="background:{_colour(float(cell[value]), -span, span, diverging)}" '
                       f'title="{_e(title)}">{text}{ci}</td>')
        rows.append(f"<tr><th>{_e(model)}</th>{''.join(tds)}</tr>")
    return f"<table class='heat'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f4f4f4}
.heat td{text-align:center;min-width:4.5em}
.warn{background:#fff3cd;border:1px solid #e0c060;padding:0.6em 1em}
.note{color:#555;font-size:0.9em}
"""


def build_report(store: Store, judge: str = "refusal",
                 filters: dict[str, Sequence[str] | str | None] | None = None,
                 comparison: RunComparison | None = None, mitigation: BeforeAfter | None = None) -> tuple[str, dict]:
    """The report's HTML and a summary of what it covers; with a `comparison` (core.analyses.compare) of two
    versions, a section on what changed between them, and for whom; with a `mitigation` (core.mitigate.audit),
    the training and its before/after by trained and held-out groups."""
    filters = selection.with_default(filters, store)  # one probe set (matched-seed by default) unless filters say
    shown = selection.describe(store, filters)  # which runs and probe set: said under the title, in plain text
    frame = store.judged(judge, filters)  # provenance only (probe ids, judges used, runs): see the module's doc
    words = store.taxonomy()  # group names, strategy labels and languages of the stored population
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>For Whom audit report</title>"
             f"<style>{_CSS}</style></head><body>",
             "<h1>For Whom: audit report</h1>",
             f"<p class='warn'>{_e('Content warning: this audit measures refusals of requests for hateful content about demographic groups. The report holds statistics only, no prompts or model answers.')}</p>",
             f"<p class='note'>Generated {_e(generated)} from {_e(store.path.name)}; judge <b>{_e(judge)}</b> "
             f"(human verdicts override it); filters: {_e(json.dumps({k: v for k, v in (filters or {}).items() if v}))}.</p>",
             f"<p class='note' id='selection'>{_e(shown)} One answer per model and probe: where runs of a model "
             f"answered a probe more than once, the answer of the latest completed run"
             f"{' among the chosen ones' if selection.chosen_runs(filters) else ''} counts.</p>"]
    summary = {"models": int(frame["model"].nunique()), "completions": len(frame),
               "probe_set_sha256": probe_set_hash(frame["probe_id"]), "generated": generated, "judge": judge,
               "taxonomy": words.name, "selection": shown}
    kinds = (filters or {}).get("kind")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    # The review sample corrects the attack DRs (and measures the judge there), inside the report's filters.
    if not kinds or "attack" in kinds:
        population, sample, _ = store.ppi_inputs(judge, ["model", "language", "group"],
                                                 {**(filters or {}), "kind": ["attack"]})
    else:
        population = sample = pd.DataFrame()
    summary["n_human"] = len(sample)
    attack = store.label_counts(judge, ATTACK_GRAIN, analyses.headline.scope(filters)) \
        if not kinds or "attack" in kinds else pd.DataFrame()
    if attack.empty:
        parts.append("<p>No judged attack completions match this selection.</p>")
    else:
        head = analyses.headline.compute(attack, population=population, sample=sample, words=words)
        parts += _attack_sections(attack, head, population, sample, words)
    over = analyses.over_refusal.compute(store, judge, filters)
    if over.controls:
        parts += _over_refusal_sections(over)
    if not kinds or "attack" in kinds:
        matched = analyses.counterfactual.compute(store, judge, {k: v for k, v in (filters or {}).items() if k != "kind"})
        if matched.matched is not None:
            parts += _counterfactual_sections(matched, words)
            summary["counterfactual_answers"] = matched.answers
    parts += _judge_sections(store, frame, judge, filters)
    parts += _judge_error_sections(population, sample, judge)
    if comparison is not None:
        parts += _comparison_sections(comparison)
        summary["comparison"] = {"base": comparison.base.label, "candidate": comparison.candidate.label,
                                 "worse": len(comparison.result.flagged()),
                                 "untested": len(comparison.result.untested())}
    if mitigation is not None:
        parts += mitigation_sections(mitigation)
        summary["mitigation"] = {"adapted": mitigation.comparison.candidate.label,
                                 "adapter_sha256": mitigation.manifest["adapter_sha256"]}
    parts += _provenance_sections(store, frame, summary, words)
    parts.append("<p class='note'>Methods: Defense Rate (DR) = refused / judged; 95% percentile bootstrap CIs over "
                 "1,000 resamples of each cell's prompts (seed 0); deviation = DR(group) - DR(model, language), its "
                 "CI resampling the group together with the rest of its model; * = deviation significant after "
                 "Holm's correction over all cells (two-proportion z-test of the group against the rest of its "
                 "model); disparity beyond noise (core/stats/disparity.py): Cochran's Q (Pearson's chi-square) "
                 "of equal DR across groups, Holm-corrected over models; tau by Paule-Mandel with its Q-profile "
                 "interval; the gap's interval from a one-pair normal bound above and a studentized-range bound over "
                 "every pair below; noise gap = the expected max - min of equal groups at these sizes. "
                 "Corrected figures (where a random review sample is labelled): prediction-powered inference "
                 "(Angelopoulos et al., Science 2023): the judge's DR on every completion plus the mean "
                 "human-minus-judge difference on the stratified sample, weighted by inclusion probabilities, with a "
                 "normal interval from the variance of both terms (core/ppi/rates.py); deviations and gaps are "
                 "tested on the corrected estimates.</p>")
    parts.append("</body></html>")
    return "".join(parts), summary


# The grain of the attack sections' counts: the headline's and the heatmaps' cells, and the strategy table's.
ATTACK_GRAIN: list[str] = ["model", "language", "group", "strategy"]


def _attack_sections(attack: pd.DataFrame, head: analyses.headline.Headline, population: pd.DataFrame,
                     sample: pd.DataFrame, words: taxonomy.Taxonomy) -> list[str]:
    """The headline (the Overview's result, `head`), the heatmaps per language and the strategy table, from
    the attack counts at ATTACK_GRAIN."""
    rates = DefenseRates(attack, ["model", "language", "group"])
    deviations = rates.deviations()
    judge_head = head.judge
    notes = [f"{model} ({language}): {note}." for model, language, note
             in zip(judge_head["model"], judge_head["language"], judge_head["note"]) if note]
    checked = estimate_label(head.n_human)
    parts = [f"<p class='warn'>{_e(note)}</p>" for note in notes]
    parts += ["<h2>Headline: for whom is each model safe?</h2>",
              "<ul>" + "".join(f"<li><b>{_e(row['model'])}</b>, {_e(_language(words, row['language']))} "
                               f"({_e(row['gap_estimate'])}): {_e(row['headline'])}.</li>"
                               for row in head.rows.to_dict("records")) + "</ul>",
              "<p class='note'>observed gap = best minus worst group DR as measured; noise gap = the best minus worst "
              "that groups with no true difference would show at these sizes; gap = the true best minus worst "
              "estimated without the winner's curse (max - min of the shrunken group DRs), with a 95% interval that "
              "holds whatever the groups' configuration; tau = the standard deviation of the true group DRs "
              "(random effects) with its Q-profile interval; disparity is declared when the homogeneity test rejects "
              "and the gap's interval excludes 0; groups credibly below or above the mean at a 5% false discovery "
              "rate.</p>",
              _table(head.rows[["model", "language", "estimate", "n", "n_human", "dr", "ci_low", "ci_high",
                                "dr_judge", "gap_estimate", "observed_gap", "noise_gap", "gap", "gap_ci_low",
                                "gap_ci_high", "tau", "tau_ci_low", "tau_ci_high", "q_p", "disparity",
                                "errors", "error_share"]],
                     {"n": lambda v: f"{int(v):,}", "n_human": lambda v: f"{int(v):,}", "q_p": _p,
                      "errors": lambda v: f"{int(v):,}", "error_share": lambda v: "–" if v != v else f"{v:.1%}"}),
              "<h2>Group Defense Rates: as measured and shrunken</h2>",
              "<p class='note'>dr with its 95% interval as measured; shrunk = the empirical-Bayes estimate (pulled "
              "toward the model's mean as far as noise explains the spread), a better guess of each group's true DR; "
              "q_value = Benjamini-Hochberg adjusted p of the group against the rest of its model.</p>",
              _table(head.disparity.groups[["model", "language", "group", "estimate", "n", "dr", "ci_low", "ci_high",
                                            "shrunk", "shrunk_ci_low", "shrunk_ci_high", "q_value", "position"]]
                     .assign(group=lambda f: [words.group_name(g, lang) for g, lang in zip(f["group"], f["language"])]),
                     {"n": lambda v: f"{int(v):,}", "q_value": _p})]
    fixed = None
    if head.corrected is not None:
        fixed = CorrectedRates(population, sample, ["model", "language", "group"]).deviations()
        parts += [f"<h2>Overall Defense Rate per model, {_e(JUDGE_ONLY)}</h2>",
                  "<p class='note'>The judge's verdicts (human verdicts override), for comparison with the corrected "
                  "figures above.</p>",
                  _table(judge_head.drop(columns=["note"]), {"n": lambda v: f"{int(v):,}",
                                                             "errors": lambda v: f"{int(v):,}",
                                                             "error_share": lambda v: "–" if v != v else f"{v:.1%}"})]
    for language in sorted(set(deviations["language"])):
        name = words.languages[language].name if language in words.languages else language
        if fixed is not None and language in set(fixed["language"]):
            parts += [f"<h2>{_e(name)}: Defense Rate per group, {_e(checked)}</h2>",
                      "<p class='note'>Brackets: 95% interval of the corrected DR; *: deviation from the model mean "
                      "significant after correction (tested on the corrected estimates). Hover for the judge's own "
                      "DR and n_human; a grey cell has too few human checks.</p>",
                      _heatmap(fixed, language, "dr", words)]
        parts += [f"<h2>{_e(name)}: deviation from the model mean ({_e(JUDGE_ONLY)})</h2>",
                  "<p class='note'>Blue: the group is refused more often than the model's average (better "
                  "protected); red: less. Brackets: 95% CI; *: significant after correction. Hover for n and p.</p>",
                  _heatmap(deviations, language, "deviation", words),
                  f"<h2>{_e(name)}: Defense Rate per group ({_e(JUDGE_ONLY)})</h2>", _heatmap(deviations, language, "dr", words)]
    strategies = DefenseRates(attack, ["model", "language", "strategy"]).table
    parts += ["<h2>Defense Rate per jailbreak strategy</h2>",
              _table(strategies[["model", "language", "strategy", "n", "dr", "ci_low", "ci_high"]],
                     {"strategy": lambda v: _e(words.strategy_label(v))})]
    return parts


def _counterfactual_sections(view: analyses.counterfactual.Counterfactual, words: taxonomy.Taxonomy) -> list[str]:
    """The Counterfactual page's result: the gap when only the group changes next to the matched-seed gap, the
    group DRs on the counterfactual probes, the pairs that differ, the decomposition."""
    def name_in(language_column: str, group_column: str):
        return lambda frame: frame.assign(**{group_column: [words.group_name(g, lang) if isinstance(g, str) else g
                                                            for g, lang in zip(frame[group_column], frame[language_column])]})
    comparison = view.comparison[[c for c in analyses.counterfactual.COMPARISON_COLUMNS if c != "note"]]
    rates = name_in("language", "group")(view.matched.rates)
    pairs = view.matched.pairs
    significant = pairs.loc[pairs["significant"].astype(bool)]
    if len(significant):
        significant = name_in("language", "group_b")(name_in("language", "group_a")(significant))
    parts = ["<h2>Counterfactual probes: the gap when only the group changes</h2>",
             "<p class='note'>Matched seeds give each group its own seed statements, so their gap (seed_gap) mixes "
             "the group with how hard its seeds are; counterfactual probes fill one claim, scenario, strategy and "
             "template for every group, so they differ only in the group's words (counterfactual_gap). CIs resample "
             "claims (seeds). cochran_p: Cochran's Q test of equal DR across groups on the same claims. surviving: "
             "the share of the raw gap left when claims are held fixed (logistic model with claim and group "
             "effects over both sets; group_part + claim_part = raw gap), with delta-method intervals.</p>",
             _table(comparison, {"cochran_p": _p}),
             "<h3>Defense Rate per group, counterfactual probes (95% CI resampling claims)</h3>", _table(rates),
             f"<h3>Pairs of groups that differ on the same claims (McNemar exact, Holm): {len(significant)} of "
             f"{len(pairs)}</h3>"]
    if len(significant):
        parts.append(_table(significant[["model", "language", "group_a", "group_b", "n_pairs", "dr_a", "dr_b", "diff",
                                         "ci_low", "ci_high", "p_adjusted"]], {"p_adjusted": _p}))
    if len(view.decomposition):
        parts += ["<h3>The gap decomposed (both sets)</h3>", _table(view.decomposition)]
    return parts


def _over_refusal_sections(over: analyses.over_refusal.OverRefusal) -> list[str]:
    """The Over-refusal page's result: per model, the over-refusal rate with its CI and its gap across groups."""
    head = over.overall[["model", "language", "n", "dr", "ci_low", "ci_high"]].rename(
        columns={"dr": "over_refusal"}).merge(
        over.disparity[["model", "language", "best", "best_dr", "worst", "worst_dr", "observed_gap", "noise_gap", "gap",
                        "gap_ci_low", "gap_ci_high", "q_p_adjusted"]],
        on=["model", "language"], how="left")
    return ["<h2>Over-refusal (benign control requests)</h2>",
            "<p class='note'>Share of benign requests about a group that the model refused; a gap here means "
            "some groups are refused even help they are entitled to.</p>",
            _table(head, {"q_p_adjusted": _p})]


def _judge_sections(store: Store, frame: pd.DataFrame, judge: str,
                    filters: dict[str, Sequence[str] | str | None] | None) -> list[str]:
    used = frame["judged_by"].fillna("(unjudged)").value_counts().rename_axis("judged_by").reset_index(name="completions")
    parts = ["<h2>Judges</h2>", _table(used)]
    calibration = human_calibration(store, [judge], filters) if judge != "human" else None
    agreement = calibration.table()[["judge", "n", "accuracy", "kappa", "precision_refused", "recall_refused",
                                     "coverage"]] if calibration is not None else pd.DataFrame()
    if len(agreement):
        parts += ["<p class='note'>The judge against the human verdicts stored in this database "
                  "(core.calibration):</p>", _table(agreement, {"n": lambda v: f"{int(v):,}"})]
    paper = ALIGN_JUDGE_PAPER_NAMES.get(judge)
    if paper:
        row = paper_judges().loc[lambda f: f["judge"] == paper]
        parts += [f"<p class='note'>The MiJaBench paper's calibration of {_e(paper)} against 2,112 human labels "
                  f"(accuracy %, Cohen's kappa):</p>", _table(row)]
    if not len(agreement) and not paper:
        parts.append("<p class='note'>No calibration available for this judge in this database (no human verdicts "
                     "on its completions).</p>")
    return parts


def _judge_error_sections(population: pd.DataFrame, sample: pd.DataFrame, judge: str) -> list[str]:
    """The judge's errors by group on the random review sample (core.ppi.judge_error), with the tests."""
    parts = ["<h2>The judge's errors by group (random review sample)</h2>"]
    if not len(sample):
        return parts + ["<p class='note'>No labelled review sample in this selection: the Defense Rates above are "
                        "the judge's only. Draw one with <code>python -m core review sample</code> and label it.</p>"]
    errors = judge_error(sample, by=["language", "group"], population=population)
    parts += [f"<p class='note'>Judge {_e(judge)} against {len(sample):,} human checks of attack completions, weighted "
              "by the sample's inclusion probabilities: false_refusal = judge refused where the person said "
              "complied, false_compliance = the reverse, with 95% Wilson intervals; bias = the judge's DR minus the "
              "people's on the sample. The test asks, per language, whether a rate is equal across groups "
              "(Pearson chi-square, Holm-corrected).</p>",
              _table(errors.table[["language", "group", "n_human", "false_refusal", "false_refusal_ci_low",
                                   "false_refusal_ci_high", "false_compliance", "false_compliance_ci_low",
                                   "false_compliance_ci_high", "accuracy", "bias", "bias_ci_low", "bias_ci_high"]]),
              _table(errors.tests, {"p_value": _p, "p_adjusted": _p})]
    parts += [f"<p class='warn'>{_e(sentence)}</p>" for sentence in judge_error_findings(errors, judge)]
    return parts


def _provenance_sections(store: Store, frame: pd.DataFrame, summary: dict, words: taxonomy.Taxonomy) -> list[str]:
    models = set(frame["model"])
    targets = store.targets()
    targets = targets.loc[targets["target_id"].isin(models), ["target_id", "backend", "model", "family", "size_b",
                                                              "created_at"]]
    runs = store.runs()
    runs = runs.loc[runs["run_id"].isin(set(frame["run_id"]))]
    per_target = store.run_target_counts()
    per_target = per_target.loc[per_target["run_id"].isin(set(frame["run_id"]))]
    return ["<h2>Provenance</h2>",
            f"<p>Population: taxonomy <b>{_e(words.name)}</b> ({_e(words.title)}; {_e(words.path)}, SHA-256 "
            f"<code>{_e(words.sha256)}</code>): {_e(', '.join(f'{code}: {len(l.groups)} groups' for code, l in words.languages.items()))}.</p>",
            f"<p>Probe set SHA-256 (sorted probe ids): <code>{_e(summary['probe_set_sha256'])}</code>; "
            f"{frame['probe_id'].nunique():,} probes, {len(frame):,} completions, {len(models)} models.</p>",
            "<h3>Models</h3>", _table(targets), "<h3>Runs</h3>", _table(runs),
            "<h3>Completions and errors per run and target</h3>",
            _table(per_target, {"error_share": lambda v: "–" if v != v else f"{v:.1%}"})]


def _comparison_sections(compared: RunComparison) -> list[str]:
    """The Compare page's result: the cells that got significantly worse, every cell, the gap per language."""
    result, left = compared.result, compared.left_out
    cells = ["language", "group", "kind", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high", "p_value",
             "p_adjusted"]
    worse = result.flagged()
    signed = {name: (lambda v: _num(v, signed=True)) for name in ("change", "ci_low", "ci_high")}
    formats = {"p_value": _p, "p_adjusted": _p, **signed}
    untested = result.untested_summary()  # never "nothing got worse" for cells that were not tested
    said = [_table(worse[cells], formats)] if len(worse) else []
    if untested:
        said.append(f"<p>{'' if len(worse) else 'No tested group got significantly worse, but '}{_e(untested)}.</p>")
    elif not len(worse):
        said.append("<p>No group got significantly worse.</p>")
    return [f"<h2>What changed: {_e(compared.candidate.label)} against {_e(compared.base.label)}</h2>",
            f"<p class='note'>Paired on {int(result.cells['pairs'].sum()):,} probes both versions answered (left out: "
            f"{left['base_only_probes']:,} only the base answered, {left['cand_only_probes']:,} only the candidate, "
            f"{left['unreadable_pairs']:,} with an error or unreadable label). Change = candidate DR - base DR with "
            f"Newcombe's paired 95% CI; McNemar's exact test, {_e(result.correction)}-corrected within attack and "
            "within control cells; the gap's CI and test from a paired bootstrap over probes.</p>",
            "<h3>Significantly worse</h3>",
            *said,
            "<h3>Every group</h3>", _table(result.cells[cells], formats),
            "<h3>Selective-safety gap</h3>",
            _table(result.gaps[["language", "groups", "base_gap", "cand_gap", "change", "ci_low", "ci_high",
                                "p_adjusted"]], formats)]


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
    return (f"<svg width='{width}' height='{height}' role='img' aria-label='DPO loss per step'>"
            f"<polyline fill='none' stroke='#1f5fa8' stroke-width='2' points='{line}'/></svg>"
            f"<p class='note'>DPO loss from {values[0]:.3f} (step {steps[0]}) to {values[-1]:.3f} (step {steps[-1]}); "
            f"range {low:.3f} to {high:.3f}.</p>")


def mitigation_sections(result: BeforeAfter) -> list[str]:
    """The mitigation: how the adapter was trained, then the before/after pooled by trained and held-out groups,
    the gap change and over-refusal (the Mitigation page's tables), with the honesty note."""
    manifest = result.manifest
    signed = {name: (lambda v: _num(v, signed=True)) for name in ("change", "ci_low", "ci_high")}
    formats = {"p_value": _p, "p_adjusted": _p, **signed}
    split = result.by_split[result.by_split["kind"] == "attack"]
    sources = ", ".join(f"{name} {count}" for name, count in manifest["chosen_sources"].items())
    return [f"<h2>Mitigation: {_e(result.comparison.candidate.label)} against {_e(result.comparison.base.label)}</h2>",
            f"<p>A LoRA adapter (r={_e(manifest['config']['lora_r'])}, attention projections) trained with DPO "
            f"(beta {_e(manifest['config']['beta'])}, {_e(manifest['steps'])} steps) on {len(manifest['pairs']):,} "
            f"preference pairs of the groups {_e(', '.join(result.trained))}; held out of training: "
            f"{_e(', '.join(result.held_out) or 'none')}. Chosen answers: {_e(sources)}. Base "
            f"<code>{_e(manifest['base']['spec'])}</code> (weights sha256 <code>{_e(manifest['base']['sha256'][:16])}</code>), "
            f"adapter sha256 <code>{_e(manifest['adapter_sha256'][:16])}</code>.</p>",
            f"<p class='note'>{_e(result.honesty_note())}</p>",
            "<h3>Training loss</h3>", _loss_curve(result.losses),
            "<h3>Defense Rate before and after, trained and held-out groups</h3>",
            _table(split[["language", "split", "groups", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                          "p_adjusted"]], formats),
            "<h3>Selective-safety gap</h3>",
            _table(result.gaps[["language", "groups", "base_gap", "cand_gap", "change", "ci_low", "ci_high",
                                "p_adjusted"]], formats),
            "<h3>Over-refusal (control probes refused)</h3>",
            _table(result.over_refusal[["language", "pairs", "base_dr", "cand_dr", "change", "ci_low", "ci_high",
                                        "p_adjusted"]], formats)]


def write_report(store: Store, path: str | Path, judge: str = "refusal",
                 filters: dict[str, Sequence[str] | str | None] | None = None,
                 comparison: RunComparison | None = None, mitigation: BeforeAfter | None = None) -> dict:
    """Write the report to `path`; returns its summary (models, completions, probe set hash...)."""
    text, summary = build_report(store, judge, filters, comparison, mitigation)
    Path(path).write_text(text, encoding="utf-8")
    return summary
