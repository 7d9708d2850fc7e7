"""Token scopes: what a personal access token may do, on top of its user's roles.

Every view names the scope its unsafe methods need (`write_scope`); safe methods need "read".
A session carries every scope (it is the user at the keyboard), a token only those it was given.
Roles are checked separately, in the views (tenants.roles.can): a scope never adds a right.
"""

from rest_framework import permissions

from .models import PersonalAccessToken, Scope


def needed_scope(view, request) -> str:
    if request.method in permissions.SAFE_METHODS:
        return Scope.READ
    return getattr(view, "write_scope", Scope.WRITE)


class TokenScope(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, PersonalAccessToken):
            return True  # a session: the user themself, every scope
        if getattr(view, "session_only", False) and request.method not in ("GET", "HEAD"):
            self.message = "only a signed-in session can do this, not a token"
            return False
        scope = needed_scope(view, request)
        if scope not in token.scopes:
            self.message = f"this token lacks the '{scope}' scope"
            return False
        return True
