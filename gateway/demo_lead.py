"""The demo's team lead (`make run`): a person to sign in as, in the portal and the admin.

Created once, with a random password that the command prints that one time; Django stores
only its hash, so it is never shown again, and a later run says how to set a new one. The user
owns the demo team (the portal's highest role) and is staff in the "platform admin" group, so
the same login opens the admin in the demo. Nothing here runs outside `seeddemo`.
"""

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from compliance.roles import PLATFORM_ADMIN, roles_create
from tenants.models import Membership, Team
from tenants.services import membership_add

DEMO_LEAD_EMAIL = "lead@demo.local"


@dataclass(frozen=True)
class DemoLead:
    username: str
    password: str | None  # only on the run that created the user


def demo_lead_ensure(*, team: Team, email: str = DEMO_LEAD_EMAIL) -> DemoLead:
    User = get_user_model()
    user = User.objects.filter(username=email).first()
    password = None
    if user is None:
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(
            username=email, email=email, password=password, is_staff=True
        )
        roles_create()  # the groups, with the permissions migrate has made by now
        user.groups.add(Group.objects.get(name=PLATFORM_ADMIN))
    if not Membership.objects.filter(team=team, user=user).exists():
        membership_add(team=team, user=user, role=Membership.Role.OWNER)
    return DemoLead(username=user.get_username(), password=password)
