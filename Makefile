# The two commands a user needs: `make run` and `make test`.
# Both run the same idempotent setup first (scripts/setup.sh).
SHELL := /bin/bash
VENV := .venv/bin
RUN_SPEC ?= topologies/paper-c.yaml
PYTEST_ARGS ?=

.PHONY: setup run test lint typecheck unit clean

setup:
	@scripts/setup.sh

run: setup
	$(VENV)/testbed replay $(RUN_SPEC)

lint: setup
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .

typecheck: setup
	$(VENV)/mypy

test: setup lint typecheck
	$(VENV)/pytest $(PYTEST_ARGS)

clean:
	rm -rf .venv node_modules .setup .mypy_cache .ruff_cache .pytest_cache
