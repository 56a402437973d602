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
# Two pytest workers, one test file each at a time (every cluster has its own 127.0.N network);
# the fault suite runs afterwards on its own, since its nftables rules match the test OS users
# that every cluster shares.
test: deps
	$(BIN)/ruff check src tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy src
	$(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile -m "not faults" tests
	$(BIN)/pytest -q -p no:cacheprovider -m faults tests

# Side by side with Patroni 4.1.5, about 45 minutes (the last 10-20: plaintext against TLS + auth,
# pgwarden only); scripts/install-bench-deps.sh installs Patroni into .venv-patroni, and ab, when
# missing.
# `make bench BENCH_ARGS=--quick` for the short set (about 8 minutes).
bench: deps
	@bash scripts/install-bench-deps.sh
	$(BIN)/python -m bench.run $(BENCH_ARGS)
