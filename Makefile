# The project's own virtual environment; everything below goes through it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint bench clean-venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/clmmd campaign --episodes $${EPISODES:-20}

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check service scheduler agent env artifacts tests bench
	$(BIN)/ruff format --check service scheduler agent env artifacts tests bench
	$(BIN)/mypy

bench: $(STAMP)
	cd bench && ../$(BIN)/python run_all.py

clean-venv:
	rm -rf $(VENV)
