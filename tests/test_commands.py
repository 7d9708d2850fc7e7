"""createapikey and seeddemo: what an operator types, and what it leaves behind."""

import re
import socket
import subprocess
from datetime import timedelta
from io import StringIO

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.test import RequestFactory
from django.utils import timezone

from gateway.portcheck import main as portcheck_main
from gateway.portcheck import port_in_use
from gateway.proxy.auth import authenticate, local_cache
from gateway.proxy.errors import AuthenticationFailed
from routing.models import Deployment, Provider
from tenants.keys import hash_secret
from tenants.models import ApiKey, Team
from tenants.services import api_key_revoke

from .factories import TeamFactory
from .helpers_proc import PYTHON, ROOT, base_env, free_port, manage, subprocess_database_url

SECRET_RE = re.compile(r"sk-gw-[A-Za-z0-9_-]+")


def _createapikey(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("createapikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _seeddemo(*args: str) -> str:
    out = StringIO()
    call_command("seeddemo", "--base-url", "http://gw.test:9000", *args, stdout=out)
    return out.getvalue()


def _authenticates(secret: str) -> bool:
    local_cache.clear()  # ask the database, not this process's memory of the key
    request = RequestFactory().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    try:
        async_to_sync(authenticate)(request)
    except AuthenticationFailed:
        return False
    return True


# --- createapikey -------------------------------------------------------------------------------


# The proxy looks keys up on its own database threads, which see only committed rows.
@pytest.mark.django_db(transaction=True)
def test_createapikey_prints_only_the_secret_and_it_authenticates(team):
    stdout, stderr = _createapikey("--team", team.slug, "--name", "ci")
    lines = stdout.splitlines()
    assert len(lines) == 1
    secret = lines[0]
    assert stdout == secret + "\n"
    assert SECRET_RE.fullmatch(secret)
    stored = ApiKey.objects.get(key_hash=hash_secret(secret))
    assert stored.team == team
    assert stored.name == "ci"
    assert stored.expires_at is None
    # The human-readable note goes to stderr and shows the prefix, never the secret.
    assert stored.prefix in stderr
    assert secret not in stderr
    request = RequestFactory().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert async_to_sync(authenticate)(request).key_id == stored.pk


def test_createapikey_unknown_team_is_a_command_error(db):
    with pytest.raises(CommandError, match="no team with slug 'nope'"):
        _createapikey("--team", "nope")
    assert not ApiKey.objects.exists()


def test_createapikey_expires_in_days_sets_expiry(team):
    before = timezone.now()
    stdout, _ = _createapikey("--team", team.slug, "--expires-in-days", "7")
    after = timezone.now()
    key = ApiKey.objects.get(key_hash=hash_secret(stdout.strip()))
    assert before + timedelta(days=7) <= key.expires_at <= after + timedelta(days=7)


def test_createapikey_refuses_non_positive_expiry(team):
    with pytest.raises(CommandError, match="expires_in_days must be positive"):
        _createapikey("--team", team.slug, "--expires-in-days", "0")
    assert not ApiKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_createapikey_stdout_is_usable_in_shell_substitution():
    """KEY=$(manage.py createapikey ...): the real program's stdout is the secret alone, with
    any logging kept on stderr."""
    team = TeamFactory(slug="cli-team")
    env = base_env(DATABASE_URL=subprocess_database_url())
    result = manage("createapikey", "--team", team.slug, env=env)
    assert result.returncode == 0, result.stderr
    assert SECRET_RE.fullmatch(result.stdout.rstrip("\n"))
    assert ApiKey.objects.filter(key_hash=hash_secret(result.stdout.strip()), team=team).exists()


# --- seeddemo -----------------------------------------------------------------------------------


def test_seeddemo_creates_demo_team_models_and_a_working_key(db):
    output = _seeddemo()
    secret = SECRET_RE.search(output).group(0)
    key = ApiKey.objects.get(key_hash=hash_secret(secret))
    assert key.team.slug == "demo"
    assert key.team.allowed_models == ["*"]
    assert key.is_active
    assert Provider.objects.get(name="mock").kind == Provider.Kind.MOCK
    assert set(Deployment.objects.values_list("model_name", flat=True)) == {
        "mock-small",
        "mock-embed",
    }
    # The printed curl targets the requested base URL.
    assert "curl http://gw.test:9000/v1/chat/completions" in output


def test_seeddemo_without_a_key_file_issues_a_new_key_each_run_and_revokes_the_last(db):
    # Production mode (the test run has DATABASE_URL): no plaintext key is written anywhere.
    first = SECRET_RE.search(_seeddemo()).group(0)
    config = [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(Team.objects.order_by("pk").values()),
    ]
    second = SECRET_RE.search(_seeddemo()).group(0)
    assert first != second
    assert [
        list(Provider.objects.order_by("pk").values()),
        list(Deployment.objects.order_by("pk").values()),
        list(Team.objects.order_by("pk").values()),
    ] == config
    old = ApiKey.objects.get(key_hash=hash_secret(first))
    new = ApiKey.objects.get(key_hash=hash_secret(second))
    assert old.revoked_at is not None
    assert new.revoked_at is None
    assert list(ApiKey.objects.active().filter(team__slug="demo")) == [new]


def test_seeddemo_leaves_other_demo_team_keys_alone(db):
    _seeddemo()
    team = Team.objects.get(slug="demo")
    stdout, _ = _createapikey("--team", "demo", "--name", "someone else's")
    _seeddemo()
    assert ApiKey.objects.get(key_hash=hash_secret(stdout.strip()), team=team).is_active


def _demo_keys() -> list[ApiKey]:
    return list(ApiKey.objects.active().filter(team__slug="demo", name="demo (make run)"))


def test_seeddemo_twice_reuses_the_saved_key_and_it_still_authenticates(transactional_db, tmp_path):
    key_file = tmp_path / "demo-key"
    first = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    output = _seeddemo("--key-file", str(key_file))
    assert SECRET_RE.search(output).group(0) == first
    assert "kept from the last run" in output
    assert "DEMO_NEW_KEY=1" in output  # how to get a new one
    assert _authenticates(first)
    assert [k.key_hash for k in _demo_keys()] == [hash_secret(first)]


def test_saved_demo_key_is_readable_by_its_owner_only(db, tmp_path):
    key_file = tmp_path / "var" / "demo-key"
    secret = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    assert key_file.read_text().strip() == secret
    assert key_file.stat().st_mode & 0o777 == 0o600
    key_file.chmod(0o644)
    _seeddemo("--key-file", str(key_file))
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_seeddemo_new_key_revokes_the_saved_key_and_prints_another(transactional_db, tmp_path):
    key_file = tmp_path / "demo-key"
    first = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    output = _seeddemo("--key-file", str(key_file), "--new-key")
    second = SECRET_RE.search(output).group(0)
    assert second != first
    assert "new; kept in" in output
    assert key_file.read_text().strip() == second
    assert not _authenticates(first)
    assert _authenticates(second)
    assert [k.key_hash for k in _demo_keys()] == [hash_secret(second)]


def test_demo_new_key_environment_variable_is_the_same_as_the_flag(db, tmp_path, monkeypatch):
    # `make run DEMO_NEW_KEY=1`: make hands command-line variables to the recipe's environment.
    key_file = tmp_path / "demo-key"
    first = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    monkeypatch.setenv("DEMO_NEW_KEY", "1")
    second = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    assert second != first
    assert not _authenticates(first)


@pytest.mark.parametrize("damage", ["revoke", "garbage", "other-key"])
def test_saved_key_that_no_longer_authenticates_is_replaced(transactional_db, tmp_path, damage):
    key_file = tmp_path / "demo-key"
    first = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    if damage == "revoke":
        api_key_revoke(api_key=ApiKey.objects.get(key_hash=hash_secret(first)))
    elif damage == "garbage":
        key_file.write_text("not a key\n")
    else:  # a live key of the demo team, but not the demo key: never adopted
        other, _ = _createapikey("--team", "demo", "--name", "someone else's")
        key_file.write_text(other)
    second = SECRET_RE.search(_seeddemo("--key-file", str(key_file))).group(0)
    assert second != first
    assert _authenticates(second)
    assert key_file.read_text().strip() == second
    assert [k.key_hash for k in _demo_keys()] == [hash_secret(second)]


def test_embedded_make_run_twice_keeps_the_demo_key_next_to_the_database(tmp_path):
    """What `make run` does, in real processes on a SQLite file: the second run prints the same
    key, kept in <database dir>/demo-key; --new-key replaces it."""
    env = base_env(
        DATABASE_URL=None,
        REDIS_URL=None,
        CELERY_BROKER_URL=None,
        CELERY_TASK_ALWAYS_EAGER=None,
        WEB_CONCURRENCY="1",
        SQLITE_PATH=str(tmp_path / "gateway.sqlite3"),
        DEMO_NEW_KEY=None,
    )
    assert manage("migrate", "--no-input", "-v0", env=env).returncode == 0
    runs = [manage("seeddemo", *extra, env=env) for extra in ((), (), ("--new-key",))]
    assert all(run.returncode == 0 for run in runs), [run.stderr for run in runs]
    first, again, renewed = (SECRET_RE.search(run.stdout).group(0) for run in runs)
    assert again == first
    assert renewed != first
    key_file = tmp_path / "demo-key"
    assert key_file.read_text().strip() == renewed
    assert key_file.stat().st_mode & 0o777 == 0o600


# --- make run's port check ----------------------------------------------------------------------


@pytest.fixture
def listening():
    """A port somebody else is serving on (bound and listening), like a running gateway."""
    sockets = []

    def _listen(host: str) -> int:
        sock = socket.socket()
        sock.bind((host, 0))
        sock.listen()
        sockets.append(sock)
        return sock.getsockname()[1]

    yield _listen
    for sock in sockets:
        sock.close()


def test_port_check_refuses_a_busy_port_and_says_what_to_do(listening):
    port = listening("127.0.0.1")
    result = subprocess.run(
        [PYTHON, "-m", "gateway.portcheck", "127.0.0.1", str(port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"port {port} is in use: is the gateway already running? "
        f"Use another port: PORT={port + 1} make run\n"
    )


def test_port_check_sees_a_server_listening_on_every_interface(listening):
    assert port_in_use("127.0.0.1", listening("0.0.0.0"))  # noqa: S104 (closed at teardown)


def test_port_check_passes_a_free_port():
    assert not port_in_use("127.0.0.1", free_port())
    assert portcheck_main(["127.0.0.1", str(free_port())]) == 0


def test_make_run_checks_the_port_before_it_migrates_or_seeds():
    # A dry run: prints the commands, runs none of them.
    result = subprocess.run(
        ["make", "-n", "run", "PORT=8765"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()

    def first(fragment: str) -> int:
        return next(i for i, line in enumerate(lines) if fragment in line)

    assert first("gateway.portcheck 127.0.0.1 8765") < first("manage.py migrate")
    assert first("manage.py migrate") < first("manage.py seeddemo") < first("-m uvicorn")
