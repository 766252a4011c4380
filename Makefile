# EffortLens: two commands. `make run` serves the workbooks, `make test` checks everything.
# Both create the virtual environment on first use and are fast the second time.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

VENV := .venv
PY := $(VENV)/bin/python
# Python 3.11 or newer for the virtual environment.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || \
	(python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && command -v python3))
DEFAULT_DATA := $(abspath sample_data/generated/default)
# The data the workbooks open: `make run DATA=/path/to/folder`, else $EFFORTLENS_DATA, else the sample.
DATA ?= $(or $(EFFORTLENS_DATA),$(DEFAULT_DATA))
HOST := 127.0.0.1
PORT ?= 8866
LAB_PORT ?= 8888
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Voilà finds the EffortLens landing-page template (voila.json names it) in share/jupyter.
export JUPYTER_PATH := $(CURDIR)/share/jupyter$(if $(JUPYTER_PATH),:$(JUPYTER_PATH))
# The sample is generated only when the workbooks are to open it.
NEEDS_SAMPLE := $(if $(filter $(DEFAULT_DATA),$(abspath $(DATA))),sample)

.PHONY: help run lab test sample lint format strip clean

help:
	@echo "make run     serve every workbook with Voila on http://$(HOST):$(PORT)"
	@echo "make lab     open the workbooks in JupyterLab (same venv, same data)"
	@echo "make test    install test extras and Chromium if missing, run pytest"
	@echo "make sample  generate the default sample data into $(DEFAULT_DATA) if missing"
	@echo "make lint    ruff check and format check (make format fixes what it can)"
	@echo "make strip   strip outputs and metadata from workbooks/*.ipynb"
	@echo "make clean   remove generated data, caches and test artifacts (keeps .venv)"

$(PY):
	@test -n "$(PYTHON)" || { echo "EffortLens needs Python 3.11 or newer (python3.11 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml changed; the stamps live in the venv.
$(VENV)/.installed-lab: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[lab]"
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test,lab]"
	touch $@ $(VENV)/.installed-lab

# Debian's Chromium for the browser tests (never a browser download of Playwright's own).
/usr/bin/chromium:
	@SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends chromium

sample: $(VENV)/.installed-lab
	@env -u EFFORTLENS_DATA $(PY) -c 'from effortlens_widgets import default_data_dir as d; d()'

run: $(VENV)/.installed-lab $(NEEDS_SAMPLE)
	@echo "EffortLens is served at http://$(HOST):$(PORT)/  (data: $(DATA); Ctrl-C stops it)"
	EFFORTLENS_DATA="$(abspath $(DATA))" $(VENV)/bin/voila workbooks --Voila.ip=$(HOST) --port=$(PORT) --no-browser

lab: $(VENV)/.installed-lab $(NEEDS_SAMPLE)
	EFFORTLENS_DATA="$(abspath $(DATA))" $(VENV)/bin/jupyter lab --ServerApp.ip=$(HOST) --ServerApp.port=$(LAB_PORT) \
		--LabApp.default_url=/lab/tree/workbooks/00_start_here.ipynb \
		$(if $(filter 0,$(shell id -u)),--allow-root)

test: $(VENV)/.installed-test /usr/bin/chromium
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check lib widgets tests bench
	$(VENV)/bin/ruff format --check lib widgets tests bench

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff check --fix lib widgets tests bench
	$(VENV)/bin/ruff format lib widgets tests bench

strip: $(VENV)/.installed-lab
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --inplace \
		--ClearOutputPreprocessor.enabled=True \
		--ClearMetadataPreprocessor.enabled=True \
		--ClearMetadataPreprocessor.preserve_nb_metadata_mask=kernelspec \
		workbooks/*.ipynb

clean:
	rm -rf sample_data/generated test-artifacts .cache .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
