# The commands the README and CI run. Each sets up what it needs first.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup demo test test-long lint unit integration bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "engagement-stream needs Python 3.11; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/engagement demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

unit: setup
	$(BIN)/pytest tests/unit -q

integration: setup
	$(BIN)/pytest tests/integration -q

# The long tier (tests marked `long`, each a minute or more end to end) is left out so that
# CI stays well under 30 minutes; run it before a release with `make test-long`.
test: lint
	@sh ops/bin/install-test-tools
	$(BIN)/pytest -q -m "not long"

test-long: setup
	@sh ops/bin/install-test-tools
	$(BIN)/pytest -q -m long

bench: setup
	$(BIN)/engagement bench --out bench-results.json

clean:
	rm -rf $(VENV) .engagement .mypy_cache .ruff_cache .pytest_cache
