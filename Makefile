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
# `make run` is one person on this machine: loopback, no login. `make serve` is a team:
# HOST defaults to every address, and a login is required (EFFORTLENS_TOKEN, a password hash
# file EFFORTLENS_PASSWORD_FILE, or a token generated and printed with the URL).
RUN_HOST := 127.0.0.1
HOST := 0.0.0.0
PORT ?= 8866
# Preheated kernels per app (`make run POOL=0`: kernels start only when a page is opened). Each
# holds its app's data: 0.4-0.5 GB each at 10M activities, so 9 apps x POOL kernels (README).
POOL ?= 1
SERVE_ARGS ?=
LAB_PORT ?= 8888
PYTEST_ARGS ?=

export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Voila finds the EffortLens landing-page template (voila.json names it) in the venv's
# share/jupyter: installed there by `pip install .`, linked there for the editable install below.
# The sample is generated only when the workbooks are to open it.
NEEDS_SAMPLE := $(if $(filter $(DEFAULT_DATA),$(abspath $(DATA))),sample)

.PHONY: help run serve hub hub-deps lab test sample lint format strip clean

help:
	@echo "make run     serve every workbook with Voila on http://$(RUN_HOST):$(PORT) (you only)"
	@echo "make serve   publish them to a team on $(HOST):$(PORT), login required (see README)"
	@echo "make hub     JupyterHub in front of the apps on http://127.0.0.1:8000 (see README)"
	@echo "make lab     open the workbooks in JupyterLab (same venv, same data)"
	@echo "make test    install test extras, Chromium and Java if missing, run pytest"
	@echo "make sample  generate the default sample data into $(DEFAULT_DATA) if missing"
	@echo "make lint    ruff check and format check (make format fixes what it can)"
	@echo "make strip   strip outputs and metadata from workbooks/*.ipynb"
	@echo "make clean   remove generated data, caches and test artifacts (keeps .venv)"

$(PY):
	@test -n "$(PYTHON)" || { echo "EffortLens needs Python 3.11 or newer (python3.11 or python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Reinstall only when pyproject.toml, the template or Voila's settings for the environment
# (etc/jupyter/voila.py) changed (an editable install copies them into the venv, where plain
# `voila` finds them from any folder); the stamps live in the venv.
TEMPLATE := $(wildcard share/jupyter/voila/templates/effortlens/*)
$(VENV)/.installed-lab: pyproject.toml $(TEMPLATE) etc/jupyter/voila.py | $(PY)
	$(PY) -m pip install -q -e ".[lab]"
	touch $@

$(VENV)/.installed-test: pyproject.toml $(TEMPLATE) etc/jupyter/voila.py | $(PY)
	$(PY) -m pip install -q -e ".[test,lab,hub,spark]"
	touch $@ $(VENV)/.installed-lab

# Debian's Chromium for the browser tests (never a browser download of Playwright's own).
/usr/bin/chromium:
	@SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends chromium

# Debian's Java runtime for the Spark engine's tests (tests/test_spark.py, Spark local mode).
/usr/bin/java:
	@SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends default-jre-headless

sample: $(VENV)/.installed-lab
	@env -u EFFORTLENS_DATA $(PY) -c 'from effortlens_widgets import default_data_dir as d; d()'

run: $(VENV)/.installed-lab $(NEEDS_SAMPLE)
	@echo "data: $(DATA); Ctrl-C stops the server"
	@# build the facts once (or reuse a current build) before the preheated kernels open them
	$(VENV)/bin/effortlens build "$(abspath $(DATA))" >/dev/null
	$(PY) -m effortlens_serve --no-auth --host $(RUN_HOST) --port $(PORT) --data "$(abspath $(DATA))" \
		--pool $(POOL) --cull-connected 0 $(SERVE_ARGS)

serve: $(VENV)/.installed-lab $(NEEDS_SAMPLE)
	@echo "data: $(DATA); Ctrl-C stops the server"
	$(PY) -m effortlens_serve --host $(HOST) --port $(PORT) --data "$(abspath $(DATA))" \
		--pool $(POOL) $(SERVE_ARGS)

lab: $(VENV)/.installed-lab $(NEEDS_SAMPLE)
	EFFORTLENS_DATA="$(abspath $(DATA))" $(VENV)/bin/jupyter lab --ServerApp.ip=$(RUN_HOST) --ServerApp.port=$(LAB_PORT) \
		--LabApp.default_url=/lab/tree/workbooks/00_start_here.ipynb \
		$(if $(filter 0,$(shell id -u)),--allow-root)

# JupyterHub's proxy from npm, inside the venv (Node.js from Debian when missing).
CHP := $(VENV)/hub/node_modules/.bin/configurable-http-proxy
$(CHP): | $(PY)
	@command -v npm >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		export DEBIAN_FRONTEND=noninteractive; \
		$$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends nodejs npm; }
	npm install --silent --no-audit --no-fund --prefix $(VENV)/hub configurable-http-proxy@^5

hub-deps: $(VENV)/.installed-test $(CHP)

# JupyterHub on http://127.0.0.1:8000 in front of the apps (deploy/jupyterhub/jupyterhub_config.py;
# a trial with any user name and the password in EFFORTLENS_HUB_PASSWORD).
hub: hub-deps $(NEEDS_SAMPLE)
	EFFORTLENS_DATA="$(abspath $(DATA))" $(VENV)/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py

test: $(VENV)/.installed-test /usr/bin/chromium /usr/bin/java $(CHP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check lib widgets serve tests bench
	$(VENV)/bin/ruff format --check lib widgets serve tests bench

format: $(VENV)/.installed-test
	$(VENV)/bin/ruff check --fix lib widgets serve tests bench
	$(VENV)/bin/ruff format lib widgets serve tests bench

strip: $(VENV)/.installed-lab
	$(VENV)/bin/jupyter nbconvert --log-level=WARN --inplace \
		--ClearOutputPreprocessor.enabled=True \
		--ClearMetadataPreprocessor.enabled=True \
		--ClearMetadataPreprocessor.preserve_nb_metadata_mask=kernelspec \
		workbooks/*.ipynb

clean:
	rm -rf sample_data/generated test-artifacts .cache .pytest_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
