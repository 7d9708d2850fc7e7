"""The admin's roles, as Django groups of model permissions.

platform admin      every permission of every model.
compliance officer  add, change, delete and view on the compliance app's models (agreements,
                    requirement sets, their history rows, reminders); view on everything else.
auditor             view on every model; nothing else.

A group only grants rights: its members still need is_staff to sign in to the admin. The
groups are rebuilt from these rules on every run, so a model added later (whose permissions
migrate creates) joins them the next time the command runs, and a right removed by hand in the
admin comes back.
"""

from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Q, QuerySet

PLATFORM_ADMIN = "platform admin"
COMPLIANCE_OFFICER = "compliance officer"
AUDITOR = "auditor"
ROLES = (PLATFORM_ADMIN, COMPLIANCE_OFFICER, AUDITOR)

_OWN_APPS = ("compliance",)  # what a compliance officer changes
_VIEW = Q(codename__startswith="view_")


def role_permissions(role: str) -> QuerySet[Permission]:
    everything = Permission.objects.all()
    if role == PLATFORM_ADMIN:
        return everything
    if role == COMPLIANCE_OFFICER:
        return everything.filter(_VIEW | Q(content_type__app_label__in=_OWN_APPS))
    if role == AUDITOR:
        return everything.filter(_VIEW)
    raise ValueError(f"unknown role {role!r}: use {', '.join(ROLES)}")


@transaction.atomic
def roles_create() -> dict[str, tuple[bool, int]]:
    """Create (or bring up to date) each role's group. Returns {name: (created, permissions)}."""
    done = {}
    for role in ROLES:
        group, created = Group.objects.get_or_create(name=role)
        permissions = list(role_permissions(role))
        group.permissions.set(permissions)
        done[role] = (created, len(permissions))
    return done
