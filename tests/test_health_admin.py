"""The health check's records in Postgres and what the admin shows of them."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from routing import health
from routing.health_checks import health_check
from routing.models import DeploymentHealth, HealthCheck
from routing.selectors import routing_table_build

from .factories import DeploymentFactory

pytestmark = pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis (make test)")


def _route(deployment):
    for routes in routing_table_build().routes.values():
        for route in routes:
            if route.deployment_id == deployment.pk:
                return route
    raise AssertionError("the deployment is not routed")


@pytest.mark.django_db
def test_each_check_records_the_state_and_a_bounded_history(settings):
    settings.GATEWAY_HEALTH_HISTORY_ROWS = 3
    deployment = DeploymentFactory()  # a mock deployment: its probe always succeeds
    old = HealthCheck.objects.create(
        deployment=deployment, at=timezone.now() - timedelta(days=30), ok=False, latency_ms=1
    )
    for _ in range(5):
        results = health_check()
    assert [p.ok for p in results if p.route.deployment_id == deployment.pk] == [True]
    row = DeploymentHealth.objects.get(deployment=deployment)
    assert row.state == health.CLOSED and row.consecutive_failures == 0
    assert row.last_ok_at == row.last_check_at is not None
    kept = HealthCheck.objects.filter(deployment=deployment)
    assert kept.count() == 3  # the newest rows only
    assert not kept.filter(pk=old.pk).exists()  # older than GATEWAY_HEALTH_HISTORY_DAYS


@pytest.mark.django_db
def test_deployment_pages_show_state_last_error_and_latency_history(admin_client):
    deployment = DeploymentFactory()
    route = _route(deployment)
    for _ in range(settings.GATEWAY_HEALTH_CHECK_FAILURES_TO_OPEN):
        health.report_sync(route, health.FAIL)
    now = timezone.now()
    DeploymentHealth.objects.create(
        deployment=deployment,
        state=health.OPEN,
        last_error="upstream_unavailable: connection refused",
        last_check_at=now,
        consecutive_failures=1,
    )
    for i in range(25):
        HealthCheck.objects.create(
            deployment=deployment, at=now - timedelta(seconds=i), ok=i > 0, latency_ms=100 + i
        )

    listing = admin_client.get(reverse("admin:routing_deployment_changelist")).content.decode()
    assert "open: upstream_unavailable: connection refused" in listing

    page = admin_client.get(
        reverse("admin:routing_deployment_change", args=[deployment.pk])
    ).content.decode()
    assert "Live state (shared breaker)" in page
    assert "open, usable again in" in page  # read from the shared state, not the table
    assert "upstream_unavailable: connection refused" in page
    assert page.count("<td>failed</td>") == 1
    assert page.count("<td>ok</td>") == 19  # the last 20 checks only
    assert "100 ms" in page and "124 ms" not in page

    overview = admin_client.get(reverse("admin:routing_deploymenthealth_changelist"))
    assert overview.status_code == 200
    assert "connection refused" in overview.content.decode()
