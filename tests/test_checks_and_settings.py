"""Start-up safety: system checks refuse combinations that would misbehave, and settings refuse
values they cannot parse, loudly and by name."""

import shutil
import subprocess

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from gateway.checks import check_encryption_keys, check_state_and_processes

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


def test_long_key_cache_ttl_is_warning_w002():
    assert _ids(GATEWAY_KEY_CACHE_TTL_S=61) == {"gateway.W002"}
    assert _ids(GATEWAY_KEY_CACHE_TTL_S=60) == set()


# --- Through manage.py, in a real process --------------------------------------------------------


def _setup(env: dict[str, str], cwd=ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-c", "import django; django.setup()"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _embedded_env(tmp_path, **overrides):
    return base_env(
        DATABASE_URL=None, REDIS_URL=None, SQLITE_PATH=str(tmp_path / "gw.sqlite3"), **overrides
    )


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
