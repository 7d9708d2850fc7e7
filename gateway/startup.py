"""Start-up: every server process runs the system checks before it serves, and refuses to serve
when one fails.

`manage.py` commands run the checks, but an ASGI server only imports gateway.asgi: without this,
uvicorn happily started two workers with an invalid encryption key and no Redis. Errors stop the
process with the messages on stderr; warnings are logged and serving goes on. In production mode
(DATABASE_URL set) the deployment checks run too (`manage.py check --deploy`: HTTPS, cookies,
Redis eviction).

    python -m gateway.startup   # the same checks, once, before a multi-worker server starts
                                # (and PROMETHEUS_MULTIPROC_DIR emptied for the workers)
"""

import logging
import os
import sys

from django.core.checks import CheckMessage
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("gateway.startup")

# uvicorn's own exit status for "failed before serving". Its multi-worker supervisor stops when a
# worker exits with it; any other status makes it restart the worker, which fails again, forever.
STARTUP_FAILURE = 3


def _describe(issue: CheckMessage) -> str:
    text = f"  ({issue.id}) {issue.msg}"
    if issue.hint:
        text += f"\n      hint: {issue.hint}"
    return text


def run_startup_checks() -> list[CheckMessage]:
    """Run the system checks; log warnings, raise ImproperlyConfigured listing every error."""
    from django.conf import settings
    from django.core import checks

    issues = checks.run_checks(include_deployment_checks=settings.GATEWAY_PRODUCTION)
    visible = [issue for issue in issues if not issue.is_silenced()]
    errors = [issue for issue in visible if issue.is_serious()]
    if errors:
        raise ImproperlyConfigured(
            f"the gateway refuses to start: {len(errors)} configuration error(s).\n"
            + "\n".join(_describe(issue) for issue in errors)
            + "\nFix the environment variables named above (`python manage.py check --deploy` "
            "lists the same problems)."
        )
    for issue in visible:
        if issue.level >= checks.WARNING:
            log.warning("system check: %s", _describe(issue).strip())
    return visible


def check_or_exit() -> None:
    """Set Django up and run the checks; on any error, exit with STARTUP_FAILURE."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway.settings")
    try:
        # Settings that cannot be parsed raise here: the same exit, not a restart loop.
        django.setup(set_prefix=False)
        run_startup_checks()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"ImproperlyConfigured: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(STARTUP_FAILURE) from None


if __name__ == "__main__":
    check_or_exit()
    # Run once before the workers start, so this is where a previous run's metric files go
    # (gateway/proxy/metrics.py: multiprocess mode).
    from gateway.proxy import metrics

    metrics.prepare_multiproc_dir()
