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
# The browser the browser tests drive (tests/e2e/conftest.py), and how `make test` installs it.
export CHROMIUM ?= /usr/bin/chromium
APT_GET ?= apt-get

.PHONY: install migrate run sim test test-python test-debug test-live test-frontend frontend-types frontend-types-check openspec-validate lint bench populate-cache

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm install --silent --no-audit --no-fund --prefix $(OPENSPEC_DIR) @fission-ai/openspec@$(OPENSPEC_VERSION)
	touch $@

install: frontend/node_modules/.package-lock.json

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	npm ci --silent --no-audit --no-fund --prefix frontend
	touch $@

# The built UI that the backend serves at /.
frontend/dist/index.html: frontend/node_modules/.package-lock.json $(shell find frontend/src frontend/index.html frontend/vite.config.ts -type f 2>/dev/null)
	npm run build --silent --prefix frontend

migrate: install
	$(PY) -m alembic -c alembic/alembic.ini upgrade head

# The embedded default: SQLite, the simulated gateway, a filled cache, API and UI on :8000.
run: install migrate frontend/dist/index.html
	$(PY) scripts/run_local.py

sim: install
	$(PY) -m backend.ibkr_simulator --host 127.0.0.1 --port $(SIM_PORT) --control-port $(SIM_CONTROL_PORT)

test: $(CHROMIUM) install test-python test-debug test-live test-frontend openspec-validate

# The browser tests drive Debian's chromium (browsers cannot be downloaded): checked before
# anything else runs. As root with apt-get it is installed; otherwise make stops and says how.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v $(APT_GET) >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium >/dev/null; \
	fi
	@test -x $@ || { echo "the browser tests need chromium at $@: install it (sudo apt-get install chromium), then run make test again" >&2; exit 1; }

# Everything but the workflow tests, which test-debug and test-live run once each. One worker per
# core (PYTEST_WORKERS=0 runs them in this process): each worker has its own simulator, and every
# test its own databases, so they share nothing but the PostgreSQL server. The load tests, which
# measure latency and budget use, then run alone: beside another worker they would measure it.
PYTEST_WORKERS ?= auto
test-python: $(CHROMIUM) install frontend/dist/index.html
	$(PY) -m pytest -m "not workflow and not load" -n $(PYTEST_WORKERS)
	$(PY) -m pytest -m "load and not workflow"

# Strategy workflows with DEBUG_MODE=true on a cache the simulator filled; asserts no gateway contact.
test-debug: install
	WORKFLOW_MODE=debug $(PY) -m pytest -m workflow

# Strategy workflows with DEBUG_MODE=false against the simulator, or against a real gateway
# (paper account, read-only API) with TEST_IB_HOST=... TEST_IB_PORT=...
test-live: install
	WORKFLOW_MODE=live $(PY) -m pytest -m workflow

test-frontend: install frontend-types-check
	npm test --silent --prefix frontend

# The UI's API types, generated from the backend's OpenAPI schema: run after changing a route or
# an API schema, and commit frontend/openapi.json and frontend/src/api/types.ts with the change.
OPENAPI_TYPESCRIPT := frontend/node_modules/.bin/openapi-typescript --default-non-nullable false
frontend-types: install
	$(PY) -m scripts.export_openapi > frontend/openapi.json
	$(OPENAPI_TYPESCRIPT) frontend/openapi.json -o frontend/src/api/types.ts

# Fails when the committed schema or types differ from what the backend's routes give now.
frontend-types-check: install
	@scratch=$$(mktemp -d); trap 'rm -rf "$$scratch"' EXIT; \
	$(PY) -m scripts.export_openapi > "$$scratch/openapi.json" \
	&& $(OPENAPI_TYPESCRIPT) "$$scratch/openapi.json" -o "$$scratch/types.ts" >/dev/null \
	&& diff -u frontend/openapi.json "$$scratch/openapi.json" \
	&& diff -u frontend/src/api/types.ts "$$scratch/types.ts" \
	|| { echo "frontend/src/api/types.ts is not current with the backend's API: run make frontend-types"; exit 1; }

openspec-validate: install
	$(OPENSPEC) validate --all --strict --no-interactive

lint: install
	$(VENV)/bin/ruff check backend scripts tests alembic

# Fills the cache from IBKR; SYMBOLS, EXCHANGE, DATA_TYPES and DAYS_BACK override the defaults
# (CACHE_SYMBOLS, CACHE_EXCHANGE, 1d, 365), e.g. make populate-cache SYMBOLS=NVDA DAYS_BACK=30.
populate-cache: install migrate
	$(PY) scripts/populate_market_cache.py \
		$(if $(SYMBOLS),--symbols $(SYMBOLS)) \
		$(if $(EXCHANGE),--exchange $(EXCHANGE)) \
		$(if $(DATA_TYPES),--data-type $(DATA_TYPES)) \
		$(if $(DAYS_BACK),--days-back $(DAYS_BACK))

# Benchmarks on PostgreSQL (TEST_DATABASE_URL); each prints JSON lines, figure beside baseline.
# bench-scale is left out: it takes minutes.
bench: install frontend/dist/index.html
	@for script in $(filter-out scripts/bench_scale.py,$(wildcard scripts/bench_*.py)); do \
		$(PY) $$script || exit 1; \
	done

# The cache at 500 symbols x a year of 1-minute bars (~49M bars, ~1.4 GB in PostgreSQL); not in
# CI. Prints how long it took.
.PHONY: bench-scale
bench-scale: install
	@started=$$(date +%s); $(PY) scripts/bench_scale.py \
		&& echo "make bench-scale took $$(( $$(date +%s) - started )) s"
