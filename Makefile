# assistd — the two set-up commands are `make serve` and `make test`; both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the server with the embedded defaults (SQLite in ./data, 127.0.0.1:8000).
serve: install
	$(BIN)/assistd db upgrade
	$(BIN)/assistd serve

## Run the linter and the test suite.
test: install lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

## Run the benchmarks (ratios measured side by side in one run).
bench: install
	$(BIN)/python bench/crud.py

clean:
	rm -rf $(VENV) build *.egg-info
