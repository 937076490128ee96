# Stagegate: `make run` starts the portal, `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
export STAGEGATE_VAR_DIR ?= $(CURDIR)/var

.PHONY: run test install install-dev lint typecheck mutation mutation-gate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.runtime: $(BIN)/python requirements.txt
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev node_modules/.installed

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

test: install-dev
	scripts/install-system-deps.sh
	$(MAKE) --no-print-directory lint typecheck
	$(BIN)/python scripts/testenv.py -- scripts/test-stages.sh

# The gated functions of mutation-floors.toml against their floors. Not yet
# part of `make test`: the floors are re-measured on the merged code first.
mutation-gate: install-dev
	$(BIN)/python scripts/testenv.py -- scripts/mutation.sh --gate --check

# Mutation testing of the critical modules: prints each one's score and the
# mutants no test kills (`.venv/bin/mutmut show <name>` shows one).
mutation: install-dev
	$(BIN)/python scripts/testenv.py -- scripts/mutation.sh

clean:
	rm -rf $(VENV) var mutants .mypy_cache .pytest_cache .ruff_cache
