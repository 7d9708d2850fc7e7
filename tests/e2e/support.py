"""What end-to-end tests share besides fixtures: the configuration, clients and assertions."""

import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
import openai
from asgiref.sync import sync_to_async

from billing.ingest import ingest_usage_stream
from billing.models import UsageRecord
from tenants.models import ApiKey, Team
from tenants.services import api_key_issue
from tests.helpers_usage import assert_usage_stream_settled

PROVIDER_SECRET = "sk-provider-e2e-secret"
TEAM = "e2e"

# (input, output) USD per 1M tokens, as configured below; tests recompute costs from these.
PRICES = {
    "fake-chat-fast": (Decimal("0.5"), Decimal("1.5")),
    "fake-chat-primary": (Decimal("0.1"), Decimal("0.2")),
    "fake-chat-backup": (Decimal("1"), Decimal("2")),
    "fake-embed": (Decimal("0.02"), Decimal("0")),
}

CONFIG = """
providers:
  - {{name: fake-primary, kind: openai_compatible, api_base: "{base}", api_key: "{secret}"}}
  - {{name: fake-backup, kind: openai_compatible, api_base: "{base}", api_key: "{secret}"}}
  # A short timeout so a hanging upstream turns into a 504 quickly.
  - name: fake-slow
    kind: openai_compatible
    api_base: "{base}"
    api_key: "{secret}"
    timeout_s: 0.5
  - {{name: closed-port, kind: openai_compatible, api_base: "{closed}", api_key: "{secret}"}}
models:
  - name: chat-fast
    deployments:
      - {{provider: fake-primary, model: fake-chat-fast,
         input_cost_per_mtok: 0.5, output_cost_per_mtok: 1.5}}
  - name: chat-ha
    deployments:
      # Cheapest first: the primary is tried before the backup.
      - {{provider: fake-primary, model: fake-chat-primary,
         input_cost_per_mtok: 0.1, output_cost_per_mtok: 0.2}}
      - {{provider: fake-backup, model: fake-chat-backup,
         input_cost_per_mtok: 1, output_cost_per_mtok: 2}}
  - name: embed-small
    mode: embedding
    deployments:
      - {{provider: fake-primary, model: fake-embed, input_cost_per_mtok: 0.02}}
  - name: chat-slow
    deployments:
      - {{provider: fake-slow, model: fake-chat-slow}}
  - name: chat-down
    deployments:
      - {{provider: closed-port, model: fake-chat-down}}
  # Configured, but not in the team's allowed models.
  - name: chat-restricted
    deployments:
      - {{provider: fake-primary, model: fake-chat-restricted}}
teams:
  - slug: {team}
    allowed_models: [chat-fast, chat-ha, embed-small, chat-slow, chat-down]
"""

# The team's models, as /v1/models should list them.
TEAM_MODELS = ["chat-down", "chat-fast", "chat-ha", "chat-slow", "embed-small"]

MESSAGES = [{"role": "user", "content": "Say hello."}]


def expected_cost(upstream_model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price_in, price_out = PRICES[upstream_model]
    return (input_tokens * price_in + output_tokens * price_out) / Decimal(1_000_000)


@dataclass
class Gateway:
    url: str
    key: str
    api_key: ApiKey
    team: Team

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, key: str | None = None, **kwargs) -> openai.OpenAI:
        # No SDK retries: every call must be exactly one gateway request (and one usage row).
        kwargs.setdefault("timeout", 15)
        return openai.OpenAI(
            base_url=self.base_url, api_key=key or self.key, max_retries=0, **kwargs
        )

    def async_client(self, key: str | None = None, **kwargs) -> openai.AsyncOpenAI:
        kwargs.setdefault("timeout", 15)
        return openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key or self.key, max_retries=0, **kwargs
        )

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.key}"}

    def issue_key(self, **kwargs) -> str:
        return api_key_issue(team=self.team, name=kwargs.pop("name", "extra"), **kwargs).secret


# How long to wait, once the expected rows are in, for an extra one that should not come. The
# gateway appends a request's usage just after the response; a second append for the same
# request (a settle path that ran twice) would come within the same moment, not seconds later.
SETTLE_S = 0.05


def usage_records() -> list[UsageRecord]:
    """Move usage events from the Redis stream into the table, then return every row."""
    ingest_usage_stream(consumer="e2e")
    return list(UsageRecord.objects.order_by("created_at"))


def only_usage_record(request_id: str) -> UsageRecord:
    """The one row the test's one call produced, asserting that there is no other."""
    records = wait_for_usage_records(1)
    assert [r.request_id for r in records] == [request_id]
    return records[0]


def wait_for_usage_records(count: int, timeout_s: float = 10.0) -> list[UsageRecord]:
    """Exactly `count` rows: poll until they have landed, then check that no extra one follows.

    Polls because the gateway records usage just after the response is sent, not before.
    Reaching the count is not enough to say "exactly": after a short settle period the stream is
    drained once more, must be empty with nothing pending, must have received exactly `count`
    events in this test, and the table must still hold exactly `count` rows.
    """
    deadline = time.monotonic() + timeout_s
    records = usage_records()
    while len(records) < count and time.monotonic() < deadline:
        time.sleep(0.05)
        records = usage_records()
    assert len(records) == count, f"{len(records)} usage records, expected {count}"
    time.sleep(SETTLE_S)
    records = usage_records()
    assert_usage_stream_settled(events=count)
    assert len(records) == count, f"{len(records)} usage records after settling, expected {count}"
    return records


def wait_for_usage_record(request_id: str, timeout_s: float = 10.0) -> UsageRecord:
    [record] = wait_for_usage_records(1, timeout_s)
    assert record.request_id == request_id
    return record


def assert_no_usage_records() -> None:
    """No row, and none on its way: after the settle period, no event was ever appended."""
    time.sleep(SETTLE_S)
    assert usage_records() == []
    assert_usage_stream_settled(events=0)


# Async tests must not touch the ORM on their event loop.
async_only_usage_record = sync_to_async(only_usage_record)
async_wait_for_usage_record = sync_to_async(wait_for_usage_record)


def assert_openai_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """Status, OpenAI's error shape, and the request id in both header and body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    request_id = response.headers["x-request-id"]
    assert request_id and error["request_id"] == request_id
    if code is not None:
        assert error["code"] == code
    return error
