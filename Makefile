# Stagegate: `make run` starts the portal, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
export STAGEGATE_VAR_DIR ?= $(CURDIR)/var

.PHONY: run test install install-dev lint typecheck coverage-report mutation mutation-gate \
	test-azure-live bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.txt
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

# The latest mlflow 2.x client, for the tests of 2.x compatibility
# (tests/experiments/test_client_mlflow2.py runs a script with it).
.venv-mlflow2/.installed: requirements-mlflow2.txt
	$(PYTHON) -m venv .venv-mlflow2
	.venv-mlflow2/bin/pip install -q -r requirements-mlflow2.txt
	touch $@

# MLflow's own tracking server, for the side-by-side benchmark only (its pins
# conflict with ours).
.venv-mlflow-server/.installed: requirements-mlflow-server.txt
	$(PYTHON) -m venv .venv-mlflow-server
	.venv-mlflow-server/bin/pip install -q -r requirements-mlflow-server.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev node_modules/.installed .venv-mlflow2/.installed

$(STAGEGATE_VAR_DIR)/secret_key:
	mkdir -p $(STAGEGATE_VAR_DIR)
	umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: install $(STAGEGATE_VAR_DIR)/secret_key
	export DJANGO_SECRET_KEY_FILE=$(STAGEGATE_VAR_DIR)/secret_key; \
	$(BIN)/python manage.py migrate --no-input -v0 && \
	$(BIN)/python manage.py collectstatic --no-input -v0 && \
	$(BIN)/python manage.py seed_demo && \
	echo "  Starting web, worker and beat; the address follows when the portal answers." && \
	HOST=$(HOST) PORT=$(PORT) PATH=$(CURDIR)/$(BIN):$$PATH exec $(BIN)/supervisord -c supervisord.conf

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

typecheck: install-dev
	DJANGO_DEBUG=true $(BIN)/mypy .

# Every check: lint, types, the test suite under coverage.py (the pytest
# process, the Celery workers it starts and the live server's threads; the
# .pth file coverage installs starts it in each Python process that sees
# COVERAGE_PROCESS_START), the combined coverage report against its floor,
# then the mutation gate.
test: install-dev
	scripts/install-system-deps.sh
	$(MAKE) --no-print-directory lint typecheck
	rm -f .coverage .coverage.*
	COVERAGE_PROCESS_START=$(CURDIR)/pyproject.toml \
	  $(BIN)/python scripts/testenv.py -- scripts/test-stages.sh
	$(MAKE) --no-print-directory coverage-report
	$(MAKE) --no-print-directory mutation-gate

# Combine the data files of a coverage run and print line and branch coverage
# with the uncovered lines of each file; fails below [tool.coverage.report]
# fail_under.
coverage-report:
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

# The gated functions of mutation-floors.toml against their floors; prints the
# survivors. The last step of `make test`.
mutation-gate: install-dev
	$(BIN)/python scripts/testenv.py -- scripts/mutation.sh --gate --check

# Mutation testing of the critical modules: prints each one's score and the
# mutants no test kills (`.venv/bin/mutmut show <name>` shows one).
mutation: install-dev
	$(BIN)/python scripts/testenv.py -- scripts/mutation.sh

# Read-only checks against a real Azure ML workspace. Not part of `make test`;
# refuses to run (exit 2, naming what is missing) without credentials.
test-azure-live: install-dev
	$(BIN)/python scripts/azure-live-check.py
	STAGEGATE_AZURE_LIVE=1 $(BIN)/python scripts/testenv.py -- \
	  scripts/test-stages.sh tests/cloud/live -p no:warnings

# Benchmarks with a same-run baseline and a ratio (docs/operations.md).
bench: install-dev .venv-mlflow-server/.installed
	$(BIN)/python bench/datasets_profile.py
	$(BIN)/python bench/cloud_local_start.py --runs 5
	$(BIN)/python scripts/testenv.py -- $(BIN)/python bench/experiments_tracking.py
	$(BIN)/python scripts/testenv.py -- $(BIN)/python bench/jobs.py --runs 5

clean:
	rm -rf $(VENV) .venv-mlflow2 .venv-mlflow-server var mutants .mypy_cache .pytest_cache .ruff_cache .coverage .coverage.*
