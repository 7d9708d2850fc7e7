#!/usr/bin/env bash
# One image, one role per container, chosen by the first argument:
#   web      serve HTTP on $PORT (any number of replicas; `serve` is the same role)
#   worker   Celery worker for the default and usage queues (usage ingestion, budget checks)
#   beat     Celery beat: exactly one per deployment, or every scheduled task runs twice
#   migrate  apply the database migrations once and exit (before web, worker and beat start)
#   anything else is run as given, e.g. `python manage.py createapikey --team search`
# docker/compose.yml runs each role as a service; tests/test_container_stack.py checks that the
# roles here and the commands there agree.
set -euo pipefail

serve() {
    # The same server and flags as `make serve`; exec so the server gets SIGTERM directly.
    # The graceful timeout stays above GATEWAY_SHUTDOWN_TIMEOUT_S (25 s), after which the
    # gateway ends open streams itself; keep the orchestrator's grace period above both.
    # The system checks once, with a non-zero status on an error: uvicorn's multi-worker
    # supervisor exits 0 when its workers refuse to start (see gateway/startup.py).
    export WEB_CONCURRENCY="${WEB_CONCURRENCY:-2}"
    # Every worker's metric values, summed by /metrics; emptied by gateway.startup below.
    export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/gateway-metrics}"
    python -m gateway.startup
    exec python -m uvicorn gateway.asgi:application \
        --host 0.0.0.0 --port "${PORT:-8000}" --workers "$WEB_CONCURRENCY" \
        --no-access-log --loop uvloop --http httptools --no-proxy-headers \
        --timeout-graceful-shutdown "${GRACEFUL_SHUTDOWN_S:-30}"
}

role="${1:-web}"
case "$role" in
    web | serve)
        # Serving never migrates: two replicas migrating at once would race. The migrate role
        # runs first (compose: web waits for it to complete).
        serve
        ;;
    migrate)
        exec python manage.py migrate --no-input
        ;;
    worker)
        exec celery -A gateway worker -Q default,usage --loglevel "${LOG_LEVEL:-INFO}"
        ;;
    beat)
        # The schedule file goes to /tmp: the code directory is not writable by this user. Its
        # age is the beat service's health check (docker/compose.yml).
        exec celery -A gateway beat --loglevel "${LOG_LEVEL:-INFO}" \
            --schedule /tmp/celerybeat-schedule
        ;;
    *)
        exec "$@"
        ;;
esac
