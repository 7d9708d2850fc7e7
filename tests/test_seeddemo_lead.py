"""seeddemo's team lead: a login for the portal and the admin, its password printed once and
stored only as Django's hash."""

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command
from django.urls import reverse

from tenants.models import Membership

PASSWORD_RE = re.compile(r"Login:\s+lead@demo\.local\s+password: (\S+)")


def _seeddemo() -> str:
    out = StringIO()
    call_command("seeddemo", "--base-url", "http://gw.test:9000", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seeddemo_creates_the_lead_once_and_prints_the_password_once(client):
    first = _seeddemo()
    password = PASSWORD_RE.search(first).group(1)
    user = get_user_model().objects.get(username="lead@demo.local")
    assert user.is_staff and not user.is_superuser
    assert password not in user.password  # a hash, never the password itself
    assert authenticate(username="lead@demo.local", password=password) == user
    membership = Membership.objects.get(user=user)
    assert (membership.team.slug, membership.role) == ("demo", "owner")
    assert "http://gw.test:9000/portal/" in first and "http://gw.test:9000/admin/" in first

    second = _seeddemo()
    assert password not in second
    assert not PASSWORD_RE.search(second)
    assert "manage.py changepassword lead@demo.local" in second
    assert get_user_model().objects.filter(username="lead@demo.local").count() == 1
    assert Membership.objects.filter(user=user).count() == 1

    # The login opens the admin (a platform admin): its index and a team list.
    assert client.login(username="lead@demo.local", password=password)
    assert client.get(reverse("admin:index")).status_code == 200
    assert client.get(reverse("admin:tenants_apikey_changelist")).status_code == 200
