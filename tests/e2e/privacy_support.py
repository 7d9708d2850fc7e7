"""What the privacy tests share: a team's privacy policy, a canary's search through everything
the gateway stores (a full dump of the database, the raw usage stream), and requests in each
inbound dialect."""

import subprocess
import uuid

import httpx
from django.conf import settings

from billing.models import UsageContent
from infra.state import get_state
from tests.helpers_proc import subprocess_database_url

from .budget_support import set_team_policy

__all__ = ["canary", "database_dump", "set_team_policy", "stored_content", "usage_stream_raw"]


def canary(what: str) -> str:
    """A string no test data holds by chance (and no detector touches: letters and digits)."""
    return f"canary{what}{uuid.uuid4().hex}"


def database_dump() -> str:
    """Every row of every table of the test database, as pg_dump writes it (committed data)."""
    result = subprocess.run(
        ["pg_dump", "--data-only", "--no-owner", subprocess_database_url()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "COPY public.billing_usagerecord" in result.stdout  # the dump is real
    return result.stdout


def usage_stream_raw() -> bytes:
    """Every event still in the Redis usage stream, as stored (before ingestion drains it)."""
    client = get_state().sync_client
    entries = client.xrange(settings.GATEWAY_USAGE_STREAM)
    return b"\n".join(v for _, fields in entries for v in fields.values())


def stored_content() -> list[UsageContent]:
    return list(UsageContent.objects.order_by("created_at"))


def post_chat(gw, messages, *, model: str = "chat-fast", **body) -> httpx.Response:
    with gw.http() as http:
        return http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": messages, **body},
            headers=gw.auth(),
        )


def post_messages(gw, messages, **body) -> httpx.Response:
    """Anthropic's dialect (/v1/messages), served here by the OpenAI-style fake, translated."""
    with gw.http() as http:
        return http.post(
            "/v1/messages",
            json={"model": "chat-fast", "max_tokens": 50, "messages": messages, **body},
            headers={"x-api-key": gw.key, "anthropic-version": "2023-06-01"},
        )


def post_embeddings(gw, text) -> httpx.Response:
    with gw.http() as http:
        return http.post(
            "/v1/embeddings", json={"model": "embed-small", "input": text}, headers=gw.auth()
        )
