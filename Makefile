# Each target installs what is missing first (a no-op in seconds when all is there), then runs.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: deps up down test test-unit test-integration lint typecheck bench docs

deps:
	@bash scripts/install-deps.sh

up: deps
	$(BIN)/pgwarden up

down: deps
	$(BIN)/pgwarden down

lint: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports

typecheck: deps
	$(BIN)/mypy src

test-unit: deps
	$(BIN)/pytest -q tests/unit tests/sim

test-integration: deps
	$(BIN)/pytest -q tests/integration

# Everything CI runs: static checks, then every test (unit, simulation, real clusters).
test: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy src
	$(BIN)/pytest -q -p no:cacheprovider tests

bench: deps
	$(BIN)/python -m bench.run
