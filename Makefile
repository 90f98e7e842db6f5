# The project's own virtual environment; everything below goes through it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SOURCES := service scheduler agent env artifacts

.PHONY: install run test test-extras e2e lint bench bench-docs clean-venv

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

# The optional extras (rl: gymnasium, stable-baselines3, torch, minari; scale: ray) and the tests
# that need them (marker `extras`; `make test` skips them, naming the missing extra). torch goes
# in first, pinned: this machine kind has that CPU build on disk, while an unpinned torch (as
# stable-baselines3 asks for it) pulls a CUDA build of several GB.
TORCH_SPEC ?= torch==2.13.0
EXTRAS_STAMP := $(VENV)/.installed-extras

$(EXTRAS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet '$(TORCH_SPEC)'
	$(BIN)/python -m pip install --quiet -e '.[dev,rl,scale]'
	touch $(EXTRAS_STAMP)

test-extras: $(EXTRAS_STAMP)
	$(BIN)/python -m pytest -q -m extras

# Real mode end to end: anvil + Uniswap V3 at mainnet addresses + the real Gateway v2.13
# (built from ../shared/gateway-e2e into a cache dir). Skips with the reason without node >= 20.
e2e: $(STAMP)
	CLMMD_E2E=1 $(BIN)/python -m pytest -q -p no:randomly tests/e2e

# mypy cannot follow setuptools' editable-install finder, so it reads the packages through
# .lint/clmmd/<package> links: module names come out as clmmd.<package>.<module>.
lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES) tests bench examples
	$(BIN)/ruff format --check $(SOURCES) tests bench examples
	mkdir -p .lint/clmmd && for p in $(SOURCES); do ln -sfn ../../$$p .lint/clmmd/$$p; done
	$(BIN)/mypy
	$(BIN)/lint-imports

# Exit status 1 when a target is missed (a MISS row) or a benchmark crashed.
bench: $(STAMP)
	cd bench && ../$(BIN)/python run_all.py

# Put the last `make bench` results (bench/results/all.json) into docs/performance.md.
bench-docs: $(STAMP)
	$(BIN)/python bench/docs_table.py

clean-venv:
	rm -rf $(VENV)
