"""The portal's key pages: a secret is shown once and never again, rotation's grace period,
limits within the team's, and the list's spend from the daily rollups."""

import re
from datetime import date, timedelta
from decimal import Decimal

from django.utils import timezone

from policies.models import Policy
from tenants.keys import hash_secret
from tenants.models import ApiKey
from tests.factories import DailyUsageFactory

T = "/portal/teams/search/"
SECRET = re.compile(r"sk-gw-[A-Za-z0-9_-]{43}")


def _secrets(html: str) -> set[str]:
    return set(SECRET.findall(html))


def test_a_new_secret_is_shown_once_and_never_again(client, crew):
    client.force_login(crew["users"]["member"])
    response = client.post(T + "keys/new/", {"name": "billing-bot", "expires_in_days": "30"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    shown = _secrets(response.content.decode())
    assert len(shown) == 1
    secret = shown.pop()
    key = ApiKey.objects.get(name="billing-bot")
    assert key.key_hash == hash_secret(secret) and key.owner == crew["users"]["member"]
    assert key.expires_at > timezone.now() + timedelta(days=29)
    # The ready snippets carry the real base URL of the request's host.
    assert "http://testserver/v1/chat/completions" in response.content.decode()
    assert 'base_url="http://testserver/v1"' in response.content.decode()

    # Nowhere afterwards: not the list, not the form again, not the session.
    for page in ("keys/", "keys/new/", "", f"keys/{key.pk}/rotate/", f"keys/{key.pk}/limits/"):
        html = client.get(T + page).content.decode()
        assert secret not in html and not _secrets(html), page
    assert secret not in str(dict(client.session.items()))
    assert key.prefix in client.get(T + "keys/").content.decode()


def test_rotation_without_grace_revokes_the_old_secret_at_once(client, crew):
    old = crew["keys"]["member"]
    client.force_login(crew["users"]["member"])
    response = client.post(T + f"keys/{old.pk}/rotate/", {"grace_seconds": "0"})
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    (secret,) = _secrets(response.content.decode())
    new = ApiKey.objects.get(key_hash=hash_secret(secret))
    assert (new.team, new.owner, new.name) == (old.team, old.owner, old.name)
    old.refresh_from_db()
    assert not old.is_active and new.is_active
    assert secret not in client.get(T + "keys/").content.decode()


def test_rotation_with_grace_keeps_the_old_secret_working_until_it_ends(client, crew):
    old = crew["keys"]["lead"]
    client.force_login(crew["users"]["lead"])
    before = timezone.now()
    response = client.post(T + f"keys/{old.pk}/rotate/", {"grace_seconds": "86400"})
    assert response.status_code == 200
    old.refresh_from_db()
    assert old.is_active and old.revoked_at is None
    assert before + timedelta(hours=24) <= old.expires_at <= timezone.now() + timedelta(hours=24)
    # Past the grace period the old key is no longer active (the gateway refuses it: 401).
    old.expires_at = timezone.now() - timedelta(seconds=1)
    assert not old.is_active


def test_rotation_offers_the_four_grace_periods_and_refuses_others(client, crew):
    key = crew["keys"]["member"]
    client.force_login(crew["users"]["member"])
    html = client.get(T + f"keys/{key.pk}/rotate/").content.decode()
    for value in ("0", "3600", "86400", "604800"):
        assert f'value="{value}"' in html
    response = client.post(T + f"keys/{key.pk}/rotate/", {"grace_seconds": "31536000"})
    assert response.status_code == 200 and not _secrets(response.content.decode())
    key.refresh_from_db()
    assert key.is_active and key.expires_at is None


def test_revoke_asks_first_then_revokes(client, crew):
    key = crew["keys"]["member"]
    client.force_login(crew["users"]["member"])
    html = client.get(T + f"keys/{key.pk}/revoke/").content.decode()
    assert "cannot be undone" in html
    key.refresh_from_db()
    assert key.revoked_at is None
    response = client.post(T + f"keys/{key.pk}/revoke/", follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "is revoked" in response.content.decode()
    row = re.search(rf'<tr id="key-{key.pk}".*?</tr>', response.content.decode(), re.S).group(0)
    assert "badge-revoked" in row and "/rotate/" not in row


def test_limits_within_the_teams_are_saved_and_above_them_refused(client, crew):
    Policy.objects.create(team=crew["search"], rpm=100, monthly_budget_usd=Decimal("50"))
    key = crew["keys"]["member"]
    client.force_login(crew["users"]["member"])
    response = client.post(T + f"keys/{key.pk}/limits/", {"rpm": "500", "budget_usd": "10"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'class="error"' in html and "100" in html
    assert not Policy.objects.filter(api_key=key, rpm=500).exists()

    response = client.post(T + f"keys/{key.pk}/limits/", {"rpm": "60", "budget_usd": "10"})
    assert response.status_code == 302
    policy = Policy.objects.get(api_key=key)
    assert policy.rpm == 60 and policy.monthly_budget_usd == Decimal("10")
    # The form shows the saved values next time.
    assert 'value="60"' in client.get(T + f"keys/{key.pk}/limits/").content.decode()


def test_key_list_shows_this_months_spend_per_key_from_the_rollups(client, crew):
    key = crew["keys"]["member"]
    today = timezone.now().date()
    DailyUsageFactory(team=crew["search"], api_key=key, day=today, cost_usd="1.25", requests=7)
    DailyUsageFactory(team=crew["search"], api_key=key, day=today.replace(day=1), cost_usd="0.75",
                      requests=3, model="other")  # fmt: skip
    last_month = today.replace(day=1) - timedelta(days=1)
    DailyUsageFactory(team=crew["search"], api_key=key, day=last_month, cost_usd="99")
    client.force_login(crew["users"]["viewer"])
    html = client.get(T + "keys/").content.decode()
    row = re.search(rf'<tr id="key-{key.pk}".*?</tr>', html, re.S).group(0)
    assert re.search(r'key-requests">10<', row)
    assert "$2.00<" in row and "$99" not in row
    for column in ("Name", "Key", "Owner", "Created", "Last used", "Expires", "Status", "Spend"):
        assert f">{column}</th>" in html
    assert "member-key" in html and "member</td>" in html


def test_team_page_shows_budget_spend_and_the_charts(client, crew):
    Policy.objects.create(team=crew["search"], monthly_budget_usd=Decimal("40"))
    today = timezone.now().date()
    DailyUsageFactory(team=crew["search"], day=today, cost_usd="10", requests=5, model="gpt-x")
    DailyUsageFactory(team=crew["ads"], day=today, cost_usd="777", model="ads-secret-model")
    client.force_login(crew["users"]["viewer"])
    html = client.get(T).content.decode()
    assert 'id="stat-spend">$10.00<' in html and 'id="stat-budget">$40.00<' in html
    assert "25% of $40.00 budget" in html
    assert 'id="section-burn"' in html and 'svg xmlns="http://www.w3.org/2000/svg"' in html
    assert "gpt-x" in html and 'href="/teams/search/analytics/"' in html
    assert "ads-secret-model" not in html and "777" not in html


def test_team_page_without_usage_says_so(client, crew):
    client.force_login(crew["users"]["owner"])
    html = client.get(T).content.decode()
    assert 'id="usage-empty"' in html and "New API key" in html
    assert date.today().strftime("%B %Y") in html or "UTC" in html


def test_money_reads_as_money():
    from portal.templatetags.portal import usd

    assert usd(Decimal("0.0000135")) == "<$0.0001"  # one small call is not "$0.0000"
    assert usd(Decimal("0.0123")) == "$0.0123"
    assert usd(Decimal("40")) == "$40.00"
    assert usd(Decimal("1234.5")) == "$1,234.50"
    assert usd(None) == "—"
