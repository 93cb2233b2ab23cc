# The two commands of the README: `make run` and `make test`. Both create the virtual
# environment and install what they need on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck layers bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/authgate serve

lint: $(STAMP)
	$(BIN)/ruff check authgate tests bench
	$(BIN)/ruff format --check authgate tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

layers: $(STAMP)
	$(BIN)/lint-imports

test: lint typecheck layers
	$(BIN)/pytest -n auto

bench: $(STAMP)
	$(BIN)/python -m bench.startup
	$(BIN)/python -m bench.healthz
	$(BIN)/python -m bench.login
	$(BIN)/python -m bench.token

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
