"""A run resumes the same way from the CLI and from the Run page: one rebuild of its targets and judges.

The judges here are the ones the issue names: `refusal`, an `llm:` judge on a target saved in the store
(which only the store can resolve) and a bare `ensemble` (which only means something inside its list).
The target and the judge model are the real SmolLM2 with a few tokens, over two probes.
"""
from __future__ import annotations

import pytest

from ui.jobs import JobManager
from core.probes.builder import build_bundled
from core.probes.selection import Selection, select
from core.run.runner import plan_run
from core.store import Store
from core.targets.local import smollm2_gguf
from tests.fixtures.cli import run_cli

pytestmark = pytest.mark.model  # runs and judges on the embedded default model

JUDGES = ["refusal", "llm:judge-model", "ensemble"]


def _planned(db_path) -> tuple[Store, str]:
    """A run as `python -m core run --judges refusal,llm:judge-model,ensemble` plans it, not executed yet."""
    store = Store(db_path)
    store.save_target("judge-model", "local", str(smollm2_gguf()), family="smollm2", size_b=0.135,
                      settings={"batch_size": 8})
    selection = Selection(languages=("en",), groups=("black",), strategies=("persona_assign", "chaining"),
                          per_cell=1)
    probes = select(build_bundled(), selection)
    assert len(probes) == 2
    config = {"selection": selection.to_dict(), "sources": [],
              "generation": {"max_new_tokens": 4, "batch_size": 8, "temperature": 0.0, "seed": 0}}
    return store, plan_run(store, probes, ["smollm2"], JUDGES, config)


def test_run_page_resumes_a_run_planned_with_a_bare_ensemble_and_a_saved_judge_model(db_path, smollm2):
    store, run_id = _planned(db_path)
    manager = JobManager()
    job = manager.resume(db_path, run_id)
    manager.wait(run_id, timeout=600)
    assert job.error is None and job.status == "completed"
    assert store.run_counts(run_id)["completions"] == 2
    labels = store.verdict_labels(JUDGES, {"run_id": run_id})
    assert sorted(labels.judge.value_counts().items()) == [("ensemble", 2), ("llm:judge-model", 2), ("refusal", 2)]


def test_cli_resumes_the_same_planned_run(db_path, cli_env):
    import json


    store, run_id = _planned(db_path)
    done = run_cli("run", "--db", str(db_path), "--run-id", run_id, "--json", env=cli_env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "completed"
    labels = store.verdict_labels(JUDGES, {"run_id": run_id})
    assert sorted(labels.judge.value_counts().items()) == [("ensemble", 2), ("llm:judge-model", 2), ("refusal", 2)]
