"""Who may do what within a team: the roles of the portal and the management API.

A team's members hold one role each: owner > lead > member > viewer. Each role may do what the
roles below it may, plus:

    viewer   VIEW: the team, all its keys, usage and members
    member   KEY_CREATE_OWN, KEY_MANAGE_OWN: create keys for oneself, rotate/revoke/limit them
    lead     KEY_MANAGE_ANY: any of the team's keys; MEMBERS_MANAGE: add and remove members
             and viewers, set roles up to lead (may_set_role has the details)
    owner    OWNERS_MANAGE: grant and take away the owner role, demote or remove leads;
             POLICY_EDIT: the team's own budget and limits (within its organization's)

Superusers and members of the "platform admin" group count as owners of every team. Callers
scope first (an object outside `teams_of(user)` is a 404, never a 403) and ask `can` second (a
refused action inside the team is a 403).
"""

from enum import StrEnum

from django.db.models import QuerySet

from .models import ApiKey, Membership, Team

# The group compliance/roles.py creates; spelled here because tenants sits below compliance.
PLATFORM_ADMIN_GROUP = "platform admin"

Role = Membership.Role
RANK: dict[str, int] = {Role.VIEWER: 1, Role.MEMBER: 2, Role.LEAD: 3, Role.OWNER: 4}


class Action(StrEnum):
    VIEW = "view"
    KEY_CREATE_OWN = "key_create_own"
    KEY_MANAGE_OWN = "key_manage_own"
    KEY_MANAGE_ANY = "key_manage_any"
    MEMBERS_MANAGE = "members_manage"
    OWNERS_MANAGE = "owners_manage"
    POLICY_EDIT = "policy_edit"


# The least role an action needs.
NEEDS: dict[Action, str] = {
    Action.VIEW: Role.VIEWER,
    Action.KEY_CREATE_OWN: Role.MEMBER,
    Action.KEY_MANAGE_OWN: Role.MEMBER,
    Action.KEY_MANAGE_ANY: Role.LEAD,
    Action.MEMBERS_MANAGE: Role.LEAD,
    Action.OWNERS_MANAGE: Role.OWNER,
    Action.POLICY_EDIT: Role.OWNER,
}


def is_platform_admin(user) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the user object: a request asks this many times.
    cached = getattr(user, "_gw_platform_admin", None)
    if cached is None:
        cached = user.groups.filter(name=PLATFORM_ADMIN_GROUP).exists()
        user._gw_platform_admin = cached
    return cached


def role_of(user, team: Team) -> str | None:
    """The user's role in the team; None for outsiders (and anonymous or inactive users).
    Platform admins count as owners."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return None
    if is_platform_admin(user):
        return Role.OWNER
    return Membership.objects.filter(user=user, team=team).values_list("role", flat=True).first()


def role_allows(role: str | None, action: Action) -> bool:
    return role is not None and RANK[role] >= RANK[NEEDS[Action(action)]]


def can(user, action: Action, team: Team, *, key: ApiKey | None = None) -> bool:
    """Whether the user may do `action` in `team`. For the *_OWN actions on an existing key,
    pass it: a member manages only keys they own; KEY_MANAGE_ANY holders manage any."""
    action = Action(action)
    if key is not None and key.team_id != team.pk:
        return False
    role = role_of(user, team)
    if not role_allows(role, action):
        return False
    if action == Action.KEY_MANAGE_OWN and key is not None:
        return key.owner_id == user.pk or role_allows(role, Action.KEY_MANAGE_ANY)
    return True


def may_set_role(user, team: Team, *, current: str | None, new: str | None, target=None) -> bool:
    """Whether the user may move a membership from role `current` to role `new` (None: not a
    member; so adding is current=None, removing is new=None).

    Leads (MEMBERS_MANAGE) add and remove members and viewers, change their roles, and may
    appoint leads; anything touching an owner, and demoting or removing another lead, is
    OWNERS_MANAGE. Anyone may step down or leave themselves (`target` is the membership's
    user); the services still refuse to leave a team without an owner or lead."""
    if target is not None and target.pk == getattr(user, "pk", None) and current is not None:
        stepping_down = new is None or RANK[new] <= RANK[current]
        if stepping_down and role_of(user, team) is not None:
            return True
    if not can(user, Action.MEMBERS_MANAGE, team):
        return False
    if Role.OWNER in (current, new) or (current == Role.LEAD and new != Role.LEAD):
        return can(user, Action.OWNERS_MANAGE, team)
    return True


def may_grant(user, team: Team, role: str) -> bool:
    """Whether the user may add someone to the team with `role`."""
    return may_set_role(user, team, current=None, new=role)


def teams_of(user) -> QuerySet[Team]:
    """Teams the user is a member of (any role): what the portal lists and switches between."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return Team.objects.none()
    return Team.objects.for_user(user)


def teams_in_scope(user) -> QuerySet[Team]:
    """The teams whose objects the user may address at all: their own, or every team for a
    platform admin (who counts as owner everywhere). Outside it, an object is a 404."""
    if is_platform_admin(user):
        return Team.objects.all()
    return teams_of(user)
