"""System checks: combinations of settings that would misbehave, caught at start-up.

Every server process runs them before serving (gateway/startup.py): errors stop it, warnings are
logged. The production-safety checks apply in production mode (DATABASE_URL set) with DEBUG off;
the Redis eviction check is a deployment check (`manage.py check --deploy`, and start-up in
production mode), because it asks the Redis server.
"""

import os
import re
from urllib.parse import urlsplit

import redis
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security, deploy=False)
def check_encryption_keys(app_configs, **kwargs):
    errors = []
    if not settings.GATEWAY_ENCRYPTION_KEYS:
        errors.append(
            Error(
                "GATEWAY_ENCRYPTION_KEYS is empty.",
                hint="Generate one: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'",
                id="gateway.E001",
            )
        )
    for index, key in enumerate(settings.GATEWAY_ENCRYPTION_KEYS):
        try:
            Fernet(key.encode())
        except ValueError:
            errors.append(
                Error(
                    f"GATEWAY_ENCRYPTION_KEYS entry {index} is not a valid Fernet key "
                    "(32 url-safe base64-encoded bytes).",
                    id="gateway.E002",
                )
            )
    return errors


@register()
def check_state_and_processes(app_configs, **kwargs):
    issues = []
    if not settings.REDIS_URL and settings.WEB_CONCURRENCY > 1:
        issues.append(
            Error(
                "WEB_CONCURRENCY > 1 without REDIS_URL.",
                hint="In-process state (key cache, usage queue; limits and budgets later) is not "
                "shared between processes. Set REDIS_URL or run one process.",
                id="gateway.E003",
            )
        )
    if settings.REDIS_URL and settings.EMBEDDED_DB:
        issues.append(
            Warning(
                "REDIS_URL is set but DATABASE_URL is not: several processes sharing one SQLite "
                "file will contend for its lock.",
                hint="Set DATABASE_URL to a Postgres database for production.",
                id="gateway.W001",
            )
        )
    if not settings.REDIS_URL and not settings.CELERY_TASK_ALWAYS_EAGER:
        issues.append(
            Error(
                "CELERY_TASK_ALWAYS_EAGER is off but there is no REDIS_URL for a broker.",
                id="gateway.E004",
            )
        )
    if settings.GATEWAY_MAX_BODY_BYTES <= 0:
        issues.append(Error("GATEWAY_MAX_BODY_BYTES must be positive.", id="gateway.E005"))
    if settings.GATEWAY_MAX_IN_FLIGHT < 0:
        issues.append(
            Error(
                "GATEWAY_MAX_IN_FLIGHT must not be negative.",
                hint="Set the most proxy requests one web process serves at once, or 0 for "
                "no limit.",
                id="gateway.E006",
            )
        )
    if settings.GATEWAY_REDIS_MAX_CONNECTIONS < 1:
        issues.append(
            Error(
                "GATEWAY_REDIS_MAX_CONNECTIONS must be at least 1.",
                hint="The Redis connections each web process may open; 100 by default.",
                id="gateway.E007",
            )
        )
    if settings.GATEWAY_KEY_CACHE_TTL_S > 60:
        issues.append(
            Warning(
                "GATEWAY_KEY_CACHE_TTL_S is over 60 s: a revoked key keeps working that long in "
                "each web process.",
                id="gateway.W002",
            )
        )
    return issues


# --- Production safety ---------------------------------------------------------------------------
# Values that are public (startproject's prefix, placeholders in examples, the Dockerfile's
# build-time value): a key anyone can read signs sessions anyone can forge.
_PUBLIC_SECRET_KEYS = frozenset(
    {"changeme", "change-me", "secret", "secret-key", "secretkey", "collectstatic-only"}
)
_MIN_SECRET_KEY_LENGTH = 16
_RATE = re.compile(r"\d+/\d*[smhd]")
_HTTPS_HINT = (
    "Serve the gateway over HTTPS (behind a TLS proxy, set SECURE_PROXY_SSL_HEADER="
    "HTTP_X_FORWARDED_PROTO,https). For a local, "
    "non-production setup, unset DATABASE_URL (embedded mode) or set DEBUG=true."
)


def _secret_key_problem(key: str) -> str | None:
    if key.strip().lower() in _PUBLIC_SECRET_KEYS or key.startswith("django-insecure-"):
        return "is a well-known placeholder"
    if len(key) < _MIN_SECRET_KEY_LENGTH:
        return f"is shorter than {_MIN_SECRET_KEY_LENGTH} characters"
    if len(set(key)) < 5:
        return "has fewer than 5 different characters"
    return None


@register(Tags.security)
def check_production_security(app_configs, **kwargs):
    """Production mode (DATABASE_URL set) with DEBUG off is a server on the internet: refuse
    settings that would hand out sessions over plain http or accept forged ones."""
    if not settings.GATEWAY_PRODUCTION or settings.DEBUG:
        return []
    errors = []
    for name, check_id in (("SESSION_COOKIE_SECURE", "E010"), ("CSRF_COOKIE_SECURE", "E011")):
        if not getattr(settings, name):
            errors.append(
                Error(
                    f"{name} is off in production (DATABASE_URL is set, DEBUG is off): the "
                    "browser would send the admin's cookie over plain http.",
                    hint=f"Unset {name} (it defaults to on). {_HTTPS_HINT}",
                    id=f"gateway.{check_id}",
                )
            )
    problem = _secret_key_problem(settings.SECRET_KEY)
    if problem:
        errors.append(
            Error(
                f"SECRET_KEY {problem}: sessions and CSRF tokens signed with it can be forged.",
                hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
                id="gateway.E012",
            )
        )
    for index, fallback in enumerate(settings.SECRET_KEY_FALLBACKS):
        # A former key still validates what it signed: a weak one is as forgeable as a weak
        # SECRET_KEY for as long as it stays listed.
        problem = _secret_key_problem(fallback)
        if problem:
            errors.append(
                Error(
                    f"SECRET_KEY_FALLBACKS entry {index} {problem}: sessions and password-reset "
                    "links signed with it can be forged while it is listed.",
                    hint="Remove it from SECRET_KEY_FALLBACKS.",
                    id="gateway.E210",
                )
            )
    if "*" in settings.ALLOWED_HOSTS:
        errors.append(
            Error(
                "ALLOWED_HOSTS contains '*' in production: any Host header is accepted, so the "
                "absolute URLs Django builds from it (redirects, links) can be made to point at "
                "another site.",
                hint="List the names the gateway is reached by, e.g. "
                "ALLOWED_HOSTS=gateway.example.com,127.0.0.1",
                id="gateway.E013",
            )
        )
    return errors


@register(Tags.security)
def check_admin_login_rate(app_configs, **kwargs):
    rate = settings.GATEWAY_ADMIN_LOGIN_RATE
    # django-ratelimit's syntax: attempts / optional multiplier + unit (5/m, 100/h, 10/5m).
    if not _RATE.fullmatch(rate) or int(rate.partition("/")[0]) == 0:
        return [
            Error(
                f"GATEWAY_ADMIN_LOGIN_RATE {rate!r} is not a rate.",
                hint="Attempts per period: 5/m (minute), 20/h (hour), 100/d (day).",
                id="gateway.E014",
            )
        ]
    return []


# --- Redis eviction ------------------------------------------------------------------------------
# The usage stream and Celery's queues are keys without an expiry, and the only copy of what they
# hold: a policy that may evict them loses usage rows (requests nobody is billed for) and tasks.
# volatile-* policies evict only keys with an expiry (cached keys, rate-limit windows), so the
# stream and the queues are safe, but limits can loosen under memory pressure: a milder warning.
# noeviction makes writes fail at the limit instead: a loud failure rather than a silent loss.


def _redis_urls() -> dict[str, str]:
    """Setting name -> URL for each Redis server the gateway writes to, one entry per server
    (named by setting in messages: the URL may carry a password)."""
    found: dict[str, str] = {}
    servers = set()
    for name in ("REDIS_URL", "CELERY_BROKER_URL"):
        url = getattr(settings, name, "") or ""
        server = urlsplit(url)._replace(path="", query="").geturl()  # the server, not the db
        if url.startswith(("redis://", "rediss://")) and server not in servers:
            servers.add(server)
            found[name] = url
    return found


def _eviction_settings(url: str) -> tuple[int, str] | None:
    """(maxmemory, maxmemory-policy), or None when Redis cannot tell us: unreachable (readiness
    and the first request report that) or CONFIG disabled, as on some managed services."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        config = client.config_get("maxmemory*")
        return int(config["maxmemory"]), config["maxmemory-policy"]
    except (redis.RedisError, KeyError, ValueError):
        return None
    finally:
        client.close()


@register("redis", deploy=True)
def check_redis_eviction(app_configs, **kwargs):
    issues = []
    for name, url in _redis_urls().items():
        found = _eviction_settings(url)
        if found is None:
            continue
        maxmemory, policy = found
        if maxmemory == 0 or policy == "noeviction":
            continue
        if policy.startswith("volatile-"):
            issues.append(
                Warning(
                    f"Redis at {name} has maxmemory-policy {policy}: at its memory limit it "
                    "evicts keys that have an expiry, so rate-limit windows and cached keys "
                    "can vanish early and limits loosen (the usage stream and task queues have "
                    "no expiry and are safe).",
                    hint="Prefer maxmemory-policy noeviction, or raise maxmemory. Silence "
                    "gateway.W011 if this is a deliberate trade-off.",
                    id="gateway.W011",
                )
            )
        else:
            issues.append(
                Warning(
                    f"Redis at {name} has maxmemory-policy {policy}: at its memory limit it can "
                    "evict the usage stream (requests that are never recorded or billed) and "
                    "Celery's queues (lost tasks).",
                    hint="Set maxmemory-policy noeviction (CONFIG SET maxmemory-policy "
                    "noeviction, and in redis.conf), or unset maxmemory.",
                    id="gateway.W010",
                )
            )
    return issues


# Headers that carry the caller's credential or say where the request goes: forwarding one would
# hand a team's gateway key to a provider, or let a caller steer the upstream request.
_NEVER_FORWARDED = frozenset(
    {
        "authorization",
        "api-key",
        "x-api-key",
        "cookie",
        "proxy-authorization",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "x-forwarded-for",
        "x-forwarded-host",
        "forwarded",
    }
)


@register()
def check_forward_headers(app_configs, **kwargs):
    refused = sorted(set(settings.GATEWAY_FORWARD_HEADERS) & _NEVER_FORWARDED)
    if not refused:
        return []
    return [
        Error(
            f"GATEWAY_FORWARD_HEADERS lists {', '.join(refused)}, which must never reach a "
            "provider (the caller's credential, or the request's own framing and routing).",
            hint="Forward only provider feature headers such as openai-beta.",
            id="gateway.E015",
        )
    ]


@register()
def check_admission(app_configs, **kwargs):
    issues = []
    if settings.GATEWAY_BUDGET_RESERVATION_TTL_S <= settings.GATEWAY_REQUEST_DEADLINE_S:
        issues.append(
            Error(
                "GATEWAY_BUDGET_RESERVATION_TTL_S is not above GATEWAY_REQUEST_DEADLINE_S: a "
                "request still running would lose its budget reservation, and concurrent "
                "requests could overspend.",
                hint="Set GATEWAY_BUDGET_RESERVATION_TTL_S above the request deadline "
                "(default 900 s for a 600 s deadline).",
                id="gateway.E016",
            )
        )
    for name in ("GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS", "GATEWAY_DEFAULT_MAX_OUTPUT_TOKENS"):
        if getattr(settings, name) < 1:
            issues.append(Error(f"{name} must be positive.", id="gateway.E017"))
    if settings.GATEWAY_BUDGET_FAIL_OPEN:
        issues.append(
            Warning(
                "GATEWAY_BUDGET_FAIL_OPEN is on: while Redis (or a budget's spend in Postgres) "
                "is unavailable, requests are admitted without checking hard budgets, so spend "
                "can exceed them.",
                hint="Leave it off to refuse with 503 instead (fail closed).",
                id="gateway.W003",
            )
        )
    return issues


@register()
def check_retention(app_configs, **kwargs):
    from billing.retention import MIN_USAGE_RETENTION_DAYS

    issues = []
    if settings.GATEWAY_USAGE_RETENTION_DAYS < MIN_USAGE_RETENTION_DAYS:
        issues.append(
            Error(
                f"GATEWAY_USAGE_RETENTION_DAYS is below {MIN_USAGE_RETENTION_DAYS}: budgets are "
                "summed from the usage rows of the current and the previous month, which must "
                "not be purged.",
                hint=f"Set it to {MIN_USAGE_RETENTION_DAYS} or more (default 395).",
                id="gateway.E030",
            )
        )
    if settings.GATEWAY_CONTENT_RETENTION_DAYS < 1:
        issues.append(Error("GATEWAY_CONTENT_RETENTION_DAYS must be positive.", id="gateway.E031"))
    if settings.GATEWAY_ROLLUP_RETENTION_DAYS < 0:
        issues.append(
            Error(
                "GATEWAY_ROLLUP_RETENTION_DAYS must be 0 (keep forever) or positive.",
                id="gateway.E032",
            )
        )
    if settings.GATEWAY_RETENTION_BATCH < 1:
        issues.append(Error("GATEWAY_RETENTION_BATCH must be positive.", id="gateway.E033"))
    if settings.GATEWAY_ROLLUP_INTERVAL_S <= 0 or settings.GATEWAY_ROLLUP_OVERLAP_S < 0:
        issues.append(
            Error(
                "GATEWAY_ROLLUP_INTERVAL_S must be positive and GATEWAY_ROLLUP_OVERLAP_S not "
                "negative.",
                id="gateway.E034",
            )
        )
    return issues


# --- Metrics (gateway/proxy/metrics.py) -------------------------------------------------------
@register()
def check_metrics(app_configs, **kwargs):
    issues = []
    directory = settings.PROMETHEUS_MULTIPROC_DIR
    if settings.WEB_CONCURRENCY > 1 and not directory:
        issues.append(
            Warning(
                "WEB_CONCURRENCY > 1 without PROMETHEUS_MULTIPROC_DIR: /metrics shows the "
                "counts of whichever worker answers the scrape.",
                hint="Start the server with `make serve` or the container's entrypoint, which "
                "set it, or set it to a directory the workers can write.",
                id="gateway.W035",
            )
        )
    unusable = not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK)
    if directory and os.path.exists(directory) and unusable:
        issues.append(
            Error(
                f"PROMETHEUS_MULTIPROC_DIR ({directory}) is not a writable directory.",
                hint="Every web process writes its metric values there.",
                id="gateway.E035",
            )
        )
    return issues


# --- privacy modes (gateway/proxy/content.py)
HMAC_KEY_MIN_CHARS = 32


def _hashed_policies_exist() -> bool | None:
    """Whether some policy asks for the `hashed` mode; None when the database cannot say (not
    migrated yet, unreachable). Asked from a thread of its own: servers run the checks while
    an event loop is running, where the ORM refuses synchronous calls."""
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connections

    def ask() -> bool | None:
        from policies.models import Policy, PrivacyMode

        try:
            return Policy.objects.filter(privacy_mode=PrivacyMode.HASHED).exists()
        except Exception:
            return None
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        try:
            return pool.submit(ask).result(timeout=10)
        except Exception:
            return None


@register()
def check_content_hmac_key(app_configs, **kwargs):
    key = settings.GATEWAY_CONTENT_HMAC_KEY
    if key and len(key) < HMAC_KEY_MIN_CHARS:
        return [
            Error(
                f"GATEWAY_CONTENT_HMAC_KEY is shorter than {HMAC_KEY_MIN_CHARS} characters: "
                "hashes of prompts made with a guessable key can be reversed by guessing.",
                hint="python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="gateway.E090",
            )
        ]
    if not key and _hashed_policies_exist():
        return [
            Warning(
                "A policy sets privacy_mode 'hashed' but GATEWAY_CONTENT_HMAC_KEY is not set: "
                "no content (not even hashes) is stored for its requests.",
                hint="Set GATEWAY_CONTENT_HMAC_KEY to a random secret of 32+ characters.",
                id="gateway.W090",
            )
        ]
    return []
