# Every target works on a fresh clone: targets that need the virtualenv depend on `install`.
SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OPENSPEC_DIR := $(VENV)/openspec
OPENSPEC := OPENSPEC_TELEMETRY=0 $(OPENSPEC_DIR)/node_modules/.bin/openspec
OPENSPEC_VERSION := 1.13.2
SIM_PORT ?= 4002
SIM_CONTROL_PORT ?= 4080

.PHONY: install migrate run sim test test-python test-debug test-live openspec-validate lint bench populate-cache

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm install --silent --no-audit --no-fund --prefix $(OPENSPEC_DIR) @fission-ai/openspec@$(OPENSPEC_VERSION)
	touch $@

migrate: install
	$(PY) -m alembic -c alembic/alembic.ini upgrade head

run: install migrate
	$(PY) -m uvicorn backend.main:app --host 127.0.0.1 --port 8000

sim: install
	$(PY) -m backend.ibkr_simulator --host 127.0.0.1 --port $(SIM_PORT) --control-port $(SIM_CONTROL_PORT)

test: install test-python openspec-validate

test-python: install
	$(PY) -m pytest

openspec-validate: install
	$(OPENSPEC) validate --all --strict --no-interactive

lint: install
	$(VENV)/bin/ruff check backend scripts tests alembic
