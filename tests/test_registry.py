"""Targets and judges are what their modules register: errors and CLI help list the registry, not a copy of it."""
from __future__ import annotations

import subprocess

import pytest

from core.cli import build_parser
from core.judges import JUDGES, UnknownJudge, resolve_judge, resolve_judges
from core.registry import Entry
from core.targets import RUNNABLE_BACKENDS, TARGETS, UnknownTarget, resolve_target
from core.targets.base import Capabilities
from tests.fixtures.paths import PYTHON, ROOT

TARGET_KINDS = ["smollm2", "gemma3-270m", "local:PATH", "openai:MODEL@BASE_URL"]
JUDGE_KINDS = ["refusal", "llm:<target spec>", "ensemble:<judge>+<judge>+...", "ensemble", "learned:PATH", "encoder:PATH",
               "average:PATH"]


def test_the_registries_hold_the_kinds_their_modules_define():
    assert TARGETS.names() == TARGET_KINDS
    assert JUDGES.names() == JUDGE_KINDS
    assert RUNNABLE_BACKENDS == ("local", "openai")
    with pytest.raises(ValueError, match="registered twice"):
        TARGETS.register("smollm2", "again")(lambda rest, settings: None)


def test_an_unknown_target_names_every_registered_kind_including_a_new_one(monkeypatch, db_path):
    with pytest.raises(UnknownTarget) as caught:
        resolve_target("nope")
    assert str(caught.value) == ("unknown target 'nope'; use smollm2, gemma3-270m, local:PATH, openai:MODEL@BASE_URL "
                                 "or the name of a saved target")
    toy = Entry("toy:", "toy:NAME", "a target for this test", lambda rest, settings: ("toy", rest, settings))
    monkeypatch.setitem(TARGETS._entries, "toy:", toy)
    assert resolve_target("toy:x", seed=3) == ("toy", "x", {"seed": 3})
    with pytest.raises(UnknownTarget, match=r"openai:MODEL@BASE_URL, toy:NAME or the name of a saved target"):
        resolve_target("nope")


def test_an_unknown_judge_names_every_registered_kind_including_a_new_one(monkeypatch):
    with pytest.raises(UnknownJudge) as caught:
        resolve_judge("nope")
    assert str(caught.value) == f"unknown judge 'nope'; known judges: {', '.join(JUDGE_KINDS)}"
    toy = Entry("toy", "toy", "a judge for this test", lambda rest, context: "the toy judge")
    monkeypatch.setitem(JUDGES._entries, "toy", toy)
    assert resolve_judges(["toy"]) == ["the toy judge"]
    with pytest.raises(UnknownJudge, match=r"average:PATH, toy$"):
        resolve_judges(["refusal", "nope"])


def test_cli_help_lists_every_registered_kind(capsys):
    for command in ("run", "judge", "judge-eval"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert all(kind in text.replace("- ", "-") for kind in JUDGE_KINDS), command
        assert "the offline heuristic" in text  # each kind's own help line
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "smollm2, gemma3-270m, local:PATH, openai:MODEL@BASE_URL or a saved target's name" in text


def test_listing_the_kinds_loads_no_model_library():
    code = ("import runpy, sys\nsys.argv = ['core', 'run', '--help']\ntry:\n    runpy.run_module('core', run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('core.judges.refusal' in sys.modules, 'core.targets.openai' in sys.modules,"
            " sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')))")
    done = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "True True []"  # the providers registered; no model library loaded


def test_targets_declare_what_they_can_do():
    api = resolve_target("openai:m@http://127.0.0.1:9/v1", max_concurrency=3, batch_size=5)
    assert api.capabilities == Capabilities(concurrent=True, concurrency=3, run_batch_size=12, batch_size=12)
    assert api.unreachable is None and api.api_stats()["requests"] == 0
    local = resolve_target("smollm2", batch_size=5)  # built, not loaded
    caps = local.capabilities
    assert (caps.prefill, caps.concurrent, caps.run_batch_size, caps.batch_size) == (True, False, 0, 5)
    assert local.unreachable is None and local.api_stats() is None
    local.close()
    api.close()


def test_the_run_page_estimates_only_targets_computed_here():
    from core.run.request import LOCAL_LOAD_S, LOCAL_TOKENS_PER_S, estimate_seconds

    # a guess for models computed here (no earlier run in a store): full-length answers plus loading each model
    seconds, basis = estimate_seconds(10, ["smollm2", "local:/models/x"], 17)
    assert seconds == 10 * 2 * 17 / LOCAL_TOKENS_PER_S + 2 * LOCAL_LOAD_S and "a guess" in basis
    assert estimate_seconds(10, ["smollm2", "openai:m@http://127.0.0.1:9/v1"], 17)[0] is None
    assert estimate_seconds(10, ["a-saved-target"], 17)[0] is None
