# The README's two commands: `make demo` (install + the default scenario) and
# `make test` (install + the test suite). Everything lives in .venv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fedvault-installed

.PHONY: install browser demo test test-all test-multihost bench-smoke clean

# torch is pinned explicitly: a looser spec pulls a multi-GB CUDA build. The tracking extra
# (TensorBoard, MLflow: optional for users) is installed here so that its tests run.
# PYTHONWARNINGS: setuptools warns at every editable install of a layout with several
# top-level packages that a folder named like one of them in the working directory would be
# imported instead; an information with nothing to fix (its 'compat' mode, which does not
# say it, is deprecated), so that one module's UserWarnings are not shown.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHONWARNINGS="ignore::UserWarning:setuptools.command.editable_wheel" \
	  $(BIN)/python -m pip install --quiet "torch==2.13.0" -e ".[dev,tracking]"
	touch $(STAMP)

install: $(STAMP)

# The report screenshot tests (the privacy audit report, `fedvault report`) render pages in
# headless Chromium: Debian's package, since browser downloads of playwright or puppeteer
# need network access of their own at install time. As root it is installed here; otherwise
# that is the one extra step, printed here (the tests skip, saying so, without it).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	      || echo "chromium could not be installed: the report screenshot tests will skip"; \
	  else echo "the report screenshot tests need Chromium: sudo apt-get install chromium"; fi

demo: install
	$(BIN)/fedvault simulate fedavg

# Unit + integration tests (real Flower simulation and real gRPC processes on
# 127.0.0.1); the multi-seed paper-claim reproductions are marked slow; the multi-host
# walk of docs/multihost.md (network namespaces, root, ~3 min) is marked multihost.
test: install browser
	$(BIN)/python -m pytest -m "not slow and not multihost"

test-multihost: install
	$(BIN)/python -m pytest -m multihost

test-all: install browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs .pytest_cache
