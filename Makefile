# The quickstart: `make demo` runs the example app on a local OpenBao dev server,
# `make test` runs the whole suite. Both create .venv and install from pyproject.toml.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint format bench docs dist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs,example,prometheus]'
	touch $(STAMP)

install: $(STAMP)

## Local OpenBao dev server + the example app (DATABASE=postgresql for the local PostgreSQL,
## DATABASE=dynamic for short-lived users from Vault's database secrets engine on it).
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## The whole suite against real servers (OpenBao is started by the tests; PostgreSQL if installed),
## after the docs build (warnings are errors there too).
test: $(STAMP) docs
	-@scripts/ensure-postgres.sh
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

## Everything except tests marked slow or cluster.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not cluster"

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check flask_vault
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format flask_vault

## Benchmarks: starts its own OpenBao dev server; writes benchmarks/RESULTS.md.
bench: $(STAMP)
	$(BIN)/python -m benchmarks

## The docs site (Sphinx) into docs/_build/html; any warning fails the build.
docs: $(STAMP)
	$(BIN)/python -m sphinx -W --keep-going -E -q -b html docs docs/_build/html

## The sdist and wheel into dist/, checked by twine.
dist: $(STAMP)
	rm -rf dist build
	$(BIN)/python -m build --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info docs/_build dist build
