# Kinguard: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000
# The face worker's malloc: heap on transparent huge pages (fewer TLB misses in the 99 MB
# landmark model; README "Face performance"). compose.yaml and deploy/systemd set the same.
WORKER_ENV := GLIBC_TUNABLES=glibc.malloc.hugetlb=1
# make test uses PostgreSQL when one answers on 127.0.0.1:5432 (as in CI), else SQLite.
PG_URL := postgres://postgres@127.0.0.1:5432/test
TEST_DATABASE_URL ?= $(shell $(PYTHON) -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1',5432)))" 2>/dev/null && echo $(PG_URL))

.PHONY: install run test test-sqlite test-integration bench-faces lint format worker clean

NPM := $(shell command -v npm 2>/dev/null)

install: $(VENV)/.installed $(if $(NPM),node_modules/.package-lock.json)

# Browser-test tooling only (axe-core); node_modules/ is not committed.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $@

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo
	$(PY) manage.py demo_info --port $(PORT)
	@trap 'kill $$WORKER $$WEB 2>/dev/null; wait; echo "Kinguard stopped."; exit 0' INT TERM EXIT; \
	$(WORKER_ENV) $(VENV)/bin/celery -A config worker -B -Q face,default --concurrency=2 --loglevel=WARNING \
	    --schedule var/celerybeat-schedule & WORKER=$$!; \
	$(PY) manage.py runserver 127.0.0.1:$(PORT) --noreload & WEB=$$!; \
	wait -n $$WORKER $$WEB

worker: install
	$(WORKER_ENV) $(VENV)/bin/celery -A config worker -Q face,default --loglevel=INFO

test: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(PY) -m pytest

test-sqlite: install
	DATABASE_URL= $(PY) -m pytest

# Real Celery workers on Redis + PostgreSQL, fault and race tests (TEST_REDIS_URL picks the Redis DB).
test-integration: install
	DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" $(PY) -m pytest tests/integration tests/lookups/test_races.py

# Face speed figures (README "Face performance"); needs Redis (BENCH_REDIS_URL).
bench-faces: install
	$(PY) bench/face_throughput.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/bandit --quiet --recursive config guardians lookups --exclude '*/migrations/*'
	$(VENV)/bin/pip-audit --requirement requirements.txt --no-deps --disable-pip --progress-spinner off
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf var test-artifacts node_modules

# Re-lock after editing requirements.in / requirements-dev.in (exact pins there; hashes here).
lock:
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --no-strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements.txt requirements.in
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --no-strip-extras --no-emit-index-url --no-emit-find-links --output-file requirements-dev.txt requirements-dev.in
