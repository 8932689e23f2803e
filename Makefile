# Two commands: `make run` and `make test` (plus `make bench`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
WEB    := src/hygieia/web

.PHONY: run test lint typecheck pytest bench install web clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3

$(STAMP): pyproject.toml requirements.lock | $(BIN)/python
	$(BIN)/pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Browser assets come from npm (never a CDN, never hand-copied).
web: install
	$(BIN)/python -m hygieia.web.build

run: install web
	$(BIN)/hygieia serve

# ESLint and Prettier (pinned in package-lock.json) come with the web dependencies;
# they check our browser sources only, never node_modules or the bundle in static/app.
# `cd $(WEB) && node_modules/.bin/prettier --write src` formats them.
lint: install web
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	cd $(WEB) && node_modules/.bin/eslint --max-warnings 0 src eslint.config.js
	cd $(WEB) && node_modules/.bin/prettier --check src eslint.config.js

typecheck: install
	$(BIN)/mypy

# Three workers on two cores: most tests wait on subprocesses, browsers and fsyncs.
# Whole files go to one worker, so module-wide servers and browsers start once.
PYTEST_ARGS ?= -n 3 --dist loadfile --durations=15

pytest: install web
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: install web
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
