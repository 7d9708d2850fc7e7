"""Settings, read from the environment (and an optional `.env` file) through django-environ.

Every value is typed; a malformed value raises ImproperlyConfigured at start-up rather than
misbehaving later. Combinations are validated by the system checks in gateway/checks.py.
docs/configuration.md lists every variable.
"""

from pathlib import Path

import environ
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

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "gateway",
    "tenants",
    "routing",
    "billing",
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
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
        # psycopg 3's pool through Django's backend: a cache-miss on the hot path reuses a warm
        # connection instead of paying a TCP + auth handshake.
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=10),
        }
        # With a pool, Django turns this into psycopg_pool's check on checkout: after a
        # database restart the pooled connections are dead, and handing one out would fail a
        # request for nothing.
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# No REDIS_URL: in-process state (key cache, usage queue). One process only (see checks.py).
REDIS_URL = env.str("REDIS_URL", default="")

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
# How long a process trusts its own copy of a key / the routing table before asking Redis or the
# database again. This bounds how late a revocation or a config change takes effect.
GATEWAY_KEY_CACHE_TTL_S = env.float("GATEWAY_KEY_CACHE_TTL_S", default=5.0)
GATEWAY_SHARED_KEY_CACHE_TTL_S = env.int("GATEWAY_SHARED_KEY_CACHE_TTL_S", default=300)
GATEWAY_ROUTING_CACHE_TTL_S = env.float("GATEWAY_ROUTING_CACHE_TTL_S", default=5.0)
# Client request headers passed to the upstream; everything else is dropped.
GATEWAY_FORWARD_HEADERS = [
    h.lower() for h in env.list("GATEWAY_FORWARD_HEADERS", default=["openai-beta"])
]
GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S = env.float("GATEWAY_UPSTREAM_CONNECT_TIMEOUT_S", default=5.0)
GATEWAY_UPSTREAM_MAX_CONNECTIONS = env.int("GATEWAY_UPSTREAM_MAX_CONNECTIONS", default=200)
# --- Outbound: upstream limits, deadlines, shutdown ---------------------------------------------
# The largest non-streamed upstream body read (bigger: 502). The biggest legitimate answers are
# embeddings of large batches in float JSON (2048 inputs x 1536 floats is ~60 MB).
GATEWAY_UPSTREAM_MAX_BODY_BYTES = env.int("GATEWAY_UPSTREAM_MAX_BODY_BYTES", default=64 * 1024**2)
# The largest single server-sent event (or unterminated line) in a stream; a bigger one ends the
# stream with an error event. Real chunks are a few hundred bytes.
GATEWAY_UPSTREAM_MAX_EVENT_BYTES = env.int("GATEWAY_UPSTREAM_MAX_EVENT_BYTES", default=1024**2)
# The whole request, all fallbacks included, from arrival to the end of the answer.
GATEWAY_REQUEST_DEADLINE_S = env.float("GATEWAY_REQUEST_DEADLINE_S", default=600.0)
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
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # 4xx on /v1 are the callers' business and already in the usage log; 5xx still log.
        "django.request": {"level": "ERROR"},
    },
}
