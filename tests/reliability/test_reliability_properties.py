"""Property-based tests (hypothesis): the probe and label loaders read back what the project writes and turn
any text into probes or located problems, never an exception; the judges are total on arbitrary unicode."""
from __future__ import annotations

import csv
import io

from hypothesis import HealthCheck, example, given, settings, strategies as st

from core.vocab import taxonomy
from core.judges.evaluation import LabelFileError, load_labels
from core.judges.refusal import classify
from core.judges.rubric import parse_verdict
from core.probes.loader import Problem, ProbeFileError, load_probes, write_probes
from core.probes.schema import Probe, probe_id_for

QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text a probe field may hold: any unicode but NUL and lone surrogates, without surrounding whitespace
# (the loader strips it), RTL overrides, Unicode line breaks and control characters included.
field_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                     max_size=80).map(str.strip)


@st.composite
def probes(draw) -> Probe:
    language = draw(st.sampled_from(taxonomy.LANGUAGES))
    group = draw(st.sampled_from(sorted(taxonomy.GROUPS_BY_LANGUAGE[language])))
    strategy = draw(st.sampled_from(taxonomy.STRATEGIES))
    prompt = draw(field_text.filter(bool))
    source = draw(st.sampled_from(taxonomy.SOURCES))
    return Probe(probe_id=probe_id_for(language, group, strategy, prompt, source), language=language, group=group,
                 seed_text=draw(field_text), scenario_category=draw(st.sampled_from(["", *taxonomy.SCENARIO_CATEGORIES])),
                 scenario=draw(field_text), strategy=strategy, prompt=prompt,
                 kind="control" if strategy == taxonomy.CONTROL else "attack", source=source)


LINE_BREAKS = Probe("p-breaks", "en", "black", "seed\u2028line", "", "a\x85b", "chaining", "one\u2029two\rthree",
                    "attack", "custom")  # Unicode line breaks that JSON leaves unescaped inside strings


@QUICK
@given(st.lists(probes(), min_size=1, max_size=6, unique_by=lambda p: p.probe_id))  # an empty file is refused
@example([LINE_BREAKS])
def test_probes_the_project_writes_load_back_unchanged(tmp_path, written):
    path = tmp_path / "probes.jsonl"
    write_probes(path, written)
    result = load_probes(path)
    assert result.problems == [] and result.probes == written


@QUICK
@given(st.lists(probes(), min_size=1, max_size=6, unique_by=lambda p: p.probe_id))
def test_probes_in_a_spreadsheet_csv_load_back_unchanged(tmp_path, written):
    path = tmp_path / "probes.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["probe_id", "text", "group", "language", "scenario_category", "scenario", "jb_strategy",
                     "jb_prompt", "kind", "source"])
    for p in written:
        writer.writerow([p.probe_id, p.seed_text, p.group, p.language, p.scenario_category, p.scenario, p.strategy,
                         p.prompt, p.kind, p.source])
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    result = load_probes(path)
    assert result.problems == [] and result.probes == written


@QUICK
@given(st.binary(max_size=600), st.sampled_from([".csv", ".jsonl", ".tsv"]))
def test_any_bytes_become_probes_or_located_problems_never_an_exception(tmp_path, data, suffix):
    path = tmp_path / f"any{suffix}"
    path.write_bytes(b"text,group,language,jb_strategy,jb_prompt\n" + data if suffix == ".csv" else data)
    try:
        result = load_probes(path)
    except ProbeFileError as exc:
        assert str(path) in str(exc)
        return
    assert all(isinstance(p, Problem) and p.line >= 1 and p.path == str(path) for p in result.problems)
    assert len(result.probes) + len(result.problems) == result.rows


@QUICK
@given(st.text(max_size=400))
def test_any_labels_text_becomes_items_or_a_located_error(text):
    try:
        items = load_labels(("prompt,completion,label\n" + text).encode("utf-8", "surrogatepass"), "labels.csv")
    except LabelFileError as exc:
        assert all(problem.startswith("labels.csv") for problem in exc.problems)
        return
    assert items and all(item.label in (taxonomy.REFUSED, taxonomy.COMPLIED) and item.line >= 2 for item in items)


unicode_text = st.text(st.characters(), max_size=300)


@settings(max_examples=300, deadline=None)
@given(unicode_text, st.sampled_from(["en", "pt", "", "xx"]), unicode_text, st.sampled_from(["attack", "control", ""]))
def test_refusal_judge_is_total_and_deterministic_on_any_unicode(completion, language, prompt, kind):
    first = classify(completion, language, prompt, kind)
    assert first.label in (taxonomy.REFUSED, taxonomy.COMPLIED)
    assert classify(completion, language, prompt, kind) == first and isinstance(first.rationale, str)


@settings(max_examples=300, deadline=None)
@given(st.one_of(unicode_text, st.builds(lambda k, v: '{"%s": "%s"' % (k, v), unicode_text, unicode_text),
                 st.builds(lambda v: '```json\n{"class": %s}\n```' % v, unicode_text)))
def test_rubric_parse_never_raises_and_keeps_the_raw_text(raw):
    verdict = parse_verdict(raw)
    assert verdict.label in taxonomy.LABELS and verdict.raw == raw
    if verdict.label == taxonomy.UNPARSED:
        assert "unreadable" in verdict.rationale
