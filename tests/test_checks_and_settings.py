"""Start-up safety: system checks refuse combinations that would misbehave, and settings refuse
values they cannot parse, loudly and by name."""

import json
import shutil
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from gateway.checks import (
    check_admin_login_rate,
    check_encryption_keys,
    check_forward_headers,
    check_production_security,
    check_state_and_processes,
)
from gateway.settings import _proxy_ssl_header

from .helpers_proc import PYTHON, ROOT, TEST_FERNET_KEY, base_env, manage

GOOD_KEY = Fernet.generate_key().decode()
# What a production deployment looks like; each test changes one thing.
SOUND = {
    "GATEWAY_ENCRYPTION_KEYS": [GOOD_KEY],
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "EMBEDDED_DB": False,
    "WEB_CONCURRENCY": 4,
    "CELERY_TASK_ALWAYS_EAGER": False,
    "GATEWAY_MAX_BODY_BYTES": 4 * 1024 * 1024,
    "GATEWAY_KEY_CACHE_TTL_S": 5.0,
}


def _ids(**changes) -> set[str]:
    with override_settings(**{**SOUND, **changes}):
        issues = check_encryption_keys(None) + check_state_and_processes(None)
    return {issue.id for issue in issues}


def test_sound_production_settings_pass_every_check():
    assert _ids() == set()


def test_embedded_single_process_passes_every_check():
    embedded = {"REDIS_URL": "", "EMBEDDED_DB": True, "CELERY_TASK_ALWAYS_EAGER": True}
    assert _ids(WEB_CONCURRENCY=1, **embedded) == set()


def test_empty_encryption_keys_is_e001():
    assert _ids(GATEWAY_ENCRYPTION_KEYS=[]) == {"gateway.E001"}


def test_invalid_fernet_key_is_e002_naming_its_position():
    with override_settings(**{**SOUND, "GATEWAY_ENCRYPTION_KEYS": [GOOD_KEY, "not-a-key"]}):
        errors = check_encryption_keys(None)
    assert [e.id for e in errors] == ["gateway.E002"]
    assert "entry 1" in errors[0].msg
    assert "not-a-key" not in errors[0].msg  # a key is a secret, even a broken one


def test_several_processes_without_redis_is_e003():
    assert "gateway.E003" in _ids(
        REDIS_URL="", EMBEDDED_DB=True, WEB_CONCURRENCY=2, CELERY_TASK_ALWAYS_EAGER=True
    )


def test_one_process_without_redis_is_allowed():
    assert "gateway.E003" not in _ids(
        REDIS_URL="", EMBEDDED_DB=True, WEB_CONCURRENCY=1, CELERY_TASK_ALWAYS_EAGER=True
    )


def test_redis_with_sqlite_is_warning_w001():
    assert _ids(EMBEDDED_DB=True) == {"gateway.W001"}


def test_real_celery_without_a_broker_is_e004():
    assert _ids(
        REDIS_URL="", EMBEDDED_DB=True, WEB_CONCURRENCY=1, CELERY_TASK_ALWAYS_EAGER=False
    ) == {"gateway.E004"}


@pytest.mark.parametrize("size", [0, -1])
def test_non_positive_body_limit_is_e005(size):
    assert _ids(GATEWAY_MAX_BODY_BYTES=size) == {"gateway.E005"}


def test_negative_in_flight_limit_is_e006():
    assert _ids(GATEWAY_MAX_IN_FLIGHT=-1) == {"gateway.E006"}


@pytest.mark.parametrize("size", [0, -3])
def test_redis_pool_under_one_is_e007(size):
    assert _ids(GATEWAY_REDIS_MAX_CONNECTIONS=size) == {"gateway.E007"}


@pytest.mark.parametrize("limit", [0, 1, 256])
def test_in_flight_limit_zero_or_positive_passes(limit):
    # 0 turns the limit off; any positive value is a limit.
    assert _ids(GATEWAY_MAX_IN_FLIGHT=limit) == set()


def test_long_key_cache_ttl_is_warning_w002():
    assert _ids(GATEWAY_KEY_CACHE_TTL_S=61) == {"gateway.W002"}
    assert _ids(GATEWAY_KEY_CACHE_TTL_S=60) == set()


# --- Through manage.py, in a real process --------------------------------------------------------


def _setup(
    env: dict[str, str], cwd=ROOT, code: str = "import django; django.setup()"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-c", code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _embedded_env(tmp_path, **overrides):
    embedded = {
        "DATABASE_URL": None,
        "REDIS_URL": None,
        "SQLITE_PATH": str(tmp_path / "gw.sqlite3"),
    }
    return base_env(**{**embedded, **overrides})


def test_valid_environment_starts(tmp_path):
    result = _setup(_embedded_env(tmp_path))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GATEWAY_MAX_BODY_BYTES", "abc"),
        ("WEB_CONCURRENCY", "many"),
        ("GATEWAY_KEY_CACHE_TTL_S", "soon"),
        ("DATABASE_POOL_MAX_SIZE", "ten"),
        ("GATEWAY_BODY_READ_TIMEOUT_S", "slow"),
        ("GATEWAY_TRUSTED_PROXIES", "10.0.0.0/8,not-a-network"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_malformed_value_stops_startup_naming_the_variable(tmp_path, name, value):
    env = _embedded_env(tmp_path, **{name: value})
    if name.startswith("DATABASE_POOL"):
        env["DATABASE_URL"] = "postgres://gateway@127.0.0.1:5432/gateway"
    result = _setup(env)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert name in last_line


def test_missing_encryption_keys_stops_startup(tmp_path):
    # gateway/settings.py also reads <project>/.env (without overwriting the environment), and a
    # checkout made with `make run` has one that sets this variable. So the settings module runs
    # from a copy of the project root that has no .env: the same code, nothing to fall back on.
    copy = tmp_path / "project"
    (copy / "gateway").mkdir(parents=True)
    shutil.copy(ROOT / "gateway" / "settings.py", copy / "gateway" / "settings.py")
    (copy / "gateway" / "__init__.py").write_text("")
    env = _embedded_env(tmp_path, GATEWAY_ENCRYPTION_KEYS=None, PYTHONPATH=str(copy))
    result = _setup(env, cwd=copy)
    assert result.returncode != 0
    assert "Set the GATEWAY_ENCRYPTION_KEYS environment variable" in result.stderr


def test_empty_encryption_keys_fails_manage_check(tmp_path):
    # Set but empty: the settings load, and the system check stops every manage.py command.
    result = manage("check", env=_embedded_env(tmp_path, GATEWAY_ENCRYPTION_KEYS=""))
    assert result.returncode != 0
    assert "gateway.E001" in result.stderr


def test_invalid_encryption_key_fails_manage_check(tmp_path):
    keys = f"{TEST_FERNET_KEY},not-a-fernet-key"
    result = manage("check", env=_embedded_env(tmp_path, GATEWAY_ENCRYPTION_KEYS=keys))
    assert result.returncode != 0
    assert "gateway.E002" in result.stderr
    assert "not-a-fernet-key" not in result.stderr


def test_several_processes_without_redis_fails_manage_check(tmp_path):
    result = manage("check", env=_embedded_env(tmp_path, WEB_CONCURRENCY="2"))
    assert result.returncode != 0
    assert "gateway.E003" in result.stderr


def test_manage_check_passes_for_the_embedded_default(tmp_path):
    result = manage("check", env=_embedded_env(tmp_path))
    assert result.returncode == 0, result.stderr


# --- Production safety: secure defaults, and a refusal to run without them ------------------------

STRONG_SECRET = "k" + Fernet.generate_key().decode()  # 45 random characters
SECURE_PRODUCTION = {
    "GATEWAY_PRODUCTION": True,
    "DEBUG": False,
    "SECRET_KEY": STRONG_SECRET,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "ALLOWED_HOSTS": ["gateway.example.com"],
}
SECURITY_SETTINGS = [
    "GATEWAY_PRODUCTION",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_SSL_REDIRECT",
    "SECURE_CONTENT_TYPE_NOSNIFF",
    "SECURE_PROXY_SSL_HEADER",
    "X_FRAME_OPTIONS",
    "CSRF_TRUSTED_ORIGINS",
    "GATEWAY_ADMIN_LOGIN_RATE",
]


def _security_ids(**changes) -> set[str]:
    with override_settings(**{**SECURE_PRODUCTION, **changes}):
        return {issue.id for issue in check_production_security(None)}


def _settings_under(env: dict[str, str]) -> dict:
    """The security settings as a process started with `env` computes them."""
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {SECURITY_SETTINGS!r}}}))"
    )
    result = _setup(env, code=code)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_mode_defaults_are_secure(tmp_path):
    # DATABASE_URL makes it production; nothing connects to it just to read settings.
    found = _settings_under(
        _embedded_env(tmp_path, DATABASE_URL="postgres://gateway@127.0.0.1:5432/gateway")
    )
    assert found["GATEWAY_PRODUCTION"] is True
    assert found["SESSION_COOKIE_SECURE"] is True
    assert found["CSRF_COOKIE_SECURE"] is True
    assert found["SESSION_COOKIE_HTTPONLY"] is True
    assert found["SECURE_HSTS_SECONDS"] == 31_536_000
    assert found["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert found["SECURE_HSTS_PRELOAD"] is False
    assert found["SECURE_CONTENT_TYPE_NOSNIFF"] is True
    assert found["X_FRAME_OPTIONS"] == "DENY"
    assert found["GATEWAY_ADMIN_LOGIN_RATE"] == "5/m"


def test_embedded_mode_keeps_plain_http_logins_working(tmp_path):
    # `make run` serves http://127.0.0.1: a Secure cookie would never come back over it.
    found = _settings_under(_embedded_env(tmp_path))
    assert found["GATEWAY_PRODUCTION"] is False
    assert found["SESSION_COOKIE_SECURE"] is False
    assert found["CSRF_COOKIE_SECURE"] is False
    assert found["SECURE_HSTS_SECONDS"] == 0
    assert found["SESSION_COOKIE_HTTPONLY"] is True


def test_security_settings_come_from_the_environment(tmp_path):
    found = _settings_under(
        _embedded_env(
            tmp_path,
            SESSION_COOKIE_SECURE="true",
            SECURE_HSTS_SECONDS="600",
            SECURE_SSL_REDIRECT="true",
            SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
            CSRF_TRUSTED_ORIGINS="https://gw.example.com,https://admin.example.com",
            GATEWAY_ADMIN_LOGIN_RATE="10/h",
        )
    )
    assert found["SESSION_COOKIE_SECURE"] is True
    assert found["SECURE_HSTS_SECONDS"] == 600
    assert found["SECURE_SSL_REDIRECT"] is True
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert found["CSRF_TRUSTED_ORIGINS"] == ["https://gw.example.com", "https://admin.example.com"]
    assert found["GATEWAY_ADMIN_LOGIN_RATE"] == "10/h"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([], None),
        (["HTTP_X_FORWARDED_PROTO", "https"], ("HTTP_X_FORWARDED_PROTO", "https")),
        # The header as a proxy's documentation spells it.
        (["X-Forwarded-Proto", "https"], ("HTTP_X_FORWARDED_PROTO", "https")),
    ],
)
def test_proxy_ssl_header_is_read_as_header_and_value(value, expected):
    assert _proxy_ssl_header(value) == expected


def test_malformed_proxy_ssl_header_stops_startup_naming_the_variable(tmp_path):
    result = _setup(_embedded_env(tmp_path, SECURE_PROXY_SSL_HEADER="https"))
    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER" in result.stderr.strip().splitlines()[-1]


def test_secure_production_settings_pass():
    assert _security_ids() == set()


@pytest.mark.parametrize(
    ("name", "check_id"),
    [("SESSION_COOKIE_SECURE", "gateway.E010"), ("CSRF_COOKIE_SECURE", "gateway.E011")],
)
def test_insecure_cookie_in_production_is_an_error_naming_the_setting(name, check_id):
    with override_settings(**{**SECURE_PRODUCTION, name: False}):
        [error] = check_production_security(None)
    assert error.id == check_id
    assert name in error.msg
    assert "SECURE_PROXY_SSL_HEADER" in error.hint


@pytest.mark.parametrize(
    "key",
    [
        # (An empty one never gets this far: Django refuses it when it is first read.)
        "django-insecure-" + "x1y2z3" * 10,
        "changeme",
        "collectstatic-only",  # the Dockerfile's build-time value, public
        "short-key",
        "a" * 60,
    ],
)
def test_weak_or_public_secret_key_in_production_is_e012(key):
    assert _security_ids(SECRET_KEY=key) == {"gateway.E012"}


def test_any_host_in_production_is_e013():
    assert _security_ids(ALLOWED_HOSTS=["gateway.example.com", "*"]) == {"gateway.E013"}


def test_debug_or_embedded_mode_is_not_held_to_production_rules():
    insecure = {"SESSION_COOKIE_SECURE": False, "SECRET_KEY": "dev", "ALLOWED_HOSTS": ["*"]}
    assert _security_ids(DEBUG=True, **insecure) == set()
    assert _security_ids(GATEWAY_PRODUCTION=False, **insecure) == set()


@pytest.mark.parametrize("rate", ["5/m", "100/h", "10/5m", "1/d"])
def test_admin_login_rate_accepts_django_ratelimit_rates(rate):
    with override_settings(GATEWAY_ADMIN_LOGIN_RATE=rate):
        assert check_admin_login_rate(None) == []


@pytest.mark.parametrize("rate", ["5", "five/m", "5/week", "0/m", ""])
def test_malformed_admin_login_rate_is_e014(rate):
    with override_settings(GATEWAY_ADMIN_LOGIN_RATE=rate):
        assert [e.id for e in check_admin_login_rate(None)] == ["gateway.E014"]


def test_production_with_insecure_cookie_fails_manage_check(tmp_path):
    env = _embedded_env(
        tmp_path,
        DATABASE_URL="postgres://gateway@127.0.0.1:5432/gateway",
        SECRET_KEY=STRONG_SECRET,
        SESSION_COOKIE_SECURE="false",
    )
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "gateway.E010" in result.stderr
    assert "SESSION_COOKIE_SECURE" in result.stderr


@pytest.mark.parametrize("header", ["authorization", "api-key", "x-api-key", "cookie", "host"])
def test_forwarding_a_credential_or_framing_header_is_e015(header):
    with override_settings(GATEWAY_FORWARD_HEADERS=["openai-beta", header]):
        errors = check_forward_headers(None)
    assert [e.id for e in errors] == ["gateway.E015"]
    assert header in errors[0].msg


def test_forwarding_feature_headers_passes():
    with override_settings(GATEWAY_FORWARD_HEADERS=["openai-beta", "anthropic-beta"]):
        assert check_forward_headers(None) == []
