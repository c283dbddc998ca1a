# The two commands: `make run` and `make test`. Both set up everything they need first.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup setup-test setup-bench run test check format bench bench-quick clean

help:
	@echo "make run     set up (venv, Chromium, fonts) and serve on http://$(HOST):$(PORT) in dev mode"
	@echo "make test    set up (plus caddy) and run the whole test suite"
	@echo "make check   ruff format --check, ruff check, mypy"
	@echo "make bench   full benchmark (~5 min); make bench-quick (< 2 min)"

setup:
	@bash scripts/setup.sh

setup-test:
	@bash scripts/setup.sh --test

run: setup
	$(VENV)/bin/ogproxy serve --dev --host $(HOST) --port $(PORT)

test: setup-test
	$(PY) -m pytest $(PYTEST_ARGS)

# The benchmark also needs wrk, caddy and the Node peers (installed into bench/peers).
setup-bench:
	@bash scripts/setup.sh --bench

bench: setup-bench
	$(PY) bench/run.py

bench-quick: setup-bench
	$(PY) bench/run.py --quick

check: setup
	$(VENV)/bin/ruff format --check ogproxy tests clients/python
	$(VENV)/bin/ruff check ogproxy tests clients/python
	$(VENV)/bin/mypy ogproxy clients/python/ogproxy_sign

format: setup
	$(VENV)/bin/ruff format ogproxy tests clients/python
	$(VENV)/bin/ruff check --fix ogproxy tests clients/python

clean:
	rm -rf $(VENV) .ogproxy .pytest_cache .mypy_cache .ruff_cache
