"""Garbage collection in a web process: pauses timed, start-up objects frozen, thresholds set.

Every collection stops the event loop; a full one walks every tracked object the process holds,
and after start-up most of those (Django, the URL conf, the admin and API views) live as long as
the process. `apply()` runs once per server process when the ASGI application is imported
(gateway/asgi.py: after Django's setup and the system checks), so `make run`, `make serve` and
the test servers alike get:

- the pause histogram's hook (gateway/proxy/gcstats.py);
- GATEWAY_GC_THRESHOLD through gc.set_threshold;
- with GATEWAY_GC_FREEZE, one collection of start-up's garbage (so none of it is kept for good),
  then gc.freeze(): what is left moves to the permanent generation, which no collection walks.

GATEWAY_GC_THRESHOLD is validated by a system check (gateway.E200), which runs before apply().
"""

import gc
import importlib

from django.conf import settings
from django.core.checks import Error, register

from gateway.proxy import gcstats


def parse_threshold(value: str) -> tuple[int, ...]:
    """'700,10,10' -> (700, 10, 10); one to three positive integers, else ValueError."""
    parts = [part.strip() for part in value.split(",")]
    if not 1 <= len(parts) <= 3:
        raise ValueError("one to three comma-separated integers")
    try:
        numbers = tuple(int(part) for part in parts)
    except ValueError:
        raise ValueError("not integers") from None
    # 0 for generation 0 would turn automatic collection off: reference cycles would pile up.
    if any(number < 1 for number in numbers):
        raise ValueError("every threshold must be positive")
    return numbers


@register()
def check_gc(app_configs, **kwargs):
    try:
        parse_threshold(settings.GATEWAY_GC_THRESHOLD)
    except ValueError as exc:
        return [
            Error(
                f"GATEWAY_GC_THRESHOLD ({settings.GATEWAY_GC_THRESHOLD!r}) is invalid: {exc}.",
                hint="One to three comma-separated positive integers, as gc.set_threshold "
                'takes them: e.g. "700,10,10" (Python\'s default).',
                id="gateway.E200",
            )
        ]
    return []


def apply() -> None:
    """Install the pause hook, set the thresholds and, if configured, freeze start-up's objects.
    Call once start-up is complete: what is frozen then is never collected."""
    gcstats.install()
    gc.set_threshold(*parse_threshold(settings.GATEWAY_GC_THRESHOLD))
    if settings.GATEWAY_GC_FREEZE:
        # The URL conf is imported on the first request otherwise; it brings in every view.
        importlib.import_module(settings.ROOT_URLCONF)
        gc.collect()
        gc.freeze()
