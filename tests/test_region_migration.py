"""The region vocabulary's data migration: respelled names fixed, cloud ids kept, the rest
logged and left (the routing table then treats them as no region)."""

import importlib
import logging

from django.apps import apps

from routing.models import Deployment, Provider
from routing.selectors import routing_table_build

from .factories import DeploymentFactory, ProviderFactory

migration = importlib.import_module("routing.migrations.0011_region_vocabulary")


def test_existing_regions_are_mapped_kept_or_logged(db, caplog):
    eu = ProviderFactory(name="eu")
    aws = ProviderFactory(name="aws")
    odd = ProviderFactory(name="odd")
    kept = DeploymentFactory(provider=odd, model_name="m", upstream_model="x")
    # Written before the vocabulary existed: no validation on update().
    Provider.objects.filter(pk=eu.pk).update(region=" EU-West")
    Provider.objects.filter(pk=aws.pk).update(region="us-east-1")
    Provider.objects.filter(pk=odd.pk).update(region="local")
    Deployment.objects.filter(pk=kept.pk).update(region="Mars")

    with caplog.at_level(logging.WARNING):
        migration._normalize(apps, None)

    assert Provider.objects.get(pk=eu.pk).region == "eu-west"
    assert Provider.objects.get(pk=aws.pk).region == "us-east-1"
    assert Provider.objects.get(pk=odd.pk).region == "local"
    assert Deployment.objects.get(pk=kept.pk).region == "Mars"
    logged = [r.getMessage() for r in caplog.records]
    assert any(
        f"provider {odd.pk}: region 'local' is not in the region vocabulary" in m for m in logged
    )
    assert any(f"deployment {kept.pk}: region 'Mars'" in m for m in logged)
    [route] = routing_table_build().candidates("chat", "m")
    assert (route.region, route.residency) == ("Mars", "")
