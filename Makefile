# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup system-packages demo test lint docs bench clean
SUDO = $(shell [ "$$(id -u)" = 0 ] || echo sudo)

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "geo_mz needs Python 3.11+"'
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "python3-venv is missing; installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	@touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/geo-mz demo --out out

# ruff, then the package layering (import-linter contract in pyproject.toml: lower layers never
# import higher ones; analysis packages never import each other).
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# Debian packages the tests use: Chromium and its driver (browser tests of the offline map and
# the web map), CJK fonts, PostgreSQL with PostGIS (the PostGIS tests start a throwaway cluster
# themselves), and npm when no npm is on the PATH (it fetches the national county polygons).
DEB_PACKAGES = chromium chromium-driver fonts-noto-cjk postgresql postgresql-15-postgis-3
system-packages:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if ! command -v npm >/dev/null 2>&1; then missing="$$missing npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

# The tests, then the documentation with every warning an error (its notebooks executed).
test: system-packages lint
	$(BIN)/pytest
	$(MAKE) docs

# The documentation (docs/): API reference and the notebooks, executed; every warning is an error.
# -E: a fresh environment each time, so every notebook runs and every warning is reported;
# -T: a failing notebook cell prints its traceback (nb_execution_raise_on_error stops the build).
SPHINXOPTS ?= -W --keep-going -n -E -T
docs: setup
	@$(BIN)/python -c 'import sphinx, numpydoc, myst_nb, furo' 2>/dev/null || \
	  $(BIN)/pip install -q -e ".[docs]"
	$(BIN)/sphinx-build $(SPHINXOPTS) -b html -d docs/_build/doctrees docs docs/_build/html

bench: setup
	$(BIN)/pip install -q -e ".[dev,bench]"
	$(BIN)/python bench/bench_foundation.py
	$(BIN)/python bench/bench_network.py
	$(BIN)/python bench/bench_isochrones.py
	$(BIN)/python bench/bench_relief.py
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_osm.py

clean:
	rm -rf out .pytest_cache .ruff_cache .hypothesis docs/_build
