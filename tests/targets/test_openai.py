"""The `openai` target against a loopback OpenAI-compatible server that misbehaves on cue.

Every probe must end with exactly one stored completion or one recorded error, whatever the server
does (429 bursts, 500s, malformed or empty bodies, dropped connections, slow drips, silence); retries
are counted; Retry-After holds back the whole target; the API key reaches the server and nothing else.
"""
from __future__ import annotations

import email.utils
import json
import os
import signal
import threading
import time

import pytest

from core.judges import resolve_judge
from core.stats.rates import DefenseRates
from core.run.runner import execute_run
from core.store import Store
from core.targets import TargetUnavailable, UnknownTarget, resolve_target
from core.targets.openai import retry_after_s
from core.targets.ratelimit import RateLimiter
from tests.fixtures.openai import openai_target, planned_run
from tests.fixtures.fake_openai_server import COMPLIANCE, REFUSAL, default_reply
from tests.fixtures.cli import run_cli
from tests.fixtures.apptest import app_test

KEY_ENV = "FORWHOM_TEST_API_KEY"
KEY = "sk-planted-4f1c9e2b7a6d4e0f8a3b1c5d"  # a fake key planted in the environment, to be searched for


def test_every_probe_ends_with_one_completion_or_one_error_whatever_the_server_does(fake, db_path):
    target = openai_target(fake)
    store, run_id, probes = planned_run(db_path, f"openai:fake-model@{fake.url}")
    poisoned = probes[3]
    fake.always(poisoned.prompt, "500")  # this probe never gets an answer
    fake.script("429", "429", "429", "500", "503", "malformed", "empty", "drop", "400")
    result = execute_run(store, run_id, [target], [resolve_judge("refusal")])

    assert result.status == "completed"
    assert result.counts["planned"] == len(probes) == 15
    assert result.counts["completions"] == 15 and result.counts["errors"] == 2
    assert result.counts["verdicts"] == 13  # errors are never judged
    rows = store.completion_rows({"run_id": run_id}).set_index("probe_id")
    assert rows.index.is_unique and set(rows.index) == {p.probe_id for p in probes}
    errors = rows[rows["error"].notna()]
    assert "gave up after 3 retries" in errors.loc[poisoned.probe_id, "error"]
    assert "HTTP 500" in errors.loc[poisoned.probe_id, "error"]
    bad_request = errors.drop(index=poisoned.probe_id)
    assert len(bad_request) == 1 and bad_request["error"].iloc[0].startswith("HTTP 400")  # not retried
    assert bad_request["error"].iloc[0] == "HTTP 400: fault 400"  # the server's own words, not just the code
    # each answer is stored on its own probe: the server's reply is a function of the prompt
    answered = rows[rows["error"].isna()]
    assert all(text == default_reply(prompt) for text, prompt in zip(answered["completion"], answered["prompt"]))
    assert answered["completion_tokens"].min() > 0 and answered["latency_s"].min() > 0
    # retries: 8 scripted retryable faults + 3 for the poisoned probe; the 400 is final at once
    assert target.stats.retries == 11
    assert target.stats.retry_reasons == {"429": 3, "5xx": 2 + 3, "malformed": 2, "connection": 1}
    assert len(fake.log()) == 15 + 11
    # ... and stored on each completion: the poisoned probe's 3, the other 8 spread over the probes they hit
    assert rows.loc[poisoned.probe_id, "retries"] == 3 and rows["retries"].sum() == 11
    assert (rows.drop(index=poisoned.probe_id)["retries"] >= 0).all() and rows["retries"].max() <= 3
    # errors are counted apart and never as refusals in the Defense Rate
    frame = store.judged("refusal", {"run_id": run_id}).set_index("probe_id")
    assert frame.loc[errors.index, "label"].isna().all()  # errored probes carry no verdict at all
    table = DefenseRates(frame.reset_index(), ["model"], ci=False).table.iloc[0]
    assert table["errors"] == 2 and table["n"] == 13 and table["refused"] + table["complied"] == 13
    assert table["refused"] == (frame["label"] == "refused").sum() and 0 < table["refused"] < 13


def test_retry_after_holds_back_the_whole_target(fake):
    fake.behaviour.latency = 0.05
    fake.behaviour.retry_after = 1.0
    fake.script("429")
    target = openai_target(fake, max_concurrency=4)
    prompts = [f"question {i}" for i in range(12)]
    generations = target.generate(prompts)
    assert [g.text for g in generations] == [default_reply(p) for p in prompts]
    assert sum(g.retries for g in generations) == 1 and target.stats.retry_reasons == {"429": 1}
    log = fake.log()
    limited = next(entry for entry in log if entry.fault == "429")
    retried = [entry for entry in log if entry.prompt == limited.prompt and entry is not limited]
    assert len(retried) == 1 and retried[0].at - limited.at >= 1.0
    # no request of any prompt started while the pause held (those in flight had been sent before it)
    assert not [e for e in log if limited.at + 0.3 < e.at < limited.at + 1.0]


def test_slow_drip_and_silent_server_time_out_and_are_retried(fake):
    fake.behaviour.drip_chunk_delay = 0.3  # each chunk beats a per-read timeout; the whole answer does not
    fake.script("drip", "hang")
    target = openai_target(fake, max_concurrency=2, timeout_s=0.5)
    prompts = ["first", "second", "third"]
    generations = target.generate(prompts)
    assert [g.text for g in generations] == [default_reply(p) for p in prompts]
    assert target.stats.retry_reasons == {"timeout": 2} and target.stats.errors == 0


def test_retry_after_headers_are_read_in_every_form():
    assert retry_after_s({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_s({"retry-after": "3"}) == 3.0
    in_five = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.5 < retry_after_s({"retry-after": in_five}) <= 5.0
    assert retry_after_s({"retry-after": "soon"}) is None and retry_after_s({}) is None


def test_rate_limiter_paces_requests_and_tokens_and_pauses():
    now = [100.0]
    limiter = RateLimiter(requests_per_minute=600, tokens_per_minute=6000, clock=lambda: now[0])
    # 10 requests/s with a one-second burst: the first 11 go at once, then one every 0.1 s
    waits = [limiter.reserve() for _ in range(15)]
    assert waits[:11] == [0.0] * 11 and waits[11:] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    tokens = RateLimiter(tokens_per_minute=6000, clock=lambda: now[0])  # 100 tokens/s
    assert tokens.reserve(150) == 0.0 and tokens.reserve(100) == pytest.approx(0.5)
    tokens.settle(estimated_tokens=100, actual_tokens=20)  # the answer was short: budget handed back
    assert tokens.reserve(10) == pytest.approx(0.7)
    limiter.pause(5.0)
    assert RateLimiter(clock=lambda: now[0]).reserve() == 0.0
    assert limiter.reserve() == pytest.approx(5.0)


def test_cancel_stores_what_was_sent_and_resumes_without_asking_twice(fake, db_path):
    fake.behaviour.latency = 0.2  # the second batch takes about 0.8 s: the cancel comes well before its end
    target = openai_target(fake, max_concurrency=2)  # the runner hands it batches of 4 x 2 = 8, two in flight
    store, run_id, probes = planned_run(db_path, f"openai:fake-model@{fake.url}")
    cancel = threading.Event()
    stopped = execute_run(store, run_id, [target], [resolve_judge("refusal")], batch_size=1,
                          on_progress=lambda p: cancel.set() if p.done >= 8 else None, cancel=cancel)
    kept = stopped.counts["completions"]
    # the first batch, plus the second batch's prompts already sent when the cancel came; those still queued
    # were not sent, and every prompt that was sent has its answer stored
    assert stopped.status == "stopped" and 8 <= kept < 15 and stopped.counts["verdicts"] == kept
    assert len(fake.log()) == kept
    resumed = execute_run(store, run_id, [target], [resolve_judge("refusal")])
    assert resumed.status == "completed" and resumed.added == 15 - kept and resumed.counts["completions"] == 15
    assert sorted(entry.prompt for entry in fake.log()) == sorted(p.prompt for p in probes)  # each asked once


def test_interrupt_during_a_batch_writes_nothing_of_it(fake, db_path):
    fake.behaviour.latency = 0.4
    target = openai_target(fake, max_concurrency=4)
    store, run_id, probes = planned_run(db_path, f"openai:fake-model@{fake.url}")

    def ctrl_c_once_the_first_batch_is_in_flight() -> None:
        deadline = time.monotonic() + 30
        while not fake.log() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C: it also wakes a wait that is blocked

    # Python's own Ctrl-C handler, whatever an earlier test's library left installed (a handler that is not
    # Python's, or none, would let the run complete: seen once in a full `make test`).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        watcher = threading.Thread(target=ctrl_c_once_the_first_batch_is_in_flight)
        watcher.start()
        stopped = execute_run(store, run_id, [target], [resolve_judge("refusal")])
        watcher.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped.status == "stopped" and stopped.counts["completions"] == 0 and stopped.counts["verdicts"] == 0
    fake.behaviour.latency = 0.0
    resumed = execute_run(store, run_id, [target], [resolve_judge("refusal")])
    assert resumed.counts["completions"] == 15 and resumed.counts["errors"] == 0
    assert store.completion_rows({"run_id": run_id})["probe_id"].is_unique


def test_target_specs_and_settings_are_checked(tmp_path, fake):
    target = resolve_target("openai:llama3:8b@http://127.0.0.1:11434/v1/", max_new_tokens=8, batch_size=32)
    assert target.info.target_id == "llama3:8b@127.0.0.1:11434" and target.info.model == "llama3:8b"
    assert target.info.base_url == "http://127.0.0.1:11434/v1" and target.config.max_new_tokens == 8
    assert resolve_target("openai:gpt-4o-mini").info.base_url == "https://api.openai.com/v1"
    with pytest.raises(UnknownTarget, match="credentials"):
        resolve_target("openai:m@http://user:secret@127.0.0.1:1/v1")
    with pytest.raises(UnknownTarget, match="max_concurency"):
        resolve_target(f"openai:m@{fake.url}", max_concurency=3)
    with pytest.raises(UnknownTarget, match="saved target"):
        resolve_target("my-server", store=Store(tmp_path / "x.duckdb"))
    completions = resolve_target(f"openai:fake-model@{fake.url}", endpoint="completions")
    assert [g.text for g in completions.generate(["plain text prompt"])] == [default_reply("plain text prompt")]
    assert fake.log()[-1].path.endswith("/v1/completions")
    assert {REFUSAL, COMPLIANCE} == {default_reply(f"p{i}") for i in range(8)}


def _cli(*args, env, check=True):
    result = run_cli(*args, env=env, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_saved_target_runs_from_the_cli_with_cost_and_the_key_reaches_only_the_server(fake, db_path, cli_env):
    env = {**cli_env, KEY_ENV: KEY}
    db = str(db_path)
    refused = _cli("targets", "add", "my-server", "--model", "fake-model", "--base-url", fake.url, "--api-key-env",
                   "sk-this-is-a-key", "--db", db, env=env, check=False)
    assert refused.returncode == 2 and "NAME of an environment variable" in refused.stderr
    _cli("targets", "add", "my-server", "--model", "fake-model", "--base-url", fake.url, "--api-key-env", KEY_ENV,
         "--max-concurrency", "4", "--max-retries", "2", "--price-input", "2.5", "--price-output", "10", "--db", db,
         env=env)
    listed = json.loads(_cli("targets", "list", "--db", db, "--json", env=env).stdout)
    assert [(t["target_id"], t["settings"]["api_key_env"], t["settings"]["max_concurrency"]) for t in listed] == \
        [("my-server", KEY_ENV, 4)]
    fake.script("429", "500")
    fake.behaviour.retry_after = 0.2
    run = _cli("run", "--target", "my-server", "--languages", "en", "--groups", "black,women", "--per-cell", "1",
               "--run-id", "api", "--db", db, "--json", env=env)
    report = json.loads(run.stdout)
    assert report["status"] == "completed" and report["completions"] == 10 and report["errors"] == 0
    usage = report["usage"][0]
    assert usage["target_id"] == "my-server" and usage["api"]["retries"] == 2
    assert usage["api"]["retry_reasons"] == {"429": 1, "5xx": 1}
    rows = Store(db_path).completion_rows({"run_id": "api"})
    assert usage["prompt_tokens"] == rows["prompt_tokens"].sum() > 0
    assert usage["completion_tokens"] == rows["completion_tokens"].sum() > 0
    assert report["cost"] == pytest.approx(usage["prompt_tokens"] * 2.5e-6 + usage["completion_tokens"] * 1e-5)
    assert {entry.authorization for entry in fake.log()} == {f"Bearer {KEY}"}  # the key is sent...
    again = _cli("run", "--run-id", "api", "--db", db, "--json", env=env)  # resumes: the saved name resolves
    assert json.loads(again.stdout)["added"] == 0 and json.loads(again.stdout)["completions"] == 10
    fake.always("", "401")  # ...and a server that echoes a refused key stops the run, redacted
    denied = _cli("run", "--target", "my-server", "--languages", "en", "--groups", "women", "--per-cell", "1",
                  "--run-id", "denied", "--db", db, "--json", env=env, check=False)
    assert denied.returncode == 1 and f"${KEY_ENV}" in denied.stderr and "Traceback" not in denied.stderr
    assert Store(db_path).run_counts("denied")["completions"] == 0 and Store(db_path).run("denied")["status"] == "failed"
    dump = db_path.with_suffix(".jsonl.gz")
    _cli("dump", str(dump), "--db", db, env=env)
    for output in (refused, run, again, denied):
        assert KEY not in output.stdout + output.stderr
    for path in db_path.parent.iterdir():  # the database, its WAL, the dump
        assert KEY.encode() not in path.read_bytes(), path
    import gzip

    assert KEY not in gzip.open(dump, "rt").read()


def test_ray_executor_spreads_a_run_over_workers_with_the_same_store_semantics(fake, db_path, cli_env, smollm2):
    """A local Ray cluster: two workers each hold the real default model and an API client."""
    fake.script("500", "drop")
    api = f"openai:fake-model@{fake.url}"
    args = ["run", "--target", f"smollm2,{api}", "--languages", "en", "--groups", "black", "--per-cell", "1",
            "--run-id", "ray", "--executor", "ray", "--ray-workers", "2", "--max-concurrency", "2",
            "--max-new-tokens", str(smollm2.max_new_tokens), "--batch-size", "4", "--db", str(db_path), "--json",
            "--quiet"]
    report = json.loads(_cli(*args, env=cli_env).stdout)
    assert report["status"] == "completed" and report["completions"] == 10 and report["errors"] == 0
    assert report["verdicts"] == 10 and report["targets"] == 2
    rows = Store(db_path).completion_rows({"run_id": "ray"})
    assert len(rows) == 10 and not rows.duplicated(["probe_id", "model"]).any()
    by_api = rows[rows["model"] == resolve_target(api).info.target_id]
    assert all(text == default_reply(prompt) for text, prompt in zip(by_api["completion"], by_api["prompt"]))
    assert len(fake.log()) == 5 + 2  # two retried faults, nothing asked twice otherwise
    # the workers' greedy answers are the ones this process's copy of the model gives
    local = rows[rows["model"] == smollm2.info.target_id]
    assert list(local["completion"]) == [g.text for g in smollm2.generate(list(local["prompt"]))]
    again = json.loads(_cli(*args, env=cli_env).stdout)
    assert again["added"] == 0 and len(fake.log()) == 7


def test_missing_key_for_the_openai_api_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    target = resolve_target("openai:gpt-4o-mini")
    with pytest.raises(TargetUnavailable, match="OPENAI_API_KEY"):
        target.generate(["hello"])


def test_run_page_audits_a_saved_target_and_a_typed_spec_with_no_code_change(fake, tmp_path, monkeypatch):

    from ui.jobs import MANAGER
    from core.targets.openai import OpenAIConfig

    path = tmp_path / "audit.duckdb"
    monkeypatch.setenv("AUDIT_DB", str(path))
    monkeypatch.delenv("AUDIT_READONLY", raising=False)
    config = OpenAIConfig(model="fake-model", base_url=fake.url, max_concurrency=4)
    Store(path).save_target("my-api", "openai", config.model, config.base_url, settings=config.settings())
    app = app_test(timeout=120).run()
    app.switch_page("pages/run.py")
    app.run()
    assert not app.exception, [e.value for e in app.exception]

    def widget(kind, key):
        return next(w for w in kind if w.key == key)

    assert "my-api" in widget(app.multiselect, "run_targets").options
    widget(app.multiselect, "run_targets").set_value(["my-api"])
    widget(app.text_input, "run_other").set_value(f"openai:fake-model@{fake.url}")
    widget(app.multiselect, "run_groups").set_value(["black"])
    widget(app.number_input, "run_per_cell").set_value(1)
    app.run()
    fake.script("429")
    fake.behaviour.retry_after = 0.1
    widget(app.button, "run_start").click().run()
    job = MANAGER.jobs(path)[0]
    MANAGER.wait(job.run_id, timeout=120)
    assert job.status == "completed", job.error
    rows = Store(path).completion_rows({"run_id": job.run_id})
    typed = resolve_target(f"openai:fake-model@{fake.url}").info.target_id
    assert sorted(rows["model"].unique()) == [typed, "my-api"]
    assert len(rows) == 10 and rows["error"].isna().all()
    assert all(text == default_reply(prompt) for text, prompt in zip(rows["completion"], rows["prompt"]))
    app.run()
    assert f"{job.run_id}: completed (target 2 of 2: {typed})" in [t.value for t in app.text]
