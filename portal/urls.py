from django.urls import path

from .views import auth, keys, members, teams

app_name = "portal"

TEAM = "teams/<slug:team_slug>/"
KEY = TEAM + "keys/<int:key_id>/"
MEMBER = TEAM + "members/<int:membership_id>/"

urlpatterns = [
    path("", teams.home, name="home"),
    path("login/", auth.login, name="login"),
    path("logout/", auth.logout, name="logout"),
    path("password-reset/", auth.password_reset, name="password_reset"),
    path("password-reset/sent/", auth.password_reset_done, name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        auth.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("password-reset/done/", auth.password_reset_complete, name="password_reset_complete"),
    path(TEAM, teams.team, name="team"),
    path(TEAM + "keys/", keys.key_list, name="keys"),
    path(TEAM + "keys/new/", keys.key_create, name="key_create"),
    path(KEY + "rotate/", keys.key_rotate, name="key_rotate"),
    path(KEY + "revoke/", keys.key_revoke, name="key_revoke"),
    path(KEY + "limits/", keys.key_limits, name="key_limits"),
    path(TEAM + "members/", members.member_list, name="members"),
    path(MEMBER + "role/", members.member_role, name="member_role"),
    path(MEMBER + "remove/", members.member_remove, name="member_remove"),
]
