from celery import shared_task

from .health_checks import health_check


@shared_task(name="routing.health.check", ignore_result=False)
def check_health() -> dict:
    """Beat runs this every GATEWAY_HEALTH_CHECK_INTERVAL_S. Overlapping runs are harmless:
    each probe is one more outcome, and each result one more history row."""
    results = health_check()
    return {
        "checked": len(results),
        "down": sorted(p.route.label for p in results if not p.ok),
    }
