"""The container stack (docker/Dockerfile, docker/compose.yml, docker/entrypoint.sh,
docker/nginx.conf, .env.example) agrees with the settings: every required variable reaches every
Django service, every variable is documented with its default, ports and health paths match, the
image is pinned and not root. No container engine: the files are parsed.

Every check also runs on a deliberately broken copy and must complain, so none passes by
checking nothing.
"""

import copy
import dataclasses
from pathlib import Path

import pytest

from .helpers_container import (
    ROOT,
    Stack,
    dockerfile_instructions,
    recorded_reads,
    settings_vars,
)
from .helpers_container_checks import (
    ALL_CHECKS,
    check_dependencies_come_from_the_lock,
    check_env_example_defaults,
    check_env_example_holds_no_secret,
    check_env_example_matches_settings,
    check_every_service_has_a_health_check,
    check_health_paths,
    check_images_are_pinned,
    check_redis_never_evicts,
    check_required_vars_reach_django_services,
    check_roles_agree,
    check_settings_reads_are_literal,
    check_user_is_not_root,
    check_web_environment_starts,
    check_web_port_agrees,
)


@pytest.fixture(scope="module")
def stack() -> Stack:
    return Stack.load()


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.__name__)
def test_the_stack_passes(stack, check):
    problems = check(stack)
    assert not problems, "\n".join(problems)


def test_every_variable_the_settings_read_is_found_by_the_parser(stack):
    """The parser of settings.py (which the checks rely on) misses no read: the settings, run in
    both modes with django-environ's reads recorded, read nothing it did not find."""
    missed = recorded_reads(ROOT / "gateway" / "settings.py") - settings_vars(stack.settings)
    assert not missed, f"reads the settings parser does not see: {sorted(missed)}"


def test_the_recorder_sees_a_read_the_parser_cannot(tmp_path):
    source = (ROOT / "gateway" / "settings.py").read_text()
    hidden = source + '\n_NAME = "GATEWAY_HIDDEN"\nHIDDEN = env.str(_NAME, default="")\n'
    (tmp_path / "settings.py").write_text(hidden)
    assert "GATEWAY_HIDDEN" in recorded_reads(tmp_path / "settings.py")
    assert "GATEWAY_HIDDEN" not in settings_vars(hidden)
    assert check_settings_reads_are_literal(dataclasses.replace(Stack.load(), settings=hidden))


def test_the_image_copies_every_file_it_needs(stack):
    """COPY sources exist in the build context (the lock file arrives with `make install`'s
    lock; without it the image cannot be built)."""
    missing = []
    for instruction, value in dockerfile_instructions(stack.dockerfile):
        if instruction == "COPY" and "--from=" not in value:
            missing += [s for s in value.split()[:-1] if not (ROOT / s).exists()]
    assert not missing, f"the Dockerfile copies files that do not exist: {missing}"


# --- Each check fails on a broken copy ------------------------------------------------------------


def _edit(stack: Stack, field: str, old: str, new: str) -> Stack:
    text = getattr(stack, field)
    assert old in text, f"{old!r} not in {field}: the broken copy would break nothing"
    return dataclasses.replace(stack, **{field: text.replace(old, new, 1)})


def _compose(stack: Stack, change) -> Stack:
    compose = copy.deepcopy(stack.compose)
    change(compose["services"])
    return dataclasses.replace(stack, compose=compose)


def _drop_env_line(stack: Stack, name: str) -> Stack:
    lines = [
        line for line in stack.env_example.splitlines() if not line.lstrip("# ").startswith(name)
    ]
    return dataclasses.replace(stack, env_example="\n".join(lines))


BROKEN = {
    "an undocumented setting": (
        check_env_example_matches_settings,
        lambda s: _drop_env_line(s, "GATEWAY_MAX_IN_FLIGHT="),
        "GATEWAY_MAX_IN_FLIGHT",
    ),
    "a documented variable nothing reads": (
        check_env_example_matches_settings,
        lambda s: _edit(s, "env_example", "# DEBUG=false", "# DEBUG=false\n# GATEWAY_GONE=1"),
        "GATEWAY_GONE",
    ),
    "a stale default": (
        check_env_example_defaults,
        lambda s: _edit(
            s, "env_example", "# GATEWAY_MAX_IN_FLIGHT=256", "# GATEWAY_MAX_IN_FLIGHT=512"
        ),
        "GATEWAY_MAX_IN_FLIGHT",
    ),
    "a real-looking secret": (
        check_env_example_holds_no_secret,
        lambda s: _edit(
            s, "env_example", "# GATEWAY_METRICS_TOKEN=", "# GATEWAY_METRICS_TOKEN=abc123"
        ),
        "GATEWAY_METRICS_TOKEN",
    ),
    "a required variable commented out": (
        check_env_example_holds_no_secret,
        lambda s: _edit(s, "env_example", "\nSECRET_KEY=", "\n# SECRET_KEY="),
        "SECRET_KEY",
    ),
    "a required variable that reaches no service": (
        check_required_vars_reach_django_services,
        lambda s: _edit(
            s, "env_example", "\nGATEWAY_ENCRYPTION_KEYS=", "\n# GATEWAY_ENCRYPTION_KEYS="
        ),
        "GATEWAY_ENCRYPTION_KEYS",
    ),
    "a Django service without DATABASE_URL": (
        check_required_vars_reach_django_services,
        lambda s: _compose(s, lambda svc: svc["worker"]["environment"].pop("DATABASE_URL")),
        "worker does not set DATABASE_URL",
    ),
    "a Django service without the env file": (
        check_required_vars_reach_django_services,
        lambda s: _compose(s, lambda svc: svc["beat"].pop("env_file")),
        "beat does not get SECRET_KEY",
    ),
    "a web port that disagrees": (
        check_web_port_agrees,
        lambda s: _edit(s, "nginx", "server web:8000", "server web:8001"),
        "disagrees",
    ),
    "a liveness check on a path that does not exist": (
        check_health_paths,
        lambda s: _edit(s, "dockerfile", '"/healthz"]', '"/health"]'),
        "HEALTHCHECK asks /health,",
    ),
    "readiness checked on the liveness path": (
        check_health_paths,
        lambda s: _compose(
            s, lambda svc: svc["web"]["healthcheck"].update(test=["CMD", "x.py", "/healthz"])
        ),
        "web's health check asks /healthz",
    ),
    "a root user": (
        check_user_is_not_root,
        lambda s: _edit(s, "dockerfile", "USER 10001:10001", "USER root"),
        "root",
    ),
    "a base image on latest": (
        check_images_are_pinned,
        lambda s: _edit(s, "dockerfile", "python:3.11.16-slim-bookworm@", "python:latest@"),
        "latest",
    ),
    "a service image without a digest": (
        check_images_are_pinned,
        lambda s: _compose(s, lambda svc: svc["redis"].update(image="redis:7.4.11-bookworm")),
        "redis",
    ),
    "a compose role the entrypoint lacks": (
        check_roles_agree,
        lambda s: _compose(s, lambda svc: svc["worker"].update(command=["celery-worker"])),
        "celery-worker",
    ),
    "an entrypoint without the migrate role": (
        check_roles_agree,
        lambda s: _edit(s, "entrypoint", "    migrate)", "    upgrade)"),
        "no migrate role",
    ),
    "two beats": (
        check_roles_agree,
        lambda s: _compose(s, lambda svc: svc["beat"]["deploy"].update(replicas=2)),
        "2 beats",
    ),
    "one web replica": (
        check_roles_agree,
        lambda s: _compose(s, lambda svc: svc["web"].pop("deploy")),
        "1 web replica",
    ),
    "a long-running service without a health check": (
        check_every_service_has_a_health_check,
        lambda s: _compose(s, lambda svc: svc["beat"].pop("healthcheck")),
        "beat has no health check",
    ),
    "web not waiting for the migration": (
        check_every_service_has_a_health_check,
        lambda s: _compose(
            s, lambda svc: svc["web"]["depends_on"]["migrate"].update(condition="service_started")
        ),
        "migrate",
    ),
    "a Redis that may evict": (
        check_redis_never_evicts,
        lambda s: _compose(s, lambda svc: svc["redis"].update(command=["redis-server"])),
        "noeviction",
    ),
    "a web environment the gateway refuses": (
        check_web_environment_starts,
        lambda s: _edit(s, "env_example", "# DEBUG=false", "# DEBUG=false\nLOG_FORMAT=xml"),
        "LOG_FORMAT",
    ),
    "dependencies without hashes": (
        check_dependencies_come_from_the_lock,
        lambda s: _edit(s, "dockerfile", "--require-hashes ", ""),
        "--require-hashes",
    ),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_each_check_fails_on_a_broken_copy(stack, case):
    check, breaker, expected = BROKEN[case]
    assert not check(stack), "the unbroken stack must pass first"
    problems = check(breaker(stack))
    assert any(expected in problem for problem in problems), problems


def test_every_check_is_exercised_by_a_broken_copy():
    broken = {check for check, _, _ in BROKEN.values()} | {check_settings_reads_are_literal}
    assert set(ALL_CHECKS) <= broken, set(ALL_CHECKS) - broken


def test_the_healthcheck_script_runs_without_django(tmp_path):
    """docker/healthcheck.py imports only the standard library and exits 1 on an unreachable
    server (no container engine: run it here against a closed port)."""
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, str(Path(ROOT / "docker" / "healthcheck.py")), "/healthz"],
        env={"PORT": "1", "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "unreachable" in done.stderr, done
