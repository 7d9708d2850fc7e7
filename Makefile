# The two commands: `make run` (embedded demo, no services) and `make test` (Postgres + Redis).
PY      := .venv/bin/python
VENV_OK := .venv/.installed
PORT    ?= 8000
HOST    ?= 127.0.0.1
WEB_CONCURRENCY ?= 2
# uvicorn's own limit on a graceful shutdown; above GATEWAY_SHUTDOWN_TIMEOUT_S (25 s), after which
# the gateway ends open streams itself with an error event (gateway/shutdown.py).
GRACEFUL_SHUTDOWN_S ?= 30
# Extra uvicorn options for `make serve`, appended last (e.g. --backlog 2048 --limit-concurrency 300).
SERVE_ARGS ?=
# Options for `make bench` (bench/run.py --help), e.g. BENCH_ARGS="--no-litellm --only c1".
BENCH_ARGS ?=
# make test talks to real services; override these to point elsewhere.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/gateway
TEST_REDIS_URL    ?= redis://127.0.0.1:6379/15
# pytest-xdist workers (auto: one per core). Each has its own Postgres test database and Redis
# database (tests/xdist_env.py); whole files go to one worker, so a module's servers are shared.
# PYTEST_WORKERS=0 runs everything in one process.
PYTEST_WORKERS ?= auto

.PHONY: install lock audit run serve worker beat test lint fmt bench migrate clean port-free preflight

LOCK    := requirements.lock

# Every dependency at the version and hash the lock names (pip refuses anything else), then the
# project itself, whose dependencies are all in the lock already.
$(VENV_OK): pyproject.toml $(LOCK)
	test -d .venv || python3 -m venv .venv
	.venv/bin/pip install --quiet --require-hashes --no-deps -r $(LOCK)
	.venv/bin/pip install --quiet --no-deps .
	touch $(VENV_OK)

# Regenerates the locks after a change to pyproject.toml; pins already in them are kept unless
# `make lock LOCK_ARGS=--upgrade` (or --upgrade-package NAME). Python 3.11 on Linux, from PyPI
# alone: a machine's own pip configuration (mirrors, find-links) is not read.
# requirements-prod.lock: the runtime dependencies only (for an image), at the same versions.
UV_COMPILE := .venv/bin/uv pip compile pyproject.toml --generate-hashes --no-config \
	--python-version 3.11 --python-platform linux --index-url https://pypi.org/simple
lock:
	test -x .venv/bin/uv || { test -d .venv || python3 -m venv .venv; .venv/bin/pip install --quiet uv; }
	$(UV_COMPILE) --extra dev $(LOCK_ARGS) -o $(LOCK)
	$(UV_COMPILE) --constraint $(LOCK) -o requirements-prod.lock

install: $(VENV_OK)

# Generated once per checkout: a secret key and a credential encryption key, never committed.
# umask 077: the file holds secrets, readable by its owner only.
.env:
	@umask 077; $(PY) -c "import secrets; from cryptography.fernet import Fernet; \
	print('SECRET_KEY=' + secrets.token_urlsafe(50)); \
	print('GATEWAY_ENCRYPTION_KEYS=' + Fernet.generate_key().decode())" > .env
	@echo "wrote .env with generated SECRET_KEY and GATEWAY_ENCRYPTION_KEYS"

var:
	mkdir -p var

migrate: $(VENV_OK) .env var
	$(PY) manage.py migrate --no-input -v0

# The embedded demo is one process: its state (key cache, usage queue) is not shared.
run: export WEB_CONCURRENCY := 1
# The port first: a second `make run` stops here, before it touches the running demo.
run: port-free migrate
	$(PY) manage.py collectstatic --no-input -v0
	@# Prints the demo key, the portal and admin URLs, and the demo lead's login (its password
	@# on the first run only: it is stored hashed; reset with manage.py changepassword).
	@$(PY) manage.py seeddemo --base-url http://$(HOST):$(PORT)
	$(PY) -m uvicorn gateway.asgi:application --host $(HOST) --port $(PORT) \
		--no-access-log --no-proxy-headers --timeout-graceful-shutdown $(GRACEFUL_SHUTDOWN_S)

# Production mode: needs DATABASE_URL and REDIS_URL (and the worker + beat below).
# make runs uvicorn without a shell in between and passes a SIGTERM on to it: signalling `make
# serve` drains the instance (docs/operations.md, Shutdown; tests/e2e/test_scale_out.py).
# --no-proxy-headers: the gateway decides which proxies' X-Forwarded-For it believes
# (GATEWAY_TRUSTED_PROXIES); uvicorn would otherwise trust 127.0.0.1's by default.
serve: $(VENV_OK) var
	$(PY) -m uvicorn gateway.asgi:application --host 0.0.0.0 --port $(PORT) \
		--workers $(WEB_CONCURRENCY) --no-access-log --loop uvloop --http httptools \
		--no-proxy-headers --timeout-graceful-shutdown $(GRACEFUL_SHUTDOWN_S) $(SERVE_ARGS)

worker: $(VENV_OK)
	.venv/bin/celery -A gateway worker -Q default,usage --loglevel INFO

beat: $(VENV_OK) var
	.venv/bin/celery -A gateway beat --loglevel INFO --schedule var/celerybeat-schedule

# Test-only secrets: fixed so failures reproduce; never used outside the test run.
test: $(VENV_OK)
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) \
	SECRET_KEY=test-only-secret-key \
	GATEWAY_ENCRYPTION_KEYS=dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE= \
	$(PY) -m pytest -p tests.xdist_env -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV_OK)
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	@$(MAKE) --no-print-directory audit

# Known vulnerabilities in the locked versions, from PyPI's advisory data (per-version JSON API).
# --strict: a package the service cannot answer for fails the audit instead of passing unseen.
# Where that API cannot be reached (an offline or mirrored index), the audit is skipped, loudly.
# Accepted findings: one ID per line in audit-ignore.txt, each with a comment saying why.
AUDIT_PROBE := https://pypi.org/pypi/pip/24.0/json
audit: $(VENV_OK)
	@if $(PY) -c "import urllib.request as u; u.urlopen('$(AUDIT_PROBE)', timeout=10)" 2>/dev/null; then \
		.venv/bin/pip-audit -r $(LOCK) --require-hashes --disable-pip --strict --progress-spinner off \
			$$(sed -e 's/#.*//' -e '/^[[:space:]]*$$/d' -e 's/^[[:space:]]*/--ignore-vuln /' audit-ignore.txt); \
	else \
		echo "pip-audit SKIPPED: $(AUDIT_PROBE) is unreachable from here, so no vulnerability data; run 'make audit' where pypi.org is reachable"; \
	fi

fmt: $(VENV_OK)
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: $(VENV_OK)
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf .venv var .pytest_cache .ruff_cache

# WEB_CONCURRENCY reaches the server's environment, so its system checks see the worker count
# (uvicorn reads it too, as the default for --workers).
serve: export WEB_CONCURRENCY := $(WEB_CONCURRENCY)
# Every worker writes its metric values here and /metrics sums them (gateway/proxy/metrics.py); the
# preflight empties it before the workers start. `make run` is one process: it needs none.
serve: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/var/metrics
# uvicorn's multi-worker supervisor exits 0 when its workers refuse to start; the same checks run
# once before it, so a bad configuration fails `make serve` with a non-zero status.
serve: preflight

preflight: $(VENV_OK)
	@$(PY) -m gateway.startup

port-free: $(VENV_OK)
	@$(PY) -m gateway.portcheck $(HOST) $(PORT)
