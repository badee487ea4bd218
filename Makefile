# duetime — the two front-door commands are `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: run test lint bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[api,test,dev,bench]'
	touch $(STAMP)

install: $(STAMP)

# `make run`: a working scheduler with the demo jobs within seconds (SQLite, ./duetime.db).
run: export PYTHONPATH := $(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH))
run: export DUETIME_JOBS := examples.jobs
run: $(STAMP)
	$(BIN)/duetime init
	@echo "duetime: the admin API key is in .duetime/admin.key (printed once by init above)"
	@echo "duetime: in another terminal try  .venv/bin/duetime runs list  or  .venv/bin/duetime show-schedule"
	$(BIN)/duetime run --load examples/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
