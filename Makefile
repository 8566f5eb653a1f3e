# Two commands on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

export PYTHONPATH := $(CURDIR)
# Airflow's environment (home, DAG and plugin folders, UI users...) is written once, in
# scripts/airflow_env.py: the demo and the tests apply it, `make airflow` runs through it.

.PHONY: messages demo test lint test-deep test-cluster cluster bench docs airflow install clean

install: $(VENV)/.installed

# pip's own progress on a terminal; elsewhere (CI, a pipe) a line per step with the time it took.
$(VENV)/.installed: requirements.txt
	@echo "==> install: a virtualenv in $(VENV), then pip, then requirements.txt (about 2 minutes)"
	$(PYTHON) -m venv $(VENV)
	@started=$$(date +%s); if [ -t 1 ]; then shown=--progress-bar=on; else shown=--quiet; fi; \
	$(VENV)/bin/pip install $$shown --upgrade pip && \
	echo "==> install: pip upgraded ($$(( $$(date +%s) - started )) s); requirements.txt next ..." && \
	$(VENV)/bin/pip install $$shown -r requirements.txt && \
	echo "==> install: requirements installed ($$(( $$(date +%s) - started )) s in all)"
	touch $@

demo: install
	$(PY) scripts/demo.py

# Lint, format and type checks first: a finding fails the test run before any test starts.
test: install lint
	$(PY) -m pytest -m "not deep and not cluster" --durations=25

# Airflow's production topology as processes (scripts/cluster.py: PostgreSQL x2, Redis, api-server,
# scheduler, dag-processor, triggerer, two Celery workers), driven over REST; a worker is killed
# mid-archive. Prints the wall time and each component's peak memory. `.ci/run` runs it after `make test`.
test-cluster: install
	$(PY) -m pytest -m cluster tests/cluster --durations=5

# The same topology in the foreground, on the demo CRM: prints the UI's URL and users; Ctrl-C stops it.
cluster: install
	$(PY) scripts/cluster.py $(CLUSTER_ARGS)

# Lint, format check and type check (settings in pyproject.toml): any finding fails.
# The French catalogs (include/retention/locale): add the texts the code marks, drop unused ones.
# Then translate each empty msgstr; tests/include/test_catalogs.py fails while one is missing.
messages: install
	$(PY) scripts/messages.py

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# The oracle's property tests with hundreds of random examples each (HYPOTHESIS_PROFILE=deep),
# and the slow variants marked `deep`; not part of `make test` (hours, not minutes).
test-deep: install
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest tests/oracle && $(PY) -m pytest -m deep --ignore=tests/oracle

# Engine vs hand-written SQL on a throwaway PostgreSQL (N=1M by default; BENCH_ARGS="--rows 5000000"
# for more); writes docs/benchmarks.md. Not part of `make test`.
bench: install
	$(PY) bench/bench.py $(BENCH_ARGS)

# docs/reference/policy.md, written from the policy model's field descriptions; a test fails
# when the committed page is not what this writes.
docs: install
	$(PY) -m include.retention.policy.reference

# The Airflow UI on the demo home, with the seven DAGs and the demo target (run `make demo` first).
# standalone starts its components as `airflow ...` subprocesses: the venv goes first on PATH.
# Ctrl-C stops standalone and every process it started (scripts/process_group.py, through airflow_env.py).
# Below: the demo's target (as scripts/demo.py's DemoHome gives it) and a laptop's parallelism.
# First the targets' missing pools (a task in a missing pool is never scheduled), on a migrated
# database; an existing pool is left as it is (`airflow pools import` would overwrite its size).
airflow: install
	$(PY) scripts/airflow_env.py $(VENV)/bin/airflow db migrate > /dev/null
	$(PY) scripts/airflow_env.py $(VENV)/bin/airflow pools list -o json > .demo/pools_existing.json
	$(PY) -m include.retention_airflow.targets --except-existing .demo/pools_existing.json > .demo/pools.json
	$(PY) scripts/airflow_env.py $(VENV)/bin/airflow pools import .demo/pools.json
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" \
	AIRFLOW_CONN_RETENTION_TARGET='{"conn_type": "sqlite", "host": "$(CURDIR)/.demo/target.db"}' \
	RETENTION_REPORTS_DIR="$(CURDIR)/.demo/reports" \
	AIRFLOW__CORE__PARALLELISM=4 \
	AIRFLOW_VAR_RETENTION_SUBJECT_SECRET="$$(cat .demo/subject_secret)" \
	$(PY) scripts/airflow_env.py $(VENV)/bin/airflow standalone

# The demo's home (target, its certificates and reports) and Airflow's; never reports/, where
# certificates of a real target may be kept.
clean:
	rm -rf .airflow .demo .pytest_cache
