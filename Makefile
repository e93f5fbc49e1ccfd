# The two commands of README.md. Each creates .venv and installs the pinned dependencies first
# (again only when pyproject.toml or requirements.lock change).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NBMAKE_TIMEOUT ?= 900

.PHONY: book test bench setup clean clean-cache

book: $(STAMP)
	$(BIN)/jupyter-book build . --all -W --keep-going  # --all: library changes do not mark pages stale

test: $(STAMP)
	$(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT)

# Training speed side by side (a few minutes); writes bench/results/, rendered by the appendix.
bench: $(STAMP)
	$(BIN)/python bench/train_speed.py

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
