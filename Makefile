# The two commands of README.md. Each creates .venv and installs the pinned dependencies first
# (again only when pyproject.toml or requirements.lock change).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NBMAKE_TIMEOUT ?= 900
JOBS ?=  # models trained at once by `make models`; empty = one per CPU core

.PHONY: book test models bench setup clean clean-cache

book: models
	$(BIN)/jupyter-book build . --all -W --keep-going  # --all: library changes do not mark pages stale

test: models
	$(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT)

# Train every model the chapters load that is not cached yet, several at once (seconds when cached).
models: $(STAMP)
	$(BIN)/python -m vaelib $(if $(strip $(JOBS)),--jobs $(JOBS))

# Training speed side by side (a few minutes); writes bench/results/, rendered by the appendix.
bench: $(STAMP)
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/parallel_models.py

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

clean:
	rm -rf _build

clean-cache:
	rm -rf .cache
