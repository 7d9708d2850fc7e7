"""An issued key stays with the team it was issued to: its usage, budget and audit trail
belong there, and moving it would hand another team a secret someone already holds."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tenants.models import ApiKey, Team
from tenants.services import api_key_issue, api_key_revoke

from .helpers_admin import KEY_INLINES, empty_inlines


def _key(team: Team, name: str = "k") -> ApiKey:
    return api_key_issue(team=team, name=name).api_key


def test_saving_a_key_with_another_team_is_refused(team, other_team):
    key = _key(team)
    key.team = other_team
    with pytest.raises(ValidationError, match="team cannot be changed"):
        key.save()
    # Built from scratch with the same id: the stored row decides, not what was loaded.
    forged = ApiKey(pk=key.pk, team=other_team, name="x", key_hash=key.key_hash)
    with pytest.raises(ValidationError, match="team cannot be changed"):
        forged.save()
    assert ApiKey.objects.get(pk=key.pk).team_id == team.pk


def test_other_saves_of_a_key_still_work(team):
    key = _key(team)
    key.name = "renamed"
    key.save()
    api_key_revoke(api_key=key)
    stored = ApiKey.objects.get(pk=key.pk)
    assert (stored.name, stored.team_id) == ("renamed", team.pk)
    assert stored.revoked_at is not None


def test_moving_keys_by_queryset_update_is_refused(team, other_team):
    key = _key(team)
    with pytest.raises(ValidationError, match="team cannot be changed"):
        ApiKey.objects.filter(pk=key.pk).update(team=other_team)
    with pytest.raises(ValidationError, match="team cannot be changed"):
        ApiKey.objects.filter(pk=key.pk).update(team_id=other_team.pk)
    assert ApiKey.objects.get(pk=key.pk).team_id == team.pk


def test_admin_shows_an_issued_keys_team_read_only_and_ignores_a_posted_one(
    admin_client, team, other_team
):
    key = _key(team)
    url = reverse("admin:tenants_apikey_change", args=[key.pk])
    page = admin_client.get(url).content.decode()
    assert 'name="team"' not in page  # no input: shown as text
    assert team.slug in page

    data = {
        "team": other_team.pk,
        "name": "renamed",
        "allowed_models": "[]",
        **empty_inlines(*KEY_INLINES),
    }
    response = admin_client.post(url, data)

    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.team_id) == ("renamed", team.pk)


def test_admin_add_form_still_lets_you_pick_the_team(admin_client, team):
    page = admin_client.get(reverse("admin:tenants_apikey_add")).content.decode()
    assert 'name="team"' in page
