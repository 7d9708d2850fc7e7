"""Regions become a fixed vocabulary (routing/regions.py).

Values that name a vocabulary entry in another spelling ("EU", " eu-West ") are rewritten to
it; cloud region ids (us-east-1, westeurope) are kept as written: bedrock signs for them. Any
other value is left alone and logged: the routing table treats it as no region, so a policy
with allowed_regions excludes that deployment until an admin fixes it.
"""

import logging

from django.db import migrations

log = logging.getLogger(__name__)

# Frozen here: the migration must mean the same when routing/regions.py grows.
_VOCABULARY = frozenset(
    "eu eu-west eu-central eu-north eu-south uk uk-south uk-west us us-east us-west us-central "
    "ca ca-central ca-east ca-west ap ap-south ap-southeast ap-northeast ap-east sa sa-east "
    "sa-west me me-central me-south af af-south on-prem".split()
)


def _normalize(apps, schema_editor):
    from routing.regions import CLOUD

    for model_name in ("Provider", "Deployment"):
        model = apps.get_model("routing", model_name)
        for row in model.objects.exclude(region=""):
            value = row.region.strip().lower()
            if value in _VOCABULARY and value != row.region:
                model.objects.filter(pk=row.pk).update(region=value)
            elif value not in _VOCABULARY and value not in CLOUD:
                log.warning(
                    "%s %s: region %r is not in the region vocabulary; left as is and treated "
                    "as no region until it is fixed",
                    model_name.lower(),
                    row.pk,
                    row.region,
                )


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0010_model_groups_and_rules"),
    ]

    operations = [migrations.RunPython(_normalize, migrations.RunPython.noop)]
