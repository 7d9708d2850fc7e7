"""System checks: combinations of settings that would misbehave, caught at start-up."""

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
    if settings.GATEWAY_KEY_CACHE_TTL_S > 60:
        issues.append(
            Warning(
                "GATEWAY_KEY_CACHE_TTL_S is over 60 s: a revoked key keeps working that long in "
                "each web process.",
                id="gateway.W002",
            )
        )
    return issues
