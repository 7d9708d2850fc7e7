"""manage.py rotatekeys: every secret at rest moves under the first key of
GATEWAY_ENCRYPTION_KEYS, a rerun changes nothing, a crash between batches loses nothing, and
--check says when the old key can go."""

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from gateway import keyrotation
from policies.models import Policy
from routing.models import Provider

from .factories import ProviderFactory, TeamFactory
from .helpers_proc import base_env, manage

OLD = Fernet.generate_key().decode()
NEW = Fernet.generate_key().decode()
SECRET = '{"api_key":"sk-rotate-me-0123456789"}'
HOOK_URL = "https://hooks.example.com/services/T000/B000/very-secret"


def _old(plaintext: str) -> str:
    return Fernet(OLD.encode()).encrypt(plaintext.encode()).decode()


def _new_only(token: str) -> str:
    return Fernet(NEW.encode()).decrypt(token.encode()).decode()


@pytest.fixture
def keys(settings):
    """New key first, the old one still in the list: the state during a rotation."""
    settings.GATEWAY_ENCRYPTION_KEYS = [NEW, OLD]


@pytest.fixture
def old_rows(db):
    providers = [
        ProviderFactory(credentials_encrypted=_old(SECRET.replace("0", str(i)))) for i in range(5)
    ]
    ProviderFactory(credentials_encrypted="")  # a provider that needs no credential
    policy = Policy.objects.create(team=TeamFactory(), alert_webhook_encrypted=_old(HOOK_URL))
    return providers, policy


def _run(*args) -> str:
    out = io.StringIO()
    call_command("rotatekeys", *args, stdout=out)
    return out.getvalue()


def test_every_secret_decrypts_under_the_new_key_alone(keys, old_rows):
    providers, policy = old_rows
    out = _run("--batch-size", "2")
    assert "routing.Provider.credentials_encrypted: 6 rows, 5 re-encrypted" in out
    assert "1 empty" in out
    assert "policies.Policy.alert_webhook_encrypted: 1 rows, 1 re-encrypted" in out
    for i, provider in enumerate(providers):
        provider.refresh_from_db()
        assert _new_only(provider.credentials_encrypted) == SECRET.replace("0", str(i))
    policy.refresh_from_db()
    assert _new_only(policy.alert_webhook_encrypted) == HOOK_URL


def test_output_and_audit_event_hold_no_secret(keys, old_rows):
    providers, policy = old_rows
    tokens = [p.credentials_encrypted for p in providers] + [policy.alert_webhook_encrypted]
    out = _run()
    event = AuditEvent.objects.get(action="rotate", object_type="gateway.encryptionkeys")
    assert event.source == "cli"
    assert event.changes["routing.Provider rows rotated"] == [None, 5]
    shown = out + str(event.changes)
    for text in [*tokens, "sk-rotate-me", "very-secret", NEW, OLD]:
        assert text not in shown


def test_second_run_changes_nothing_and_says_so(keys, old_rows):
    _run()
    after_first = list(Provider.objects.order_by("pk").values_list("credentials_encrypted"))
    out = _run()
    assert "nothing to do: every secret is under the first key" in out
    assert "0 re-encrypted" in out
    assert list(Provider.objects.order_by("pk").values_list("credentials_encrypted")) == (
        after_first
    )
    assert AuditEvent.objects.filter(action="rotate").count() == 1


def test_dry_run_counts_and_writes_nothing(keys, old_rows):
    before = list(Provider.objects.order_by("pk").values_list("credentials_encrypted"))
    out = _run("--dry-run")
    assert "5 to re-encrypt" in out
    assert list(Provider.objects.order_by("pk").values_list("credentials_encrypted")) == before


def test_check_fails_until_every_row_is_under_the_first_key(keys, old_rows):
    with pytest.raises(CommandError, match="6 rows are still under an older key"):
        _run("--check")
    _run()
    assert "older keys can be removed" in _run("--check")


def test_a_crash_between_batches_leaves_every_row_readable_and_a_rerun_finishes(
    keys, old_rows, monkeypatch
):
    providers, _ = old_rows

    def crash(label, written):
        raise RuntimeError("killed after the first batch")

    monkeypatch.setattr(keyrotation, "after_batch", crash)
    with pytest.raises(RuntimeError):
        _run("--batch-size", "1")
    rows = list(Provider.objects.order_by("pk").exclude(credentials_encrypted=""))
    # The first batch committed, the rest did not start: one row new, the others old.
    moved = [p for p in rows if _decrypts_under_new(p.credentials_encrypted)]
    assert [p.pk for p in moved] == [providers[0].pk]
    # Every row still reads with the key list the gateway runs with.
    multi = keyrotation._keys()[1]
    for i, p in enumerate(rows):
        assert multi.decrypt(p.credentials_encrypted.encode()).decode() == SECRET.replace(
            "0", str(i)
        )

    monkeypatch.setattr(keyrotation, "after_batch", None)
    out = _run("--batch-size", "1")
    assert "4 re-encrypted, 1 already under the first key" in out
    assert "older keys can be removed" in _run("--check")


def test_limit_stops_early_and_a_rerun_continues(keys, old_rows):
    out = _run("--limit", "2")
    assert "stopped at --limit" in out
    with pytest.raises(CommandError, match="4 rows are still under an older key"):
        _run("--check")
    _run()
    assert "older keys can be removed" in _run("--check")


def test_a_row_under_a_key_not_in_the_list_is_reported_not_changed(keys, old_rows):
    foreign = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()
    stray = ProviderFactory(credentials_encrypted=foreign)
    with pytest.raises(CommandError, match="1 rows decrypt under no key"):
        _run()
    stray.refresh_from_db()
    assert stray.credentials_encrypted == foreign


def test_every_encrypted_field_is_rotated():
    """A new `*_encrypted` column that the command does not know would keep the old key alive."""
    found = {
        (model._meta.label, f.name)
        for model in apps.get_models()
        if not model._meta.proxy  # a proxy shares its concrete model's table
        for f in model._meta.concrete_fields
        if f.name.endswith("_encrypted")
    }
    assert found == set(keyrotation.ENCRYPTED_FIELDS)


def test_embedded_sqlite_rotates_too(tmp_path):
    env = base_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        SQLITE_PATH=str(tmp_path / "gw.sqlite3"),
        GATEWAY_ENCRYPTION_KEYS=OLD,
    )
    assert manage("migrate", "--no-input", "-v0", env=env).returncode == 0
    create = (
        "from routing.models import Provider; p = Provider(name='p1', kind='mock'); "
        "p.set_api_key('sk-embedded'); p.save()"
    )
    assert manage("shell", "-c", create, env=env).returncode == 0
    env["GATEWAY_ENCRYPTION_KEYS"] = f"{NEW},{OLD}"
    result = manage("rotatekeys", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 re-encrypted" in result.stdout
    env["GATEWAY_ENCRYPTION_KEYS"] = NEW
    assert manage("rotatekeys", "--check", env=env).returncode == 0
    read = "from routing.models import Provider; print(Provider.objects.get().get_api_key())"
    shown = manage("shell", "-c", read, env=env)
    assert "sk-embedded" in shown.stdout, shown.stderr


def _decrypts_under_new(token: str) -> bool:
    try:
        _new_only(token)
    except InvalidToken:
        return False
    return True
