# Quick start: `make demo` then `make test`. Both create .venv if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test test-slow lint install install-dev wrong-labels toy bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP) $@

install: $(STAMP)
install-dev: $(STAMP_DEV)

# Render the default synthetic data set, train the default CNN, evaluate it, print the run folder.
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

test: $(STAMP_DEV)
	$(BIN)/python -m pytest -q

test-slow: $(STAMP_DEV)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP_DEV)
	$(BIN)/ruff check gazeneg scripts tests benchmarks

wrong-labels: $(STAMP)
	$(BIN)/python scripts/eval_wrong_labels.py --quick

toy: $(STAMP)
	$(BIN)/python scripts/toy_ascent.py

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf runs data/synthetic
