"""Property-based tests (hypothesis) of the option surfaces: generated values (nan, inf, negatives, huge, zero,
text, blanks, unicode digits) for the numeric options of `run` and `targets add` and for run ids and target
names, given to core.cli.main in this process. Whatever the value: the exit code is 0 only where the value follows
its rule, 2 otherwise with the option named, never an exception, and a refused value leaves the database file
unchanged (sha256).

A valid value must not start anything heavy, so `run` is fuzzed with --plan (it sizes the selection and stops,
exit 0) in a read-only session; run ids, which --plan does not take, get as far as the read-only refusal."""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import shutil

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from core import cli
from core.options import ID_PATTERN, NUMBERS, OptionError, check_id, check_number
from tests.fixtures import dashboard_db

QUICK = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

RUN_NUMBERS = ("batch-size", "max-new-tokens", "temperature", "seed", "per-cell", "max-concurrency", "ray-workers",
               "price-input", "price-output")
ADD_NUMBERS = ("max-concurrency", "rpm", "tpm", "timeout", "max-retries", "max-new-tokens", "temperature",
               "price-input", "price-output", "outage-failures", "outage-window", "size-b")

# What a person may type for a number: floats of every kind, integers near and far from every bound, and text.
typed = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10 ** 20, max_value=10 ** 20).map(str),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e9", "1e-9", "-0", "0", "0.0", "1", "2", "2.0000001",
                     "4096", "4097", "1024", "1025", "86400", "abc", "", " ", " 5 ", "1_000", "0x10", "\uff15", "5e",
                     "--", "1,5", "\x00", "1" * 400]),
)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "audit.duckdb"
    dashboard_db.build(path)
    return path


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def _env(**values: str | None):
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _expected(name: str, text: str):
    """What argparse and the rule make of the text: the checked value, or None where either refuses it."""
    rule = NUMBERS[name]
    try:
        value = int(text) if rule.integer else float(text)
    except ValueError:
        return None
    try:
        return rule.check(value)
    except OptionError:
        return None


def _main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = cli.main(argv)  # an exception escaping here is a traceback a user would see: the test fails
    finally:
        captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.err


@QUICK
@given(name=st.sampled_from(RUN_NUMBERS), text=typed)
@example(name="ray-workers", text="0")
@example(name="batch-size", text="0")
@example(name="temperature", text="nan")
@example(name="batch-size", text="16")  # valid values: they get as far as the read-only refusal
@example(name="temperature", text="0.7")
def test_run_numbers(database, capsys, name, text):
    before = _digest(database)
    selection = [] if name == "per-cell" else ["--per-cell", "1"]
    with _env(AUDIT_READONLY="1", AUDIT_DB=None):
        code, err = _main(["run", "--plan", "--languages", "en", "--groups", "black", *selection, f"--{name}={text}",
                           "--db", str(database), "--json"], capsys)
    if _expected(name, text) is None:
        assert code == 2 and f"--{name}" in err, err
    else:
        assert code == 0, err  # planned, nothing run
    assert _digest(database) == before


@QUICK
@given(name=st.sampled_from(ADD_NUMBERS), text=typed)
@example(name="rpm", text="-1")
@example(name="timeout", text="nan")
@example(name="outage-window", text="inf")
@example(name="timeout", text="30")  # valid values: saved
@example(name="price-input", text="0")
def test_targets_add_numbers(database, tmp_path_factory, capsys, name, text):
    """A good value is saved (exit 0) in a copy of the database; a bad one is refused and the copy is unchanged."""
    db = tmp_path_factory.mktemp("add") / "audit.duckdb"
    shutil.copy(database, db)
    before = _digest(db)
    with _env(AUDIT_READONLY=None, AUDIT_DB=None):
        code, err = _main(["targets", "add", "fuzzed", "--model", "m", "--base-url", "http://127.0.0.1:9/v1",
                           f"--{name}={text}", "--db", str(db)], capsys)
    if _expected(name, text) is None:
        assert code == 2 and f"--{name}" in err, err
        assert _digest(db) == before
    else:
        assert code == 0, err


ids = st.one_of(st.text(max_size=140), st.from_regex(ID_PATTERN, fullmatch=True),
                st.sampled_from(["../x", "<b>x</b>", "a/b", "a b", ".hidden", "-flag", "x" * 129, "x" * 128, "r1",
                                 "demo-smollm2", "model@127.0.0.1:8000", "a,b", "\u0661", "x\n"]))


@QUICK
@given(run_id=ids)
@example(run_id="../x<b>")
@example(run_id="demo-smollm2")
def test_run_ids(database, capsys, run_id):
    before = _digest(database)
    with _env(AUDIT_READONLY="1", AUDIT_DB=None):
        code, err = _main(["run", f"--run-id={run_id}", "--db", str(database), "--quiet"], capsys)
    assert code == 2
    if ID_PATTERN.fullmatch(run_id) is None:
        assert err.startswith("error: --run-id ") and "an id is 1 to 128" in err, err
    else:
        assert err.startswith("error: read-only: run would write to"), err
    assert _digest(database) == before


@QUICK
@given(name=ids)
@example(name="my-server")
@example(name="openai:x")
def test_target_names(database, capsys, name):
    before = _digest(database)
    with _env(AUDIT_READONLY="1", AUDIT_DB=None):
        code, err = _main(["targets", "add", "--model", "m", "--db", str(database), "--", name], capsys)
    assert code == 2
    if ID_PATTERN.fullmatch(name) is None:
        assert err.startswith("error: target name ") and "an id is 1 to 128" in err, err
    elif ":" in name or name in ("smollm2", "gemma3-270m"):
        assert "no ':'" in err, err
    else:
        assert err.startswith("error: read-only: targets add would write to"), err
    assert _digest(database) == before


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(sorted(NUMBERS)),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 20, 10 ** 20),
                       st.booleans(), st.text(max_size=5), st.none()))
def test_the_rule_accepts_exactly_the_finite_values_in_range(name, value):
    rule = NUMBERS[name]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    good = number and math.isfinite(value) and rule.low <= value <= rule.high and not (rule.above and value == rule.low) \
        and (not rule.integer or float(value).is_integer())
    if good:
        assert check_number(name, value) == value
    else:
        with pytest.raises(OptionError, match=f"^{re.escape(rule.flag)} .*: must be {re.escape(rule.allowed)}$"):
            check_number(name, value)


@settings(max_examples=200, deadline=None)
@given(value=ids)
def test_the_id_rule(value):
    if ID_PATTERN.fullmatch(value):
        assert check_id("--run-id", value) == value
        assert not value.startswith((".", "-")) and "/" not in value and len(value) <= 128
    else:
        with pytest.raises(OptionError, match="an id is 1 to 128"):
            check_id("--run-id", value)
