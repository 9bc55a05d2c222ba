# The two commands a user needs: `make run` and `make test`.
# Both run the same idempotent setup first (scripts/setup.sh).
SHELL := /bin/bash
VENV := .venv/bin
# The main job: the paper's test C (102 prosumers of the synthetic microgrid,
# batteries, L = 5) as a full day on the local backend, in lockstep mode.
RUN_SPEC ?= topologies/paper-c.yaml
RUN_ARGS ?= --set market.clock=lockstep --set chain.block_time_seconds=0 --set deployment.prosumers_per_host=26
PYTEST_ARGS ?=
# the suite mostly waits on real runs: two workers (tests/conftest.py keeps each
# lab's tests on one of them); PYTEST_WORKERS=0 runs it in one process
PYTEST_WORKERS ?= 2

.PHONY: setup setup-tests run test lint typecheck clean

setup:
	@scripts/setup.sh

# the test suite also needs a Docker Engine (installed and started as root)
setup-tests:
	@scripts/setup.sh --tests

run: setup
	$(VENV)/testbed run $(RUN_SPEC) $(RUN_ARGS)

lint: setup-tests
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/lint-imports

typecheck: setup-tests
	$(VENV)/mypy

test: setup-tests lint typecheck
	$(VENV)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

clean:
	rm -rf .venv node_modules .setup .mypy_cache .ruff_cache .pytest_cache
