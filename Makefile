# The two commands: `make run` and `make test`. Both set up everything they need first.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help setup setup-venv setup-test setup-bench run test test-fast coverage check format bench bench-quick docs-images clean

# The fast suite (the HTTP and CLI contract on the fake renderer) waits on sockets and
# processes more than it computes: four workers overlap the waits. The system suite
# (Chromium, SeaweedFS, Caddy) waits on browsers and servers about half the time: two
# workers, each test file on one of them (a file's browser is launched once).
FAST := -m "not system" -n 4
# Bytecode cached between runs (some environments set PYTHONDONTWRITEBYTECODE): each of
# the five test processes compiles the package and the rewritten tests in ~3 s otherwise.
test test-fast coverage: export PYTHONDONTWRITEBYTECODE :=
SYSTEM := -m system -n 2 --dist loadfile --durations=15

help:
	@echo "make run     set up (venv, Chromium, fonts) and serve on http://$(HOST):$(PORT) in dev mode"
	@echo "make test    set up (plus caddy) and run the whole test suite"
	@echo "make test-fast  the tests that need no Chromium and no S3 server (pytest -m 'not system'), in seconds"
	@echo "make coverage  both suites with the package's line coverage"
	@echo "make check   ruff format --check, ruff check, mypy (no browser needed)"
	@echo "make bench   full benchmark (~5 min); make bench-quick (< 2 min)"
	@echo "make docs-images  the README's template cards (docs/templates)"

setup:
	@bash scripts/setup.sh

# The checks and the fast tests need the virtualenv only: no Chromium, no fonts.
setup-venv:
	@bash scripts/setup.sh --venv

setup-test:
	@bash scripts/setup.sh --test

run: setup
	$(VENV)/bin/ogproxy serve --dev --host $(HOST) --port $(PORT)

test: setup-test
	$(PY) -m pytest $(FAST) $(PYTEST_ARGS)
	$(PY) -m pytest $(SYSTEM) $(PYTEST_ARGS)

test-fast: setup-venv
	$(PY) -m pytest $(FAST) $(PYTEST_ARGS)

# Both suites with the package's line coverage (one report).
coverage: setup-test
	$(PY) -m pytest $(FAST) --cov=ogproxy --cov-report= $(PYTEST_ARGS)
	$(PY) -m pytest $(SYSTEM) --cov=ogproxy --cov-append --cov-report=term $(PYTEST_ARGS)

# The benchmark also needs wrk, caddy and the Node peers (installed into bench/peers).
setup-bench:
	@bash scripts/setup.sh --bench

bench: setup-bench
	$(PY) bench/run.py

bench-quick: setup-bench
	$(PY) bench/run.py --quick

check: setup-venv
	$(VENV)/bin/ruff format --check ogproxy tests bench clients/python
	$(VENV)/bin/ruff check ogproxy tests bench clients/python
	$(VENV)/bin/mypy ogproxy tests bench clients/python/ogproxy_sign

format: setup-venv
	$(VENV)/bin/ruff format ogproxy tests bench clients/python
	$(VENV)/bin/ruff check --fix ogproxy tests bench clients/python

# The README's template cards (small palette PNGs, committed): one JSON line each.
docs-images: setup
	$(VENV)/bin/ogproxy render --input docs/templates/cards.jsonl --out-dir docs/templates --cache-dir build/docs-cache

clean:
	rm -rf $(VENV) .ogproxy .pytest_cache .mypy_cache .ruff_cache
