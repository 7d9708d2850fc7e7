"""Calling the management API in tests: a Django test client that sends a personal access
token, and the cast of a team (owner, lead, member, viewer, outsider, compliance officer,
platform admin, superuser) for the role matrix."""

import json
from dataclasses import dataclass

from django.contrib.auth.models import Group
from django.test import Client

from api.models import SCOPES
from api.services import pat_create
from compliance.roles import COMPLIANCE_OFFICER, PLATFORM_ADMIN

from .factories import MembershipFactory, TeamFactory, UserFactory

ROLES = ("owner", "lead", "member", "viewer", "outsider", "compliance", "platform", "superuser")


class TokenClient:
    """JSON requests with `Authorization: Bearer <token>`."""

    def __init__(self, token: str):
        self.token = token
        self.client = Client()

    def _headers(self) -> dict:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}

    def get(self, path: str, params: dict | None = None):
        return self.client.get(path, params or {}, **self._headers())

    def _send(self, method: str, path: str, body):
        return getattr(self.client, method)(
            path,
            data=json.dumps(body if body is not None else {}),
            content_type="application/json",
            **self._headers(),
        )

    def post(self, path: str, body=None):
        return self._send("post", path, body)

    def patch(self, path: str, body=None):
        return self._send("patch", path, body)

    def delete(self, path: str, body=None):
        return self.client.delete(path, **self._headers())


def token_for(user, scopes=SCOPES, days: int = 30) -> str:
    return pat_create(user=user, name="test", scopes=list(scopes), expires_in_days=days).secret


def client_for(user, scopes=SCOPES) -> TokenClient:
    return TokenClient(token_for(user, scopes))


@dataclass
class Cast:
    team: object
    other_team: object
    users: dict  # role name -> user


def make_cast() -> Cast:
    team = TeamFactory(slug="search")
    other = TeamFactory(slug="ads")
    users = {}
    for role in ("owner", "lead", "member", "viewer"):
        users[role] = MembershipFactory(team=team, role=role, user=UserFactory(username=role)).user
    users["outsider"] = MembershipFactory(
        team=other, role="owner", user=UserFactory(username="outsider")
    ).user
    officer = UserFactory(username="officer", is_staff=True)
    officer.groups.add(Group.objects.get_or_create(name=COMPLIANCE_OFFICER)[0])
    users["compliance"] = officer
    admin = UserFactory(username="platform", is_staff=True)
    admin.groups.add(Group.objects.get_or_create(name=PLATFORM_ADMIN)[0])
    users["platform"] = admin
    users["superuser"] = UserFactory(username="root", is_staff=True, is_superuser=True)
    return Cast(team=team, other_team=other, users=users)


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"status", "code", "message", "fields"}, body
    assert body["error"]["status"] == response.status_code
    return body["error"]
