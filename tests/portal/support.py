"""What the portal tests share besides fixtures."""

from tests.factories import UserFactory

ROLES = ("owner", "lead", "member", "viewer")
PASSWORD = "portal-test-password"


def make_user(username: str, **kwargs):
    user = UserFactory(username=username, **kwargs)
    user.set_password(PASSWORD)
    user.save()
    return user
