# The README's two commands: `make demo` and `make test`. Both create or reuse .venv.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.gazelab-installed
EXTRAS ?= dev,render,cluster,models
PYTEST_ARGS ?=

.PHONY: venv test demo bench clean system-deps

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Reinstall only when the project metadata changes.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

venv: $(STAMP)

# System packages some test markers need (chromium, postgresql); installed with apt when
# running as root, otherwise the script says loudly which markers will be skipped.
system-deps:
	@scripts/system-deps.sh

test: $(STAMP) system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/gazelab demo --out demo_output

bench: $(STAMP)
	$(PY) benchmarks/bench_maps_metrics.py

clean:
	rm -rf demo_output .pytest_cache .hypothesis
