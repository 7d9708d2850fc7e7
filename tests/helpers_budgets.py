"""Budget test helpers: usage rows at chosen instants, budget policies, a real webhook receiver on
127.0.0.1, and a real Celery worker process."""

import itertools
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from celery.backends.redis import RedisBackend
from celery.result import AsyncResult
from django.conf import settings

from billing.models import UsageRecord
from gateway.celery import app
from policies.models import Policy

from .helpers_proc import PYTHON, base_env, start, stop, subprocess_database_url

_ids = itertools.count()


def at(text: str) -> datetime:
    """An aware UTC datetime from "2026-11-01T04:00"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def usage(*, cost: str, when: datetime, team=None, key=None, project=None) -> UsageRecord:
    """A stored usage row, as ingestion writes it, for whichever scopes are given."""
    team = team or (key.team if key else project.team if project else None)
    return UsageRecord.objects.create(
        request_id=f"budget-{next(_ids)}-{when.timestamp()}",
        created_at=when,
        organization_id=team.organization_id if team else None,
        team=team,
        team_slug=team.slug if team else "",
        project=project or (key.project if key else None),
        api_key=key,
        endpoint="chat.completions",
        requested_model="small",
        status_code=200,
        cost_usd=Decimal(cost),
    )


def budget_policy(webhook_url: str = "", **fields) -> Policy:
    policy = Policy(**fields)
    policy.alert_webhook_url = webhook_url
    policy.save()
    return policy


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that answers with scripted statuses (then 200) and keeps
    every request body it got."""

    def __init__(
        self, statuses: list[int] | None = None, path: str = "/hooks/T0/B0/secret"
    ) -> None:
        self.statuses = list(statuses or [])
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"null")
                with receiver.lock:
                    receiver.bodies.append(body)
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"no")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "WebhookReceiver":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.bodies)


# --- A real Celery worker ----------------------------------------------------------------------

# Generous: a worker's first start imports Django and connects to both services.
TASK_TIMEOUT_S = 90


def start_worker(log_path, **env_overrides):
    """A Celery worker on the test database and Redis, consuming both queues; results go to
    Redis so a test can wait on a task's own result (the project configures no backend)."""
    env = base_env(
        DATABASE_URL=subprocess_database_url(), REDIS_URL=settings.REDIS_URL, **env_overrides
    )
    args = [PYTHON, "-m", "celery", "-A", "gateway", "--result-backend", settings.REDIS_URL]
    args += ["worker", "-Q", "usage,default", "--pool", "solo", "--hostname", "budgets@%h"]
    args += ["--without-mingle", "--without-gossip", "--loglevel", "INFO"]
    return start(args, env=env, log_path=log_path)


def stop_worker(proc) -> None:
    stop(proc)


def wait_result(result, timeout: float = TASK_TIMEOUT_S):
    backend = RedisBackend(app=app, url=settings.REDIS_URL)
    try:
        return AsyncResult(result.id, backend=backend, app=app).get(timeout=timeout)
    finally:
        backend.client.close()
