# Quick start: `make demo` then `make test`. Both create .venv if it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: demo test test-slow lint install install-dev models wrong-labels toy bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel

# The face models (third-party, never in git) go to the user cache; a failed fetch only warns: the
# webcam falls back to Haar and the tests that need the models fetch again or skip with the reason.
# opencv-python (GUI) and opencv-python-headless (an albumentations dependency) write the same cv2/ files and
# the last installed wins: gazeneg.webcam.cv2_gui reinstalls the GUI build last, at its installed version, and checks
# that cv2 then has a GUI backend (where the GUI build cannot load, it keeps headless and says so).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e .
	-$(BIN)/python -m gazeneg.webcam.cv2_gui fix
	-$(BIN)/python -m gazeneg.webcam.model_files fetch
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e ".[dev]"
	-$(BIN)/python -m gazeneg.webcam.cv2_gui fix
	-$(BIN)/python -m gazeneg.webcam.model_files fetch
	touch $(STAMP) $@

# Fetch (or check) the face-landmark model files in the user cache (GAZENEG_CACHE overrides it).
models: | $(BIN)/python
	$(BIN)/python -m gazeneg.webcam.model_files fetch

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
	$(BIN)/ruff check gazeneg scripts tests benchmarks studies

wrong-labels: $(STAMP)
	$(BIN)/python scripts/eval_wrong_labels.py --quick

toy: $(STAMP)
	$(BIN)/gazeneg toy

bench: $(STAMP)
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf runs data/synthetic
