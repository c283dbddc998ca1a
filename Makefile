# The two commands: `make run` and `make test`. Both set up everything they need first.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup setup-test run test check format clean

help:
	@echo "make run     set up (venv, Chromium, fonts) and serve on http://$(HOST):$(PORT) in dev mode"
	@echo "make test    set up (plus caddy) and run the whole test suite"
	@echo "make check   ruff format --check, ruff check, mypy"

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

run: setup
	$(VENV)/bin/ogproxy serve --dev --host $(HOST) --port $(PORT)

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

check: setup
	$(VENV)/bin/ruff format --check ogproxy tests
	$(VENV)/bin/ruff check ogproxy tests
	$(VENV)/bin/mypy ogproxy

format: setup
	$(VENV)/bin/ruff format ogproxy tests
	$(VENV)/bin/ruff check --fix ogproxy tests

clean:
	rm -rf $(VENV) .ogproxy .pytest_cache .mypy_cache .ruff_cache
