# The project's own virtual environment; everything below goes through it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := service scheduler agent env artifacts

.PHONY: install run test e2e lint bench clean-venv

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

# Real mode end to end: anvil + Uniswap V3 at mainnet addresses + the real Gateway v2.13
# (built from ../shared/gateway-e2e into a cache dir). Skips with the reason without node >= 20.
e2e: $(STAMP)
	CLMMD_E2E=1 $(BIN)/python -m pytest -q -p no:randomly tests/e2e

# mypy cannot follow setuptools' editable-install finder, so it reads the packages through
# .lint/clmmd/<package> links: module names come out as clmmd.<package>.<module>.
lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES) tests bench
	$(BIN)/ruff format --check $(SOURCES) tests bench
	mkdir -p .lint/clmmd && for p in $(SOURCES); do ln -sfn ../../$$p .lint/clmmd/$$p; done
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	cd bench && ../$(BIN)/python run_all.py

clean-venv:
	rm -rf $(VENV)
