"""What the metrics hooks cost per request: timeit of gateway/proxy/metrics.py's request_settled
(a settled chat request with tokens and cost) and request_refused, in the mode the environment
selects.

    .venv/bin/python bench/metrics_hook.py                    # one process (`make run`)
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/metrics_hook.py   # `make serve`

Needs SECRET_KEY and GATEWAY_ENCRYPTION_KEYS like manage.py (any test values); touches no
database. A measurement, not a test.
"""

import os
import sys
import timeit
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")

import django

django.setup()

from gateway.proxy import metrics  # noqa: E402
from gateway.proxy.context import RequestContext  # noqa: E402
from gateway.proxy.errors import AuthenticationFailed  # noqa: E402
from routing.providers import Usage  # noqa: E402
from routing.selectors import Route  # noqa: E402
from tenants.selectors import KeyPrincipal  # noqa: E402

ROUNDS = 200_000


def settled_request() -> RequestContext:
    ctx = RequestContext("chat.completions")
    ctx.principal = KeyPrincipal(
        key_id=1,
        key_prefix="sk-gw-abcdef",
        team_id=1,
        team_slug="search",
        org_id=1,
        project_id=None,
        user_id=None,
        allowed_models=None,
        expires_at=None,
        revoked=False,
    )
    ctx.route = Route(
        deployment_id=1,
        model_name="chat-fast",
        upstream_model="gpt-4o-mini",
        mode="chat",
        provider_id=1,
        provider_name="openai",
        provider_kind="openai",
        api_base="https://api.example.invalid/v1",
        input_cost_per_mtok=Decimal("0.15"),
        output_cost_per_mtok=Decimal("0.6"),
    )
    ctx.usage = Usage(input_tokens=120, output_tokens=48)
    ctx.upstream_ms = 12.5
    return ctx


def per_call_us(fn, *args) -> float:
    fn(*args)  # label children created outside the timing, as after the first request
    best = min(timeit.repeat(lambda: fn(*args), number=ROUNDS, repeat=5))
    return best / ROUNDS * 1e6


def main() -> None:
    mode = "multiprocess" if metrics.multiproc_dir() else "one process"
    ctx = settled_request()
    refused = AuthenticationFailed("invalid API key")
    print(f"mode: {mode}")
    print(f"request_settled: {per_call_us(metrics.request_settled, ctx):.2f} us per call")
    print(f"  of which ctx.cost(): {per_call_us(ctx.cost):.2f} us")
    print(f"request_refused: {per_call_us(metrics.request_refused, refused):.2f} us per call")


if __name__ == "__main__":
    main()
