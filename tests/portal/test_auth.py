"""Signing in to the portal (throttled, shared with the admin's counters), signing out, and the
password reset by email."""

import re

from django.core import mail

from .support import PASSWORD


def test_signing_in_lands_on_the_first_team(client, crew):
    response = client.post("/portal/login/", {"username": "viewer", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    assert client.get("/portal/").headers["Location"] == "/portal/teams/search/"


def test_both_sign_in_addresses_are_the_same_form(client, crew):
    for url in ("/portal/login/", "/accounts/login/"):
        html = client.get(url).content.decode()
        assert "Forgot your password?" in html and 'name="csrfmiddlewaretoken"' in html


def test_sign_in_honours_next(client, crew):
    response = client.post(
        "/accounts/login/",
        {"username": "lead", "password": PASSWORD, "next": "/portal/teams/search/keys/"},
    )
    assert response["Location"] == "/portal/teams/search/keys/"


def test_sign_in_is_throttled_across_both_forms_and_the_admins(client, crew, settings):
    settings.GATEWAY_ADMIN_LOGIN_RATE = "3/d"
    client.post("/portal/login/", {"username": "lead", "password": "wrong"})
    client.post("/accounts/login/", {"username": "lead", "password": "wrong"})
    client.post("/admin/login/", {"username": "lead", "password": "wrong"})
    response = client.post("/portal/login/", {"username": "lead", "password": PASSWORD})
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert "Too many attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_out_is_a_post_and_ends_the_session(client, crew):
    client.force_login(crew["users"]["lead"])
    assert client.get("/portal/logout/").status_code == 405
    response = client.post("/portal/logout/")
    assert response.status_code == 302 and response["Location"] == "/portal/login/"
    assert client.get("/portal/teams/search/").status_code == 302


def test_csrf_is_enforced_on_portal_forms(crew):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(crew["users"]["lead"])
    response = client.post("/portal/teams/search/keys/new/", {"name": "no-token"})
    assert response.status_code == 403


def test_password_reset_by_email(client, crew, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    user = crew["users"]["member"]
    user.email = "member@example.com"
    user.save()
    response = client.post("/portal/password-reset/", {"email": "member@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/portal/password-reset/sent/"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["member@example.com"]
    link = re.search(r"http://testserver(/portal/password-reset/\S+/\S+/)", mail.outbox[0].body)
    assert link, mail.outbox[0].body
    # Django swaps the token for a session marker, then shows the form.
    response = client.get(link.group(1), follow=True)
    assert "Choose a new password" in response.content.decode()
    form_url = response.redirect_chain[-1][0]
    new = "a-brand-new-passphrase-42"
    response = client.post(form_url, {"new_password1": new, "new_password2": new})
    assert response["Location"] == "/portal/password-reset/done/"
    assert client.login(username="member", password=new)


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, crew):
    response = client.post("/portal/password-reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/portal/password-reset/sent/"
    assert mail.outbox == []


def test_password_reset_requests_are_throttled(client, crew, settings):
    settings.GATEWAY_PASSWORD_RESET_RATE = "2/d"
    for _ in range(2):
        client.post("/portal/password-reset/", {"email": "x@example.com"})
    response = client.post("/portal/password-reset/", {"email": "x@example.com"})
    assert response.status_code == 429
