#!/usr/bin/env bash
# One image, several roles:
#   web      apply migrations, then serve (a single web service, or the one that migrates)
#   serve    serve only: extra replicas, when a release step has already migrated
#   worker   Celery worker for the default and usage queues (usage ingestion)
#   beat     Celery beat: exactly one per deployment, or ingestion runs twice as often
#   anything else is run as given, e.g. `python manage.py createapikey --team search`
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
    web)
        python manage.py migrate --no-input
        serve
        ;;
    serve)
        serve
        ;;
    worker)
        exec celery -A gateway worker -Q default,usage --loglevel "${LOG_LEVEL:-INFO}"
        ;;
    beat)
        # The schedule file goes to /tmp: the code directory is not writable by this user.
        exec celery -A gateway beat --loglevel "${LOG_LEVEL:-INFO}" \
            --schedule /tmp/celerybeat-schedule
        ;;
    *)
        exec "$@"
        ;;
esac
