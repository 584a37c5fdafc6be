# The README's two commands: `make demo` (install + the default scenario) and
# `make test` (install + the test suite). Everything lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fedvault-installed

.PHONY: install demo test test-all test-multihost bench-smoke clean

# torch is pinned explicitly: a looser spec pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/fedvault simulate fedavg

# Unit + integration tests (real Flower simulation and real gRPC processes on
# 127.0.0.1); the multi-seed paper-claim reproductions are marked slow; the multi-host
# walk of docs/multihost.md (network namespaces, root, ~3 min) is marked multihost.
test: install
	$(BIN)/python -m pytest -m "not slow and not multihost"

test-multihost: install
	$(BIN)/python -m pytest -m multihost

test-all: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
