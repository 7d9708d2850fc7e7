import datetime
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from billing.models import LATENCY_BUCKETS_MS, DailyUsage
from routing.models import Deployment, Provider
from tenants.models import Membership, Organization, Project, Team


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ["slug"]

    slug = "default"
    name = "Default"


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    organization = factory.SubFactory(OrganizationFactory)
    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())
    allowed_models = factory.LazyFunction(lambda: ["*"])


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    team = factory.SubFactory(TeamFactory)
    slug = factory.Sequence(lambda n: f"project-{n}")
    name = factory.LazyAttribute(lambda p: p.slug.title())


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    team = factory.SubFactory(TeamFactory)
    role = Membership.Role.MEMBER


class ProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Provider

    name = factory.Sequence(lambda n: f"provider-{n}")
    kind = Provider.Kind.MOCK
    region = "eu"


class DeploymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Deployment

    provider = factory.SubFactory(ProviderFactory)
    model_name = "small"
    upstream_model = factory.Sequence(lambda n: f"upstream-model-{n}")
    input_cost_per_mtok = "0.150000"
    output_cost_per_mtok = "0.600000"
    context_window = 128000


class DailyUsageFactory(factory.django.DjangoModelFactory):
    """A rollup row as billing/rollups.py writes it; tests set the numbers they check."""

    class Meta:
        model = DailyUsage

    day = factory.LazyFunction(lambda: datetime.date(2026, 11, 3))
    team = factory.SubFactory(TeamFactory)
    team_slug = factory.LazyAttribute(lambda r: r.team.slug if r.team else "")
    organization_id = factory.LazyAttribute(lambda r: r.team.organization_id if r.team else None)
    model = "small"
    provider_name = "provider-a"
    requests = 10
    cost_usd = Decimal("1.000000")
    latency_hist = factory.LazyFunction(lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))


class AgreementFactory(factory.django.DjangoModelFactory):
    """A signed agreement with no expiry that grants nothing beyond a plain DPA."""

    class Meta:
        model = "compliance.DataProcessingAgreement"

    provider = factory.SubFactory(ProviderFactory)
    status = "signed"
    signed_on = datetime.date(2026, 1, 15)
