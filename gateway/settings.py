"""Settings, read from the environment (and an optional `.env` file) through django-environ.

Every value is typed; a malformed value raises ImproperlyConfigured at start-up rather than
misbehaving later. Combinations are validated by the system checks in gateway/checks.py.
docs/configuration.md lists every variable.
"""

import ipaddress
import logging
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


class _Env(environ.Env):
    """django-environ, but a value of the wrong type names its variable (a bare ValueError like
    "invalid literal for int()" does not say which of the variables is wrong)."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{var} has an invalid value: {exc}") from exc


env = _Env()
# Real environment variables win over the file: `make run` writes .env once with generated secrets.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env.str("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Security: cookies, HTTPS, proxies, admin login throttling ----------------------------------
# Production mode means DATABASE_URL is set. The embedded default (no DATABASE_URL: `make run`,
# SQLite, one process) is served over plain http://127.0.0.1, where Secure cookies would make the
# admin login fail; production is served over HTTPS. So the secure defaults follow production
# mode and DEBUG, and gateway/checks.py refuses to start a production server (DEBUG off) with
# them turned off (an explicit SILENCED_SYSTEM_CHECKS entry is the escape hatch).
GATEWAY_PRODUCTION = "DATABASE_URL" in env
_SECURE = GATEWAY_PRODUCTION and not DEBUG
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_SECURE)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_SECURE)
SESSION_COOKIE_HTTPONLY = True
# HSTS is only sent on HTTPS responses. Preload is off by default: it is a commitment to the
# browsers' built-in lists that the owner of the domain makes, not something an app turns on.
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if _SECURE else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_SECURE)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Off by default: TLS usually ends at a load balancer that redirects http itself, and behind one
# without SECURE_PROXY_SSL_HEADER every request looks like http, so an app-level redirect would
# loop forever. Health endpoints are exempt, so plain-http probes keep working when it is on.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"


def _proxy_ssl_header(value: list[str]) -> tuple[str, str] | None:
    """ "X-Forwarded-Proto,https" or "HTTP_X_FORWARDED_PROTO,https" -> Django's (META key, value).

    Only set it behind a proxy that overwrites this header: Django then trusts it from anyone.
    """
    if not value:
        return None
    if len(value) != 2 or not all(part.strip() for part in value):
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER has an invalid value: expected <header>,<value>, "
            "e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    header = value[0].strip().upper().replace("-", "_")
    return (header if header.startswith("HTTP_") else f"HTTP_{header}", value[1].strip())


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header(env.list("SECURE_PROXY_SSL_HEADER", default=[]))
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=["security.W021"])

# The cache holds the admin login throttle's counters (django-ratelimit), so it must be shared by
# every web process: Redis when there is one. Django's own RedisCache counts atomically (SET NX,
# INCRBY); django-ratelimit's list of supported backends predates it, hence its W001 is silenced.
# Without Redis there is one process (see checks.py), and process memory is shared enough.
if env.str("REDIS_URL", default=""):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env.str("REDIS_URL"),
            "KEY_PREFIX": "gw-cache",
            # A dead Redis must fail a login attempt quickly (503), not hang it.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.W001"]
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]
# Admin login attempts (POST) allowed per client address and, separately, per username. The
# address is the one /v1 uses (infra/client_address.py): behind a load balancer, list it in
# GATEWAY_TRUSTED_PROXIES, or every admin shares the balancer's address and its count.
RATELIMIT_IP_META_KEY = "infra.client_address.of_request"
GATEWAY_ADMIN_LOGIN_RATE = env.str("GATEWAY_ADMIN_LOGIN_RATE", default="5/m")

INSTALLED_APPS = [
    # The admin's theme (django-unfold): before django.contrib.admin, whose templates it
    # overrides, and whose default site it replaces with its own (unfold/apps.py).
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.simple_history",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # No models; registered for its system checks on the cache it counts in.
    "django_ratelimit",
    "gateway",
    # Below every app it records (audit/capture.py connects to them by label).
    "audit",
    "tenants",
    "routing",
    "policies",
    "billing",
    "compliance",
    # The team portal (/portal/): keys, members, spend.
    "portal",
    # History rows of the compliance registry (compliance/models.py).
    "simple_history",
]

# The dashboard stack (admin, portal). /v1 never runs it: gateway/asgi.py sends /v1 to a handler
# with no middleware at all, because each sync middleware costs a thread hop under ASGI.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves collectstatic's output (the admin's CSS and JS) with DEBUG off; never on /v1.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who changes what from /admin/, /portal/, /api/, for the audit log (audit/middleware.py).
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records who made an admin change in the compliance history rows.
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "gateway.urls"
ASGI_APPLICATION = "gateway.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Storage ------------------------------------------------------------------------------------
# No DATABASE_URL: the embedded default, a SQLite file for trying the gateway on a laptop.
EMBEDDED_DB = "DATABASE_URL" not in env
if EMBEDDED_DB:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": env.str("SQLITE_PATH", default=str(BASE_DIR / "var" / "gateway.sqlite3")),
            # The usage writer thread and request threads share one file; wait, don't fail.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
else:
    DATABASES = {"default": env.db("DATABASE_URL")}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend, with a pool check that drops every dead connection at once after a
        # database restart (infra/postgres/base.py says why).
        DATABASES["default"]["ENGINE"] = "infra.postgres"
        # psycopg 3's pool through Django's backend: a cache-miss on the hot path reuses a warm
        # connection instead of paying a TCP + auth handshake.
        options = DATABASES["default"].setdefault("OPTIONS", {})
        options["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
            # How long a call waits for a connection before it fails. psycopg_pool's default of
            # 30 s held every cache-miss request that long while Postgres was down; with 1 s
            # they get their 503 quickly (infra/db.py bounds the rest).
            "timeout": env.float("DATABASE_POOL_TIMEOUT_S", default=1.0),
        }
        # libpq's limit on opening one connection (a host that drops packets would otherwise
        # hang for the kernel's TCP timeout). A connect_timeout in DATABASE_URL wins.
        options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT_S", default=2))
        # With a pool, Django turns this into psycopg_pool's check on checkout: after a
        # database restart the pooled connections are dead, and handing one out would fail a
        # request for nothing.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# No REDIS_URL: in-process state (key cache, usage queue). One process only (see checks.py).
REDIS_URL = env.str("REDIS_URL", default="")
# Redis connections each web process keeps for the hot path (per event loop). Past it a command
# waits for a free connection (at most 2 s, then 503) instead of failing at once.
GATEWAY_REDIS_MAX_CONNECTIONS = env.int("GATEWAY_REDIS_MAX_CONNECTIONS", default=100)

# --- Celery -------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"billing.tasks.*": {"queue": "usage"}}
CELERY_BEAT_SCHEDULE = {
    # Drains the usage stream; each run reads batches until the stream is empty.
    "ingest-usage": {
        "task": "billing.tasks.ingest_usage",
        "schedule": env.float("USAGE_INGEST_INTERVAL_S", default=1.0),
        "options": {"expires": 5},
    },
}

# --- Gateway ------------------------------------------------------------------------------------
# Fernet keys (comma-separated, newest first) that encrypt provider credentials at rest.
# Several keys allow rotation: all decrypt, the first encrypts.
GATEWAY_ENCRYPTION_KEYS = env.list("GATEWAY_ENCRYPTION_KEYS")
GATEWAY_MAX_BODY_BYTES = env.int("GATEWAY_MAX_BODY_BYTES", default=4 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = GATEWAY_MAX_BODY_BYTES
# --- Inbound /v1 requests: body reading, refusals ---------------------------------------------
# A request body that has not fully arrived this many seconds after the headers is refused with
# 408 and its connection closed: a client that sends half a body and stalls must not hold a
# connection (and its buffer) forever. A deadline for the whole body, not per read, so trickling
# a byte at a time does not extend it. 30 s carries a 4 MiB body over a link of ~1.2 Mbit/s.
GATEWAY_BODY_READ_TIMEOUT_S = env.float("GATEWAY_BODY_READ_TIMEOUT_S", default=30.0)
# Proxies (CIDRs) whose X-Forwarded-For is believed when logging a refused request's client
# address. Empty: the socket peer is the client, and X-Forwarded-For (which anyone can write) is
# ignored. A value that is not a CIDR or an address stops start-up.
GATEWAY_TRUSTED_PROXIES = env.list(
    "GATEWAY_TRUSTED_PROXIES",
    cast=lambda cidr: str(ipaddress.ip_network(cidr.strip(), strict=False)),
    default=[],
)
# How long a process trusts its own copy of a key before asking Redis again: the bound on how
# late a revocation takes effect (docs/operations.md lists the bounds in every case).
GATEWAY_KEY_CACHE_TTL_S = env.float("GATEWAY_KEY_CACHE_TTL_S", default=5.0)
GATEWAY_SHARED_KEY_CACHE_TTL_S = env.int("GATEWAY_SHARED_KEY_CACHE_TTL_S", default=60)
# --- Authentication, key cache, bounded database calls, usage spool -----------------------------
# Keys remembered per process (least recently used dropped first).
GATEWAY_KEY_CACHE_SIZE = env.int("GATEWAY_KEY_CACHE_SIZE", default=50_000)
# Unknown keys are remembered in Redis this long, so a flood of bad keys is not a flood of queries.
GATEWAY_NEGATIVE_KEY_CACHE_TTL_S = env.int("GATEWAY_NEGATIVE_KEY_CACHE_TTL_S", default=60)
# Failed authentications per client address and minute before it gets 429; 0 disables.
GATEWAY_AUTH_FAILURES_PER_MINUTE = env.int("GATEWAY_AUTH_FAILURES_PER_MINUTE", default=20)
# How often a process retries key cache invalidations that failed because Redis was unreachable.
GATEWAY_KEY_INVALIDATION_RETRY_S = env.float("GATEWAY_KEY_INVALIDATION_RETRY_S", default=1.0)
# Database calls the hot path makes (key lookups on cache misses, usage written directly): this
# many threads, this many more calls waiting, this long for an answer; beyond that, 503.
GATEWAY_DB_THREADS = env.int("GATEWAY_DB_THREADS", default=4)
GATEWAY_DB_QUEUE = env.int("GATEWAY_DB_QUEUE", default=32)
GATEWAY_DB_WAIT_TIMEOUT_S = env.float("GATEWAY_DB_WAIT_TIMEOUT_S", default=1.0)
# Usage events that neither Redis nor the database took are appended here, and replayed.
GATEWAY_SPOOL_DIR = env.str("GATEWAY_SPOOL_DIR", default=str(BASE_DIR / "var" / "spool"))
GATEWAY_SPOOL_REPLAY_INTERVAL_S = env.float("GATEWAY_SPOOL_REPLAY_INTERVAL_S", default=5.0)
GATEWAY_ROUTING_CACHE_TTL_S = env.float("GATEWAY_ROUTING_CACHE_TTL_S", default=5.0)
# Client request headers passed to the upstream; everything else is dropped.
GATEWAY_FORWARD_HEADERS = [
    h.lower() for h in env.list("GATEWAY_FORWARD_HEADERS", default=["openai-beta"])
]
GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S = env.float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S", default=5.0)
# As many as GATEWAY_MAX_IN_FLIGHT: each request in flight (a stream until its end) holds one
# upstream connection, and one beyond the pool would wait for a connection, not for its upstream.
GATEWAY_UPSTREAM_MAX_CONNECTIONS = env.int("GATEWAY_UPSTREAM_MAX_CONNECTIONS", default=256)
# Retries of a failed attempt on the same deployment (gateway/proxy/retries.py), before falling
# back to the next candidate: how many at most, the jittered backoff, and the retry budget
# (each request earns RATIO of a retry; MIN_PER_S retries a second are always allowed).
GATEWAY_UPSTREAM_RETRIES = env.int("GATEWAY_UPSTREAM_RETRIES", default=1)
GATEWAY_RETRY_BACKOFF_BASE_S = env.float("GATEWAY_RETRY_BACKOFF_BASE_S", default=0.05)
GATEWAY_RETRY_BACKOFF_MAX_S = env.float("GATEWAY_RETRY_BACKOFF_MAX_S", default=1.0)
GATEWAY_RETRY_BUDGET_RATIO = env.float("GATEWAY_RETRY_BUDGET_RATIO", default=0.2)
GATEWAY_RETRY_MIN_PER_S = env.int("GATEWAY_RETRY_MIN_PER_S", default=5)
# --- Outbound: upstream limits, deadlines, shutdown ---------------------------------------------
# The largest non-streamed upstream body read (bigger: 502). The biggest legitimate answers are
# embeddings of large batches in float JSON (2048 inputs x 1536 floats is ~60 MB).
GATEWAY_UPSTREAM_MAX_BODY_BYTES = env.int("GATEWAY_UPSTREAM_MAX_BODY_BYTES", default=64 * 1024**2)
# The largest single server-sent event (or unterminated line) in a stream; a bigger one ends the
# stream with an error event. Real chunks are a few hundred bytes.
GATEWAY_UPSTREAM_MAX_EVENT_BYTES = env.int("GATEWAY_UPSTREAM_MAX_EVENT_BYTES", default=1024**2)
# The whole request, all fallbacks included, from arrival to the end of the answer.
GATEWAY_REQUEST_DEADLINE_S = env.float("GATEWAY_REQUEST_DEADLINE_S", default=600.0)
# --- Overload: in-flight limit per web process (gateway/proxy/handler.py) -------------------------
# Proxy requests (streams until their last byte) one web process serves at once; one more gets an
# immediate 503 `overloaded` with Retry-After: 1, before its body is read: shed, never queued.
# 0 turns the limit off.
GATEWAY_MAX_IN_FLIGHT = env.int("GATEWAY_MAX_IN_FLIGHT", default=256)
# --- Garbage collection in the web processes (gateway/gctune.py) ---------------------------------
# Freeze what start-up allocated (Django, the URL conf and the views it imports) once it is done,
# so later collections no longer walk it: fewer and shorter full collections.
GATEWAY_GC_FREEZE = env.bool("GATEWAY_GC_FREEZE", default=True)
# The collector's thresholds, as gc.set_threshold takes them: one to three comma-separated
# positive integers (generation 0, then 1 and 2). "700,10,10" is Python's own default, kept:
# larger thresholds (10000 or 50000 for generation 0) made collections rarer but each pause
# proportionally longer, which is worse for the tail, and saved no GC time per request.
GATEWAY_GC_THRESHOLD = env.str("GATEWAY_GC_THRESHOLD", default="700,10,10")
# --- Admin console (django-unfold theme, index dashboard, list paging) ---------------------------
# The admin's name, its sidebar and the index dashboard (gateway/dashboard.py). SITE_URL: the
# "view site" link goes to the portal.
GATEWAY_ADMIN_TITLE = env.str("GATEWAY_ADMIN_TITLE", default="LLM Gateway")
# A budget counts as "near its limit" on the admin index from this share of it spent (percent).
GATEWAY_ADMIN_BUDGET_WARN_PERCENT = env.float("GATEWAY_ADMIN_BUDGET_WARN_PERCENT", default=80.0)
UNFOLD = {
    "SITE_TITLE": GATEWAY_ADMIN_TITLE,
    "SITE_HEADER": GATEWAY_ADMIN_TITLE,
    "SITE_SUBHEADER": "Admin console",
    "SITE_URL": "/",
    "SITE_SYMBOL": "hub",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "DASHBOARD_CALLBACK": "gateway.dashboard.dashboard_callback",
    "SIDEBAR": {"show_search": True, "show_all_applications": True},
}
# --- Management API (api/): DRF under /api/v1/, OpenAPI schema at /api/schema/, docs at /api/docs/
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "drf_spectacular_sidecar", "api"]
# Requests per token (or per signed-in user) in the shared cache; over it: 429 with Retry-After.
GATEWAY_API_RATE = env.str("GATEWAY_API_RATE", default="600/min")
# Personal access tokens expire; this is the longest life a new one may be given.
GATEWAY_API_TOKEN_MAX_DAYS = env.int("GATEWAY_API_TOKEN_MAX_DAYS", default=365)
# The longest grace period of a key rotation (the old secret keeps working that long).
GATEWAY_API_MAX_GRACE_S = env.int("GATEWAY_API_MAX_GRACE_S", default=7 * 86400)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.PersonalAccessTokenAuthentication",
        # The portal's session; DRF enforces CSRF on its unsafe requests.
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "api.permissions.TokenScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["api.throttles.ApiThrottle"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Money as exact decimal strings ("12.340000"), never floats.
    "COERCE_DECIMAL_TO_STRING": True,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "LLM gateway management API",
    "DESCRIPTION": "Teams, members, keys, policies, usage, deployments' health and data "
    "processing agreements. Authenticate with a personal access token "
    "(`Authorization: Bearer gwp_...`) or a signed-in session.",
    "VERSION": "1.0.0",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.add_error_responses",  # the one error shape on every operation
    ],
    # The docs page's Swagger UI from this server's static files, never from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
# --- Team portal (portal/) -----------------------------------------------------------------------
# Sign-in is /accounts/login/ (also /portal/login/), throttled like the admin's login
# (GATEWAY_ADMIN_LOGIN_RATE, portal/throttle.py). Password-reset requests (each sends an email)
# allowed per client address; reset links are valid for PASSWORD_RESET_TIMEOUT seconds, and
# are emailed through EMAIL_URL from DEFAULT_FROM_EMAIL.
LOGIN_URL = "/accounts/login/"
GATEWAY_PASSWORD_RESET_RATE = env.str("GATEWAY_PASSWORD_RESET_RATE", default="5/h")
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=24 * 3600)
# --- Usage rollups and retention (billing/rollups.py, billing/retention.py) -------------------
# Every ROLLUP_INTERVAL_S the days of newly ingested usage rows are recomputed into DailyUsage
# (what the dashboards read). Rows are looked for from OVERLAP_S before the last pass, so rows
# whose insert committed late are not missed.
GATEWAY_ROLLUP_INTERVAL_S = env.float("GATEWAY_ROLLUP_INTERVAL_S", default=300.0)
GATEWAY_ROLLUP_OVERLAP_S = env.float("GATEWAY_ROLLUP_OVERLAP_S", default=300.0)
# Retention, in days: usage rows (at least 62, two budget months; only days already rolled up),
# stored prompt/response content, and rollups (0: kept forever). Purged every
# RETENTION_INTERVAL_S, RETENTION_BATCH rows per DELETE.
GATEWAY_USAGE_RETENTION_DAYS = env.int("GATEWAY_USAGE_RETENTION_DAYS", default=395)
GATEWAY_CONTENT_RETENTION_DAYS = env.int("GATEWAY_CONTENT_RETENTION_DAYS", default=30)
GATEWAY_ROLLUP_RETENTION_DAYS = env.int("GATEWAY_ROLLUP_RETENTION_DAYS", default=0)
GATEWAY_RETENTION_BATCH = env.int("GATEWAY_RETENTION_BATCH", default=5000)
GATEWAY_RETENTION_INTERVAL_S = env.float("GATEWAY_RETENTION_INTERVAL_S", default=86400.0)
CELERY_BEAT_SCHEDULE["rollup-usage"] = {
    "task": "billing.rollups.run",
    "schedule": GATEWAY_ROLLUP_INTERVAL_S,
    # A pass that waited a whole interval is redundant: the next one does the same work.
    "options": {"queue": "default", "expires": GATEWAY_ROLLUP_INTERVAL_S},
}
CELERY_BEAT_SCHEDULE["purge-expired-usage"] = {
    "task": "billing.retention.run",
    "schedule": GATEWAY_RETENTION_INTERVAL_S,
    "options": {"queue": "default", "expires": 3600},
}
# --- Metrics and traces (gateway/metrics.py, gateway/proxy/metrics.py, gateway/proxy/tracing.py)
# A bearer token for GET /metrics; unset, /metrics answers loopback clients only (404 to others).
GATEWAY_METRICS_TOKEN = env.str("GATEWAY_METRICS_TOKEN", default="")
# prometheus_client reads this variable itself, at import; mirrored here for the system checks.
# Set (by `make serve` and the container's entrypoint): every worker's counts are summed.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# OpenTelemetry traces of the request path, exported over OTLP/HTTP: on when this is true or
# OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set. Off, the SDK is
# not even imported. The exporter reads the standard OTEL_* variables (headers, timeout,
# OTEL_SERVICE_NAME, OTEL_BSP_SCHEDULE_DELAY...).
GATEWAY_OTEL_ENABLED = env.bool("GATEWAY_OTEL_ENABLED", default=False) or bool(
    env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="")
    or env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", default="")
)
# --- Compliance reminders and report (compliance/reminders.py, compliance/report.py) ----------
# Reminders go this many days before an agreement's expiry, its BAA's expiry and its next review
# (each once), and on the day itself. The daily check runs at this hour (0-23, UTC).
_reminder_days = env.list("GATEWAY_COMPLIANCE_REMINDER_DAYS", cast=int, default=[30, 7])
GATEWAY_COMPLIANCE_REMINDER_DAYS = sorted({d for d in _reminder_days if d > 0}, reverse=True)
GATEWAY_COMPLIANCE_REMINDER_HOUR = env.int("GATEWAY_COMPLIANCE_REMINDER_HOUR", default=8)
CELERY_BEAT_SCHEDULE["compliance-reminders"] = {
    "task": "compliance.reminders.check",
    "schedule": crontab(minute=0, hour=GATEWAY_COMPLIANCE_REMINDER_HOUR),
    # A run still waiting an hour later is dropped: the next day's run catches up.
    "options": {"queue": "default", "expires": 3600},
}
# Who gets every reminder by email, besides each agreement's owner.
GATEWAY_COMPLIANCE_EMAILS = env.list("GATEWAY_COMPLIANCE_EMAILS", default=[])
# A Slack-compatible webhook for reminders (https, or http to this machine only); empty: none.
# A secret: never logged nor recorded. Sent with the budget alerts' timeout and retries.
GATEWAY_COMPLIANCE_WEBHOOK_URL = env.str("GATEWAY_COMPLIANCE_WEBHOOK_URL", default="")
# The report's "expiring soon" gap: agreements (and BAAs) lapsing within this many days.
GATEWAY_COMPLIANCE_EXPIRING_DAYS = env.int("GATEWAY_COMPLIANCE_EXPIRING_DAYS", default=30)
# --- Compliance registry (compliance/): agreement documents uploaded in the admin are stored
# here and served only to staff through the admin (never as public media).
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))
# --- PII scrubber (infra/pii.py)
# Phone numbers written without a +country code are read as numbers of this region (ISO 3166
# alpha-2); numbers with a + prefix are recognised whatever the region.
GATEWAY_PII_PHONE_REGION = env.str("GATEWAY_PII_PHONE_REGION", default="US")
# --- Privacy modes and prompt scrubbing (gateway/proxy/privacy.py, content.py)
# The key of the `hashed` privacy mode's HMAC-SHA-256 of prompts and responses: at least 32
# characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`). Unset: a
# team in `hashed` mode gets no content stored at all (a system check warns). Rotating it
# changes every hash from then on; UsageContent.hmac_key_id says which key made a hash.
GATEWAY_CONTENT_HMAC_KEY = env.str("GATEWAY_CONTENT_HMAC_KEY", default="")
# Prompts and responses longer than this (characters) are scrubbed or hashed in a worker
# thread rather than on the event loop (about 10 ms of scrubbing at ~1.5 MB/s).
GATEWAY_PII_OFFLOOP_CHARS = env.int("GATEWAY_PII_OFFLOOP_CHARS", default=16 * 1024)
# --- Deployment health: circuit breakers, 429 cooldown, latency, health checks (routing/health)
# A deployment's breaker opens after this many failures in a row (connect error, timeout, 5xx,
# overload, unreadable body), or when at least ERROR_RATE_PCT % of at least MIN_OUTCOMES
# outcomes in a WINDOW_S window failed. Client mistakes and disconnects never count.
GATEWAY_BREAKER_CONSECUTIVE_FAILURES = env.int("GATEWAY_BREAKER_CONSECUTIVE_FAILURES", default=5)
GATEWAY_BREAKER_ERROR_RATE_PCT = env.int("GATEWAY_BREAKER_ERROR_RATE_PCT", default=50)
GATEWAY_BREAKER_MIN_OUTCOMES = env.int("GATEWAY_BREAKER_MIN_OUTCOMES", default=10)
GATEWAY_BREAKER_WINDOW_S = env.float("GATEWAY_BREAKER_WINDOW_S", default=30.0)
# Open this long, doubled after each failed half-open probe up to MAX_OPEN_S; then this many
# requests at a time may probe it (half-open).
GATEWAY_BREAKER_OPEN_S = env.float("GATEWAY_BREAKER_OPEN_S", default=30.0)
GATEWAY_BREAKER_MAX_OPEN_S = env.float("GATEWAY_BREAKER_MAX_OPEN_S", default=300.0)
GATEWAY_BREAKER_HALF_OPEN_PROBES = env.int("GATEWAY_BREAKER_HALF_OPEN_PROBES", default=1)
# A provider's 429 cools the deployment for its Retry-After, at most MAX_COOLDOWN_S; without a
# Retry-After, for DEFAULT_COOLDOWN_S (0: not at all; a 429 alone is no breaker failure).
GATEWAY_BREAKER_MAX_COOLDOWN_S = env.float("GATEWAY_BREAKER_MAX_COOLDOWN_S", default=300.0)
GATEWAY_BREAKER_DEFAULT_COOLDOWN_S = env.float("GATEWAY_BREAKER_DEFAULT_COOLDOWN_S", default=0.0)
# Weight of the newest latency in the per-deployment EWMA (time to first token for streams).
GATEWAY_HEALTH_EWMA_ALPHA = env.float("GATEWAY_HEALTH_EWMA_ALPHA", default=0.3)
# How long a process reuses its read of its candidates' health (0: read it on every request).
GATEWAY_HEALTH_CACHE_S = env.float("GATEWAY_HEALTH_CACHE_S", default=0.25)
# Active health checks (Celery beat): every INTERVAL_S each enabled deployment is probed (its
# models endpoint, else a 1-token completion) within TIMEOUT_S; this many failed checks in a
# row open its breaker. Check rows older than HISTORY_DAYS, or beyond HISTORY_ROWS per
# deployment, are purged.
GATEWAY_HEALTH_CHECK_INTERVAL_S = env.float("GATEWAY_HEALTH_CHECK_INTERVAL_S", default=30.0)
GATEWAY_HEALTH_CHECK_TIMEOUT_S = env.float("GATEWAY_HEALTH_CHECK_TIMEOUT_S", default=10.0)
GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN = env.int("GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN", default=1)
GATEWAY_HEALTH_HISTORY_DAYS = env.int("GATEWAY_HEALTH_HISTORY_DAYS", default=7)
GATEWAY_HEALTH_HISTORY_ROWS = env.int("GATEWAY_HEALTH_HISTORY_ROWS", default=500)
CELERY_BEAT_SCHEDULE["check-deployment-health"] = {
    "task": "routing.health.check",
    "schedule": GATEWAY_HEALTH_CHECK_INTERVAL_S,
    "options": {"queue": "default", "expires": GATEWAY_HEALTH_CHECK_INTERVAL_S},
}
# --- Policy engine (policies/) ---
# Each process serves policies from a snapshot of the Policy and ModelLimit rows (like the
# routing table): a change made in another process applies everywhere within this many seconds.
GATEWAY_POLICY_CACHE_TTL_S = env.float("GATEWAY_POLICY_CACHE_TTL_S", default=5.0)
# --- Admission: rate limits and budgets (policies/admission.py) ---------------------------------
# A budget reservation of a request that never settles (its process died) stops counting after
# this long; keep it above GATEWAY_REQUEST_DEADLINE_S, or live requests lose their reservation.
GATEWAY_BUDGET_RESERVATION_TTL_S = env.float("GATEWAY_BUDGET_RESERVATION_TTL_S", default=900.0)
# Redis down (or a budget's spend unreadable): hard budgets refuse with 503 unless this is on,
# which admits requests without checking them (logged loudly).
GATEWAY_BUDGET_FAIL_OPEN = env.bool("GATEWAY_BUDGET_FAIL_OPEN", default=False)
# A budget that clamps max_tokens grants at least this many output tokens, or refuses.
GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS = env.int("GATEWAY_MIN_CLAMPED_OUTPUT_TOKENS", default=16)
# Output tokens reserved (tokens and cost) when neither the request nor the deployment says.
GATEWAY_DEFAULT_MAX_OUTPUT_TOKENS = env.int("GATEWAY_DEFAULT_MAX_OUTPUT_TOKENS", default=4096)
# --- Budgets: spend ledger, counter reconciliation, alerts (billing/budgets.py, alerts.py) ----
# How often the budget check runs (Celery beat): refresh the spend ledger from usage records,
# raise Redis spend counters that fell behind it, then send the alerts of crossed thresholds.
GATEWAY_BUDGET_CHECK_INTERVAL_S = env.float("GATEWAY_BUDGET_CHECK_INTERVAL_S", default=60.0)
CELERY_BEAT_SCHEDULE["check-budgets"] = {
    "task": "billing.budgets.check",
    "schedule": GATEWAY_BUDGET_CHECK_INTERVAL_S,
    # A run that waited a whole interval is redundant: the next one does the same work.
    "options": {"queue": "default", "expires": GATEWAY_BUDGET_CHECK_INTERVAL_S},
}
# Budget alert webhooks (Slack-compatible): each call's timeout, and the retries after a failed
# call (connect error, timeout, 5xx, 429), waiting BACKOFF_S * 2**n seconds (with jitter).
GATEWAY_ALERT_WEBHOOK_TIMEOUT_S = env.float("GATEWAY_ALERT_WEBHOOK_TIMEOUT_S", default=10.0)
GATEWAY_ALERT_WEBHOOK_RETRIES = env.int("GATEWAY_ALERT_WEBHOOK_RETRIES", default=5)
GATEWAY_ALERT_WEBHOOK_BACKOFF_S = env.int("GATEWAY_ALERT_WEBHOOK_BACKOFF_S", default=2)
# Budget alert email goes through Django's mail backends, chosen by one URL: smtp://host:25,
# smtp+tls://user:password@host:587, consolemail://, filemail:////path/to/dir, dummymail://.
# Django's own default (SMTP on localhost:25) when unset.
globals().update(
    {
        name: value
        for name, value in env.email_url("EMAIL_URL", default="smtp://localhost:25").items()
        if value not in (None, "")
    }
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="gateway@localhost")
# On SIGTERM/SIGINT, streams still open after this long end with an error event (and are
# settled). Keep it below the server's own graceful timeout (--timeout-graceful-shutdown).
GATEWAY_SHUTDOWN_TIMEOUT_S = env.float("GATEWAY_SHUTDOWN_TIMEOUT_S", default=25.0)

GATEWAY_USAGE_STREAM = env.str("GATEWAY_USAGE_STREAM", default="gw:usage")
GATEWAY_USAGE_BATCH_SIZE = env.int("GATEWAY_USAGE_BATCH_SIZE", default=500)
# A usage event read but not acked for this long belongs to a crashed consumer and is replayed.
GATEWAY_USAGE_CLAIM_IDLE_MS = env.int("GATEWAY_USAGE_CLAIM_IDLE_MS", default=60_000)
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=1)

# --- Misc ---------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json: one JSON object per line, for a log pipeline (gateway/logformat.py); console: readable
# lines for a person at a terminal. The default follows the mode: console for the embedded
# default (`make run`, no DATABASE_URL and no REDIS_URL), json once either service is configured.
LOG_FORMAT = env.str("LOG_FORMAT", default="console" if EMBEDDED_DB and not REDIS_URL else "json")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT has an invalid value: {LOG_FORMAT!r} (json or console)")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "gateway.logformat.JsonFormatter"},
        "console": {"()": "gateway.logformat.ConsoleFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # 4xx on /v1 are the callers' business and already in the usage log; 5xx still log.
        "django.request": {"level": "ERROR"},
        # uvicorn configures its loggers with its own plain formatter before it imports the app;
        # this replaces that handler so its start-up lines and errors come out in LOG_FORMAT
        # too. No level: uvicorn's --log-level stays in charge. Not the parent "uvicorn": that
        # would reset its child "uvicorn.access" and turn the access log back on, which every
        # command here turns off (--no-access-log; the usage log records each request).
        "uvicorn.error": {"handlers": ["console"], "propagate": False},
        # Django's defaults give this one a DEBUG-only handler of their own.
        "py.warnings": {"handlers": ["console"], "propagate": False},
    },
}
# Python warnings (deprecations, misconfiguration notices) through logging, in LOG_FORMAT, rather
# than as bare text on stderr.
logging.captureWarnings(True)
# Celery's worker would otherwise put its own plain handler on the root logger.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Secret rotation ------------------------------------------------------------------------------
# Former SECRET_KEYs, comma-separated, newest first. What they signed (admin and portal sessions,
# password-reset links, signed cookies) still validates while they are listed; new
# signatures use SECRET_KEY only. Drop an entry once the longest-lived of those has expired
# (SESSION_COOKIE_AGE, PASSWORD_RESET_TIMEOUT): docs/operations.md, "Rotating SECRET_KEY".
SECRET_KEY_FALLBACKS = env.list("SECRET_KEY_FALLBACKS", default=[])
