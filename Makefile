# Two commands do all the set-up on a fresh Debian machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run stop manage superuser test test-install bench mutation deps redis chromium lint format clean \
	prod-like prod-like-stop soak postgres

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

deps: $(STAMP)

redis:
	@scripts/ensure-redis.sh

chromium:
	@scripts/ensure-chromium.sh

run: deps redis
	@scripts/run.sh

# For a `make run` in the background or another terminal: stop it; run manage.py in its environment
# (its secret key, Redis and database), e.g. `make manage ARGS="createsuperuser"`.
stop:
	@scripts/stop.sh

# Debian's postgresql when root and missing (scripts/with-postgres.sh installs it, starts and stops a cluster).
postgres:
	@[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || scripts/with-postgres.sh true

# Production-shaped: gunicorn x3, Celery worker + beat, Redis, a throwaway PostgreSQL, DEBUG off,
# WhiteNoise, JSON logs on stdout (docs/reliability.md). Ctrl-C or `make prod-like-stop` stops it.
prod-like: deps redis postgres
	@scripts/prod-like.sh

prod-like-stop:
	@scripts/prod-like-stop.sh

# The long load run against prod-like (tests/load, -m soak): locust for DURATION.
DURATION ?= 5m
soak: deps redis postgres
	AICACHE_SOAK_DURATION=$(DURATION) $(BIN)/pytest -s -m soak tests/load $(PYTEST_ARGS)  # -s: the figures

ARGS ?=
manage: deps
	@scripts/manage.sh $(ARGS)

superuser: deps
	@scripts/manage.sh createsuperuser $(ARGS)

# The whole suite on SQLite, then the monitoring-history tests again on a throwaway PostgreSQL, then
# the install tests (test-install).
test: deps redis chromium postgres
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest --cov=aicache --cov-branch --cov-report=term:skip-covered --cov-fail-under=90 $(PYTEST_ARGS)
	scripts/with-postgres.sh $(BIN)/pytest -m history $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-install

# As a user would: build the wheel and sdist, install them into a fresh virtualenv from PyPI (pip's
# cache makes a rerun quick), follow README's "Install in your project"; and `make run` as printed.
test-install: deps redis
	$(BIN)/pytest -m install tests/install $(PYTEST_ARGS)

# Benchmarks: client and the redis-server it starts pinned to one vCPU (see ../shared/PERFORMANCE.md);
# BENCH_PIN= runs them unpinned.
BENCH_PIN ?= taskset -c 0
# `make bench BENCH_ARGS=--quick` for the one-minute version of the scenarios.
BENCH_ARGS ?=
bench: deps redis
	$(BENCH_PIN) $(BIN)/pytest tests/benchmarks --benchmark-only --benchmark-columns=min,median,mean,ops,rounds \
		--benchmark-sort=name $(PYTEST_ARGS)
	scripts/with-postgres.sh $(BIN)/pytest tests/benchmarks -m history --benchmark-only \
		--benchmark-columns=min,median,mean,rounds $(PYTEST_ARGS)
	mkdir -p .run
	DEBUG=1 $(BENCH_PIN) $(BIN)/python manage.py aicache_benchmark --json .run/benchmark.json $(BENCH_ARGS) \
		--only reads writes keys compression monitoring seed invalidation shapes dictionaries | tee .run/benchmark.md
	@echo "Concurrency runs unpinned: threads and processes need both vCPUs."
	DEBUG=1 $(BIN)/python manage.py aicache_benchmark --json .run/benchmark-concurrency.json $(BENCH_ARGS) \
		--only concurrency | tee .run/benchmark-concurrency.md

# Mutation testing of the core and the monitor (mutmut, module by module, about 30 minutes; not part of
# `make test`). `make mutation MODULES="keys codec"` for some; the summary lands in .run/mutation/summary.md.
MODULES ?=
mutation: deps redis
	$(BIN)/python scripts/mutation.py --fail-under 85 $(MODULES)

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .run .pytest_cache .ruff_cache
