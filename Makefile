# Two commands on a fresh machine: `make demo` and `make test`. Everything else is a helper.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
STAMP  := $(VENV)/.installed
UV_VERSION := 0.13.9
LOCK_INPUTS := requirements.txt requirements-dev.txt constraints.txt pyproject.toml

.PHONY: venv test test-fast test-heavy test-distributed test-ui lint demo ui lock bench emulator clean

venv: $(STAMP)

# Build the virtualenv from the committed lock (constraints.txt pins every transitive version).
$(STAMP): $(LOCK_INPUTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -r requirements-dev.txt -c constraints.txt -e . \
	  || $(BIN)/python -m pip install -r requirements-dev.txt -c constraints.txt -e .
	touch $(STAMP)

test: venv
	$(BIN)/python -m pytest tests -q

test-fast: venv
	$(BIN)/python -m pytest tests -q -m "not e2e"

# The end-to-end tests of 30 s or more (marker `heavy`: the events e2e, ledger recovery,
# reconcile), which `make test` skips to stay within its 10 minutes; CI runs both.
test-heavy: venv
	ENCORD_INGEST_HEAVY=1 $(BIN)/python -m pytest tests -q -m heavy

# The demo on a real CeleryExecutor stack (tests/distributed): Debian's Redis and Postgres (installed
# when missing), scheduler, dag-processor, triggerer, api-server and two Celery workers.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
test-distributed: venv
	command -v redis-server >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	  || { $(SUDO) apt-get update && $(SUDO) apt-get install -y redis-server postgresql; }
	$(BIN)/uv pip install --compile-bytecode --python $(BIN)/python -e ".[celery]" -c constraints.txt
	ENCORD_INGEST_DISTRIBUTED=1 $(BIN)/python -m pytest tests/distributed -q -x --timeout 1800

# `make ui` end to end (tests/ui): standalone starts, the API lists the demo DAGs, SIGTERM stops all.
test-ui: venv
	ENCORD_INGEST_UI=1 $(BIN)/python -m pytest tests/ui -q -x -s

lint: venv
	$(BIN)/ruff check dags plugins include tests bench tools
	$(BIN)/ruff format --check dags plugins include tests bench tools docs README.md
	$(BIN)/mypy

demo: venv
	$(BIN)/python tools/demo.py

ui: venv
	$(BIN)/python tools/demo.py --ui --port $(PORT)

bench: venv
	$(BIN)/python bench/run_all.py

emulator: venv
	PYTHONPATH=tools $(BIN)/python -m encord_emulator --port 8765

# Re-resolve the lock after editing requirements*.txt or the extras in pyproject.toml (needs the
# package registry). The extras are locked too, so workers and the images get the same versions.
lock:
	$(BIN)/uv pip compile --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
	  requirements-dev.txt pyproject.toml --all-extras -o constraints.txt --no-header --annotation-style line

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache
