# Every target creates .venv on first use; DAGSTER_HOME is project-local and git-ignored.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# One Dagster instance per warehouse, so the UI never shows one warehouse's history for another: the warehouse is
# ST_DUCKDB_PATH, else the default of ST_ENVIRONMENT (as st_scheduling/config.py decides), and its instance is
# .dagster_home/<its file name>. A DAGSTER_HOME of your own wins; a run still refuses an instance of another warehouse.
WAREHOUSE := $(or $(ST_DUCKDB_PATH),$(if $(filter-out simulator,$(or $(ST_ENVIRONMENT),simulator)),data/st_scheduling.duckdb,data/simulator.duckdb))
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home/$(basename $(notdir $(WAREHOUSE)))

.PHONY: demo dev webhooks instance sql lint check test week bench clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $@

# The instance: dagster.yaml (SQLite storage under DAGSTER_HOME), with deploy/postgres-storage.yaml appended when
# DAGSTER_PG_HOST is set. Written on every use, so a change of storage takes effect at the next command.
INSTANCE_FILES := dagster.yaml $(if $(DAGSTER_PG_HOST),deploy/postgres-storage.yaml)

## instance: write DAGSTER_HOME/dagster.yaml (PostgreSQL storage when the DAGSTER_PG_* variables are set)
instance:
	mkdir -p $(DAGSTER_HOME) data
	cat $(INSTANCE_FILES) > $(DAGSTER_HOME)/dagster.yaml

## demo: run the platform's main job on the embedded simulator and print a summary
demo: $(BIN)/.installed instance
	$(BIN)/python -m st_scheduling.demo

## dev: the Dagster UI with schedules, sensors and automation running (make dev PORT=3001 for another port)
PORT ?= 3000
dev: $(BIN)/.installed instance
	$(BIN)/dg dev --port $(PORT)

## webhooks: the Scheduling Pro webhook receiver on loopback (make webhooks WEBHOOK_PORT=8781 for another port)
WEBHOOK_PORT ?= 8780
webhooks: $(BIN)/.installed
	$(BIN)/python -m st_scheduling.webhooks serve --port $(WEBHOOK_PORT)

## sql: a DuckDB prompt over the published marts (never blocks a run)
sql: $(BIN)/.installed
	$(BIN)/python -m st_scheduling.sql

## lint: ruff (lint and format), mypy (strict on ingest/, servicetitan/, transform/) and sqlfluff (the SQL models), as configured in pyproject.toml
lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/sqlfluff lint st_scheduling/transform/sql/*.sql

## check: the fast lane, everything but the slow, end-to-end and benchmark tests
check: $(BIN)/.installed
	$(BIN)/pytest -n 2 -m "not slow and not e2e and not bench"

## test: lint, then the full test suite (what CI runs), the week of operation included, with the 25 slowest tests printed
test: lint
	$(BIN)/pytest --durations=25

## week: the week of operation alone, through the daemon's loops on a frozen clock (about 30 minutes)
week: $(BIN)/.installed
	$(BIN)/pytest -m week

## bench: ingestion, marts and incremental refresh against their baselines (about 20 minutes)
bench: $(BIN)/.installed
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .dagster_home data
