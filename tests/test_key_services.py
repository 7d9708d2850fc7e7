"""The key and membership services: rotation with a grace period, limits within the team's,
and memberships that never leave a team headless. Each leaves an audit row."""

import time
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.core.exceptions import ValidationError
from django.test import RequestFactory

from audit.models import AuditEvent
from gateway.proxy.auth import authenticate
from gateway.proxy.errors import AuthenticationFailed
from policies.models import Policy
from tenants.keys import hash_secret
from tenants.models import ApiKey, Membership
from tenants.selectors import api_key_principal_get
from tenants.services import (
    api_key_issue,
    api_key_limits_set,
    api_key_revoke,
    api_key_rotate,
    membership_add,
    membership_remove,
    membership_role_set,
)

from .factories import MembershipFactory, ProjectFactory, UserFactory

GRACE_S = 1.5


def _authenticate(secret: str):
    request = RequestFactory().post("/v1/chat/completions", HTTP_AUTHORIZATION=f"Bearer {secret}")
    return async_to_sync(authenticate)(request)


def _events(obj, action=None):
    rows = AuditEvent.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk)
    ).order_by("id")
    return list(rows.filter(action=action) if action else rows)


# --- Rotation ----------------------------------------------------------------------------------


@pytest.fixture
def issued(team, lead):
    project = ProjectFactory(team=team, slug="web")
    return api_key_issue(
        team=team,
        name="backend",
        owner=lead,
        project=project,
        expires_in_days=30,
        allowed_models=["small"],
    )


def test_rotation_gives_a_new_secret_for_the_same_key(issued):
    old = issued.api_key
    rotated = api_key_rotate(api_key=old, grace_seconds=3600)
    new = rotated.api_key
    assert rotated.secret != issued.secret
    assert new.pk != old.pk
    assert new.key_hash == hash_secret(rotated.secret)
    assert (new.team_id, new.project_id, new.owner_id, new.name) == (
        old.team_id,
        old.project_id,
        old.owner_id,
        old.name,
    )
    assert new.allowed_models == ["small"]
    assert ApiKey.objects.get(pk=old.pk).revoked_at is None  # in its grace period


def test_rotation_keeps_the_old_expiry_on_the_new_key(issued):
    before = issued.api_key.expires_at
    new = api_key_rotate(api_key=issued.api_key, grace_seconds=60).api_key
    assert ApiKey.objects.get(pk=new.pk).expires_at == before


# The lookup runs on another thread: it sees committed rows only.
@pytest.mark.django_db(transaction=True)
def test_during_the_grace_period_both_secrets_authenticate_then_only_the_new(issued):
    rotated = api_key_rotate(api_key=issued.api_key, grace_seconds=GRACE_S)
    grace_end = time.time() + GRACE_S
    # Both work, and both snapshots are now cached (in this process and in Redis).
    assert _authenticate(issued.secret).key_id == issued.api_key.pk
    assert _authenticate(rotated.secret).key_id == rotated.api_key.pk
    old = api_key_principal_get(key_hash=hash_secret(issued.secret))
    assert not old.revoked and abs(old.expires_at - grace_end) < 1
    time.sleep(max(0.0, grace_end - time.time()) + 0.1)
    with pytest.raises(AuthenticationFailed, match="expired"):
        _authenticate(issued.secret)
    assert _authenticate(rotated.secret).key_id == rotated.api_key.pk


# The lookup runs on another thread: it sees committed rows only.
@pytest.mark.django_db(transaction=True)
def test_rotation_without_grace_revokes_the_old_key_at_once(issued):
    _authenticate(issued.secret)  # cached in this process and in Redis
    rotated = api_key_rotate(api_key=issued.api_key)
    assert ApiKey.objects.get(pk=issued.api_key.pk).revoked_at is not None
    assert api_key_principal_get(key_hash=hash_secret(issued.secret)).revoked
    assert _authenticate(rotated.secret).key_id == rotated.api_key.pk


def test_grace_never_extends_an_earlier_expiry(team):
    issued = api_key_issue(team=team, name="short", expires_in_days=1)
    expiry = issued.api_key.expires_at
    api_key_rotate(api_key=issued.api_key, grace_seconds=7 * 86400)
    assert ApiKey.objects.get(pk=issued.api_key.pk).expires_at == expiry


def test_rotation_copies_the_keys_policy(issued):
    api_key_limits_set(api_key=issued.api_key, rpm=7, tpm=7000, budget_usd=Decimal("12.5"))
    policy = Policy.objects.get(api_key=issued.api_key)
    policy.max_tokens = 256
    policy.save()
    new = api_key_rotate(api_key=issued.api_key, grace_seconds=60).api_key
    copied = Policy.objects.get(api_key=new)
    assert copied.pk != policy.pk
    assert (copied.rpm, copied.tpm, copied.monthly_budget_usd, copied.max_tokens) == (
        7,
        7000,
        Decimal("12.5"),
        256,
    )
    # The old key keeps its own, until it stops working.
    assert Policy.objects.get(api_key=issued.api_key).rpm == 7


def test_a_revoked_key_cannot_be_rotated(issued):
    api_key_revoke(api_key=issued.api_key)
    with pytest.raises(ValidationError):
        api_key_rotate(api_key=issued.api_key)
    assert ApiKey.objects.filter(team=issued.api_key.team).count() == 1


def test_negative_grace_is_refused(issued):
    with pytest.raises(ValidationError):
        api_key_rotate(api_key=issued.api_key, grace_seconds=-1)


def test_rotation_is_audited_with_its_actor(issued, lead):
    new = api_key_rotate(api_key=issued.api_key, grace_seconds=60, actor=lead).api_key
    (rotate,) = _events(issued.api_key, "rotate")
    assert rotate.actor_id == lead.pk and rotate.actor_repr == "lead"
    assert set(rotate.changes) == {"expires_at", "replaced_by"}
    assert rotate.changes["replaced_by"] == [None, str(new)]
    assert rotate.team_id == issued.api_key.team_id
    (created,) = _events(new, "create")
    assert created.changes["key_hash"] == [None, "***"]
    assert created.actor_id == lead.pk


# --- Revocation --------------------------------------------------------------------------------


def test_revoke_is_audited_once(issued, lead):
    api_key_revoke(api_key=issued.api_key, actor=lead)
    api_key_revoke(api_key=issued.api_key, actor=lead)  # already revoked: nothing to record
    (event,) = _events(issued.api_key, "revoke")
    assert event.changes["revoked_at"][0] is None
    assert event.changes["revoked_at"][1] is not None
    assert event.actor_id == lead.pk


# --- Limits ------------------------------------------------------------------------------------


def test_key_limits_are_set_within_the_teams(team, issued):
    Policy.objects.create(team=team, rpm=100, monthly_budget_usd=Decimal("50"))
    policy = api_key_limits_set(api_key=issued.api_key, rpm=10, budget_usd=Decimal("5"))
    assert (policy.rpm, policy.monthly_budget_usd) == (10, Decimal("5"))
    with pytest.raises(ValidationError) as raised:
        api_key_limits_set(api_key=issued.api_key, rpm=1000)
    assert "rpm" in raised.value.message_dict
    assert Policy.objects.get(api_key=issued.api_key).rpm == 10
    with pytest.raises(ValidationError) as raised:
        api_key_limits_set(api_key=issued.api_key, budget_usd=Decimal("51"))
    assert "monthly_budget_usd" in raised.value.message_dict


def test_key_limits_change_is_audited(issued, lead):
    policy = api_key_limits_set(api_key=issued.api_key, rpm=10, actor=lead)
    api_key_limits_set(api_key=issued.api_key, rpm=20, actor=lead)
    created, changed = _events(policy)
    assert created.action == "create" and created.changes["rpm"] == [None, 10]
    assert changed.action == "limits_set" and changed.changes == {"rpm": [10, 20]}
    assert changed.team_id == issued.api_key.team_id
    assert changed.actor_id == lead.pk


def test_nothing_given_writes_nothing(issued):
    assert api_key_limits_set(api_key=issued.api_key) is None
    assert not Policy.objects.filter(api_key=issued.api_key).exists()


# --- Memberships -------------------------------------------------------------------------------


def test_membership_add_and_role_set(team, lead):
    user = UserFactory(username="newcomer")
    membership = membership_add(team=team, user=user, role="viewer", actor=lead)
    assert membership.role == "viewer"
    membership_role_set(membership=membership, role="member", actor=lead)
    assert Membership.objects.get(pk=membership.pk).role == "member"
    created, changed = _events(membership)
    assert created.action == "create" and created.actor_id == lead.pk
    assert changed.action == "role_change" and changed.changes == {"role": ["viewer", "member"]}


def test_adding_twice_or_an_unknown_role_is_refused(team, lead):
    with pytest.raises(ValidationError):
        membership_add(team=team, user=lead, role="member")
    with pytest.raises(ValidationError):
        membership_add(team=team, user=UserFactory(), role="boss")


def test_the_last_lead_cannot_be_demoted_or_removed(team, lead, member):
    only = Membership.objects.get(user=lead, team=team)
    with pytest.raises(ValidationError):
        membership_role_set(membership=only, role="member")
    with pytest.raises(ValidationError):
        membership_remove(membership=only)
    assert Membership.objects.get(pk=only.pk).role == "lead"
    # With an owner appointed, the lead may step down, and leave.
    membership_role_set(membership=Membership.objects.get(user=member, team=team), role="owner")
    membership_role_set(membership=only, role="member")
    membership_remove(membership=only)
    assert not Membership.objects.filter(pk=only.pk).exists()


def test_a_team_without_a_head_may_lose_its_members(team):
    membership = MembershipFactory(team=team, role="member")
    pk, shown = membership.pk, str(membership)
    membership_remove(membership=membership)
    assert not Membership.objects.filter(pk=pk).exists()
    (deleted,) = AuditEvent.objects.filter(
        object_type="tenants.membership", object_id=str(pk), action="delete"
    )
    assert (deleted.object_repr, deleted.team_id) == (shown, team.pk)
    assert deleted.changes["role"] == ["member", None]
