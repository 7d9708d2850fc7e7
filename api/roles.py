"""Organization-wide rights, beside the team roles of tenants.roles: who may read the records
that belong to no team (agreements, deployments' health) and who may change agreements.

Anyone "with a role" reads them: a member of any team, or a member of one of the admin groups
(compliance/roles.py), or a superuser. Agreements are written by compliance officers and
platform admins (and superusers), as in the admin.
"""

from rest_framework.exceptions import PermissionDenied

from compliance.roles import AUDITOR, COMPLIANCE_OFFICER, PLATFORM_ADMIN
from tenants.models import Membership
from tenants.roles import is_platform_admin


def _groups(user) -> set[str]:
    cached = getattr(user, "_api_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._api_groups = cached
    return cached


def has_any_role(user) -> bool:
    if is_platform_admin(user):
        return True
    if _groups(user) & {COMPLIANCE_OFFICER, AUDITOR, PLATFORM_ADMIN}:
        return True
    return Membership.objects.filter(user=user).exists()


def require_any_role(user) -> None:
    if not has_any_role(user):
        raise PermissionDenied("you have no role in any team or group")


def may_write_agreements(user) -> bool:
    return is_platform_admin(user) or COMPLIANCE_OFFICER in _groups(user)
