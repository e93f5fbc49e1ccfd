# The two commands of README.md. Each creates .venv and installs the pinned dependencies first
# (again only when pyproject.toml or requirements.lock change).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NBMAKE_TIMEOUT ?= 1800  # seconds per chapter, when `make test` has to execute one
# test processes: most tests wait on a browser, a server or a child process, so two share
# two cores well. Each file's tests stay in one process (--dist loadfile), and PyTorch uses
# one thread per process (OMP_NUM_THREADS=1), so the two do not fight over the cores.
TEST_WORKERS ?= 2
JOBS ?=  # models trained at once by `make models`; empty = one per CPU core

# The pins in requirements.lock are resolved for Python 3.11: say so before pip fails to resolve them.
CHECK_PYTHON = $(1) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null || { \
	echo "vae-book needs Python 3.11 (requirements.lock pins wheels built for it); $(1) is" \
	"$$($(1) --version 2>/dev/null || echo 'not found'). Install Python 3.11, then run make PYTHON=python3.11," \
	"or delete $(VENV) if it was made with another Python." >&2; exit 1; }

.PHONY: book test models bench lab setup clean clean-cache check-python

book: models
	$(BIN)/jupyter-book build . --all -W --keep-going  # --all: library changes do not mark pages stale
	$(BIN)/python tests/book_stamp.py  # what this passing build executed: `make test` need not run it again

test: models
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=$(NBMAKE_TIMEOUT) \
		-n $(TEST_WORKERS) --dist loadfile

# Train every model the chapters load that is not cached yet, several at once (seconds when cached).
models: $(STAMP)
	$(BIN)/python -m vaelib $(if $(strip $(JOBS)),--jobs $(JOBS))

# Training speed side by side (a few minutes); writes vaelib/bench_results/, rendered by the appendix.
bench: $(STAMP)
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/parallel_models.py

# JupyterLab from the venv, opened on the chapters: its Python 3 kernel is the venv's Python,
# so vaelib and the pins are there. Trains what the chapters need first (seconds when cached).
lab: models
	$(BIN)/jupyter lab --ServerApp.root_dir=notebooks

setup: $(STAMP)

check-python:
	@$(call CHECK_PYTHON,$(PYTHON))

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(call CHECK_PYTHON,$(PYTHON))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(call CHECK_PYTHON,$(BIN)/python)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

clean:
	rm -rf _build

clean-cache:
	rm -rf .cache
