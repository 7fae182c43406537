"""core/files/reading.py, the one reading layer for input files: each check on its own, located as FILE:LINE[:COLUMN]."""
from __future__ import annotations

import gzip
import os

import pytest

from core.files.reading import (MAX_JSON_DEPTH, CSVTable, JSONProblem, check_file, deep_dotted_key_line, gunzip, json_objects,
                         nesting_depth, parse_json, read_utf8, text_problem, toml_problem, utf8_lines)


class Refused(ValueError):
    pass


def test_json_nested_200000_deep_is_refused_before_the_parser_recurses():
    with pytest.raises(JSONProblem) as caught:
        parse_json('{"a": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert caught.value.at("f.jsonl", 3) == f"f.jsonl:3:{7 + MAX_JSON_DEPTH - 1}: JSON nested deeper than 64 levels"
    assert parse_json("[" * 63 + "]" * 63) is not None  # 63 arrays in an object-free line: within the limit
    assert parse_json('{"a": "' + "[" * 1000 + '"}') == {"a": "[" * 1000}  # brackets inside a string are text


def test_a_5000_digit_number_is_refused_not_a_value_error():
    with pytest.raises(JSONProblem, match="a number of 5,000 digits, longer than the limit of 100") as caught:
        parse_json('{"n": ' + "1" * 5000 + "}")
    assert caught.value.column == 7
    assert parse_json('{"n": 12345678901234567890}') == {"n": 12345678901234567890}


@pytest.mark.parametrize("text,column,reason", [
    ('{"a": "x\\udc80"}', 9, "field 'a': a lone surrogate \\udc80"),
    ('{"a": "\\ud800x"}', 8, "field 'a': a lone surrogate \\ud800"),
    ('{"a": ["ok", "\\u0000"]}', 15, "field 'a[1]': a NUL character"),
    ('{"\\u0000": 1}', 3, "a key: a NUL character"),
])
def test_nul_and_lone_surrogates_are_refused_where_they_are(text, column, reason):
    with pytest.raises(JSONProblem) as caught:
        parse_json(text)
    assert caught.value.column == column and reason in caught.value.reason
    assert parse_json('{"a": "\\ud83d\\ude00"}') == {"a": "\U0001F600"}  # a pair is one character


def test_a_field_over_the_limit_is_refused_and_the_limit_is_a_setting(monkeypatch):
    assert "2,000 characters, longer than the limit of 1,000 for one field" in text_problem("x" * 2000, 1000)
    monkeypatch.setenv("AUDIT_MAX_FIELD_CHARS", "10")
    with pytest.raises(JSONProblem, match="field 'a': 11 characters, longer than the limit of 10"):
        parse_json('{"a": "' + "y" * 11 + '"}')


def test_json_objects_locates_every_problem_and_ends_records_at_newline_only():
    text = '{"a": 1}\n\n[1]\n{"b": "one\u2028two"}\n{"c": tru\n'
    assert list(json_objects(text, "f")) == [(1, {"a": 1}), (3, "f:3: expected a JSON object per line"),
                                             (4, {"b": "one\u2028two"}), (5, "f:5:7: invalid JSON: Expecting value")]


def test_the_path_missing_a_directory_or_a_pipe_is_refused(tmp_path):
    with pytest.raises(Refused, match=r"nothing\.csv: no such file \(the labels file\)"):
        check_file(tmp_path / "nothing.csv", "labels file", Refused)
    with pytest.raises(Refused, match=": is a directory, not a file"):
        read_utf8(tmp_path, "taxonomy file", Refused)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(Refused, match="not a regular file"):
        read_utf8(tmp_path / "pipe", "claims file", Refused)


def test_not_utf8_is_located_by_line_and_column_also_when_streamed(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes(b"a,b\nok,fine\nx,caf\xe9\n")
    with pytest.raises(Refused, match=r"a\.csv:3:6: not UTF-8 \(byte 0xe9\)"):
        read_utf8(path, "file", Refused)
    with pytest.raises(Refused, match=r"a\.csv:3:6: not UTF-8 \(byte 0xe9\)"):
        list(utf8_lines(path, "file", Refused))


@pytest.mark.parametrize("text,message", [
    ('a,b\n1,2\n3,"never closed\n4,5\n', "f:3:3: malformed CSV record: the quote opened here is never closed"),
    ('a,b\n1,"two\nlines"x,y\n', "f:2:3: malformed CSV record: the quote opened here closes on line 3, column 6"),
    ("a,b\n", "f:2: no rows after the header"),
    ("a,b\n\n  ,\n", "f:2: no rows after the header"),
    ("", "f:1: the file is empty"),
    ("a,b\n1,x\x00y\n", "f:2:2: column 'b': a NUL character at character 2"),
])
def test_csv_problems_are_located(text, message):
    with pytest.raises(Refused) as caught:
        table = CSVTable(text, "f", Refused)
        list(table.rows())
    assert str(caught.value).startswith(message), str(caught.value)


def test_csv_rows_are_named_by_their_first_line_and_blank_rows_skipped():
    table = CSVTable('a,b\n1,"x\ny"\n\n2,z\n', "f", Refused)
    assert table.header == ["a", "b"] and list(table.rows()) == [(2, ["1", "x\ny"]), (5, ["2", "z"])]


def test_toml_nesting_and_long_numbers_are_found_outside_strings_and_comments():
    assert toml_problem('a = "[[[["\n# [[[[[\nb = 1\n') is None
    assert toml_problem("x = " + "[" * 70) == (1, 5 + MAX_JSON_DEPTH, "nested deeper than 64 levels")
    assert toml_problem('t = "' + "1" * 500 + '"\nn = ' + "2" * 5000 + "\n") == (
        2, 5, "a number of 5,000 digits, longer than the limit of 100")


def test_dotted_keys_nest_without_brackets_and_are_counted_too():
    assert deep_dotted_key_line("x = 1\n[" + ".".join(["a"] * 65) + "]\n") == 2
    assert deep_dotted_key_line("y." + ".".join(["a"] * 70) + " = 1\n") == 1
    assert deep_dotted_key_line('title = "' + "a." * 100 + '"\n[a.b.c]\n') is None
    assert nesting_depth({"a": [[1], {"b": 2}]}) == 3 and nesting_depth(5) == 0
    deep: dict = {}
    for _ in range(100_000):
        deep = {"a": deep}
    assert nesting_depth(deep) == MAX_JSON_DEPTH + 1  # stops counting past the limit, never recurses


def test_gunzip_refuses_what_is_not_gzip_cut_short_or_too_large(monkeypatch):
    data = gzip.compress(b"x" * 100_000)
    assert gunzip(data, "f.gz", Refused) == b"x" * 100_000
    with pytest.raises(Refused, match="f.gz:1: not a gzip file"):
        gunzip(b"plain text", "f.gz", Refused)
    with pytest.raises(Refused, match=r"f.gz:1: the gzip data ends early"):
        gunzip(data[:40], "f.gz", Refused)
    monkeypatch.setenv("AUDIT_MAX_INPUT_MB", "0.001")
    with pytest.raises(Refused, match="decompressed, the file is larger than"):
        gunzip(data, "f.gz", Refused, ratio=2)
