"""The checks of tests/test_container_stack.py: each takes a Stack and returns its problems."""

import itertools
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile

from cryptography.fernet import Fernet
from django.urls import Resolver404, resolve

from gateway.checks import _secret_key_problem

from .helpers_container import (
    DJANGO_ROLES,
    PLACEHOLDER,
    PRODUCTION_VARS,
    ROOT,
    SECRET_NAME,
    Stack,
    base_images,
    django_services,
    dockerfile_instructions,
    dockerfile_stages,
    dockerignored,
    entrypoint_roles,
    env_example_entries,
    env_example_set,
    final_stage,
    healthcheck_path,
    image_pin_problem,
    interpolations,
    literal_defaults,
    required_vars,
    role_of,
    service_environment,
    services,
    settings_reads,
    settings_vars,
    stack_references,
)

LIVENESS, READINESS = "healthz", "readyz"  # the views in gateway/urls.py


def check_settings_reads_are_literal(stack: Stack) -> list[str]:
    return [
        f"gateway/settings.py line {r.line}: an environment read whose name is not a string "
        "literal; .env.example and the compose file cannot be checked against it"
        for r in settings_reads(stack.settings)[0]
        if r.name is None
    ]


def check_env_example_matches_settings(stack: Stack) -> list[str]:
    read = settings_vars(stack.settings)
    entries = env_example_entries(stack.env_example)
    documented = [name for name, _, _ in entries]
    problems = [
        f"{name} is read by gateway/settings.py but not documented in .env.example"
        for name in sorted(read - set(documented))
    ]
    stack_vars = stack_references(stack)
    problems += [
        f"{name} is in .env.example but neither gateway/settings.py nor the container stack "
        "reads it"
        for name in sorted(set(documented) - read - stack_vars)
    ]
    problems += [
        f"{name} appears more than once in .env.example"
        for name in sorted({n for n in documented if documented.count(n) > 1})
    ]
    return problems


def _same(value: str, default) -> bool:
    if isinstance(default, bool):
        return value.lower() == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(value) == float(default)
        except ValueError:
            return False
    if isinstance(default, list):
        return value == ",".join(str(item) for item in default)
    return value == default


def check_env_example_defaults(stack: Stack) -> list[str]:
    defaults = literal_defaults(stack.settings)
    return [
        f".env.example shows {name}={value}, but its default in gateway/settings.py is "
        f"{defaults[name]!r}"
        for name, value, is_set in env_example_entries(stack.env_example)
        if not is_set and name in defaults and not _same(value, defaults[name])
    ]


def check_env_example_holds_no_secret(stack: Stack) -> list[str]:
    problems = []
    values = env_example_set(stack.env_example)
    for name, value, _ in env_example_entries(stack.env_example):
        if SECRET_NAME.search(name) and value not in ("", PLACEHOLDER):
            problems.append(
                f".env.example gives {name} a value; secrets there must be {PLACEHOLDER!r} or empty"
            )
    for name in sorted(required_vars(stack.settings)):
        if name not in values:
            problems.append(
                f"{name} is required (no default in gateway/settings.py) but is not set "
                "(uncommented) in .env.example"
            )
    # The placeholders must be refused at start-up, so nobody runs with them by mistake.
    if "SECRET_KEY" in values and not _secret_key_problem(values["SECRET_KEY"]):
        problems.append(".env.example's SECRET_KEY would pass gateway.E012: not a placeholder")
    for key in filter(None, values.get("GATEWAY_ENCRYPTION_KEYS", "").split(",")):
        try:
            Fernet(key.encode())
            problems.append(".env.example's GATEWAY_ENCRYPTION_KEYS holds a usable Fernet key")
        except ValueError:
            pass
    return problems


def check_required_vars_reach_django_services(stack: Stack) -> list[str]:
    problems = []
    from_file = env_example_set(stack.env_example)
    required = required_vars(stack.settings)
    found = django_services(stack)
    for role in DJANGO_ROLES:
        if role not in {role_of(s) for s in found.values()}:
            problems.append(f"no compose service runs the {role} role")
    for name, service in sorted(found.items()):
        env_files = service.get("env_file") or []
        env_files = [env_files] if isinstance(env_files, str) else env_files
        reads_env = any((ROOT / "docker" / f).resolve() == ROOT / ".env" for f in env_files)
        environment = service.get("environment") or {}
        if isinstance(environment, list):
            environment = dict(item.partition("=")[::2] for item in environment)
        for var in sorted(required):
            if var not in environment and not (reads_env and var in from_file):
                problems.append(
                    f"compose service {name} does not get {var}: neither its environment nor "
                    "env_file ../.env (made from .env.example, where it must be uncommented)"
                )
        for var in PRODUCTION_VARS:
            if var not in environment:
                problems.append(
                    f"compose service {name} does not set {var}: it would run the embedded "
                    "mode, not the shared deployment"
                )
    for name, operator in interpolations(stack.compose):
        if operator in (":?", "?") and name not in from_file:
            problems.append(
                f"docker/compose.yml requires ${{{name}}}; set it (uncommented) in .env.example"
            )
    return problems


def check_web_port_agrees(stack: Stack) -> list[str]:
    ports: dict[str, str | None] = {}
    web = services(stack).get("web") or {}
    ports["compose web PORT"] = str((web.get("environment") or {}).get("PORT"))
    ports["compose web expose"] = ",".join(str(p) for p in web.get("expose") or []) or None
    exposed = [v for i, v in dockerfile_instructions(stack.dockerfile) if i == "EXPOSE"]
    ports["Dockerfile EXPOSE"] = exposed[-1].split("/")[0] if exposed else None
    env_port = re.search(r"\bPORT=(\d+)", " ".join(v for i, v in final_stage(stack.dockerfile)))
    ports["Dockerfile ENV PORT"] = env_port.group(1) if env_port else None
    default = re.search(r'--port "\$\{PORT:-(\d+)\}"', stack.entrypoint)
    ports["entrypoint --port default"] = default.group(1) if default else None
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", stack.nginx, re.S)
    block = upstream.group(1) if upstream else ""
    server = re.search(r"^\s*server\s+([\w.-]+):(\d+)", block, re.M)
    ports["nginx upstream"] = server.group(2) if server else None
    problems = []
    if server and server.group(1) not in services(stack):
        problems.append(f"nginx's upstream names {server.group(1)}, not a compose service")
    if len(set(ports.values())) != 1:
        problems.append(f"the web port disagrees: {json.dumps(ports)}")
    return problems


def _view(path: str | None) -> str | None:
    try:
        return resolve(path).func.__name__ if path else None
    except Resolver404:
        return None


def check_health_paths(stack: Stack) -> list[str]:
    problems = []
    checks = [v for i, v in final_stage(stack.dockerfile) if i == "HEALTHCHECK"]
    if not checks:
        problems.append("the Dockerfile's final stage has no HEALTHCHECK")
    for value in checks:
        command = json.loads(value[value.index("CMD") + 3 :].strip())
        path = healthcheck_path(command)
        if _view(path) != LIVENESS:
            problems.append(f"the Dockerfile HEALTHCHECK asks {path}, not the liveness route")
        for arg in command:
            if arg.endswith(".py") and dockerignored(arg, stack.dockerignore):
                problems.append(f"the HEALTHCHECK runs {arg}, which the .dockerignore leaves out")
    wanted = {"web": READINESS, "proxy": READINESS}
    for name, view in wanted.items():
        test = ((services(stack).get(name) or {}).get("healthcheck") or {}).get("test")
        path = healthcheck_path(test or [])
        if _view(path) != view:
            problems.append(f"compose service {name}'s health check asks {path}, not /{view}")
    located = re.findall(r"location\s*=\s*(/\S+)\s*\{", stack.nginx)
    if not any(_view(path) == READINESS for path in located):
        problems.append("nginx.conf has no location for the readiness route")
    return problems


def check_user_is_not_root(stack: Stack) -> list[str]:
    users = [v.strip() for i, v in final_stage(stack.dockerfile) if i == "USER"]
    if not users:
        return ["the Dockerfile's final stage sets no USER: the container runs as root"]
    user, _, group = users[-1].partition(":")
    if user in ("root", "0") or group in ("root", "0"):
        return [f"the Dockerfile runs as {users[-1]}"]
    if not user.isdigit():
        return [f"USER {users[-1]}: use a numeric uid, so runAsNonRoot can verify it"]
    return []


def check_images_are_pinned(stack: Stack) -> list[str]:
    problems = [p for image in base_images(stack.dockerfile) if (p := image_pin_problem(image))]
    for name, service in sorted(services(stack).items()):
        image = service.get("image")
        if service.get("build"):
            if not image or image.endswith(":latest") or ":" not in image:
                problems.append(f"compose service {name} builds an image tagged {image!r}")
        elif not image or (problem := image_pin_problem(image)):
            problems.append(f"compose service {name}: {problem if image else 'no image'}")
    return problems


def check_roles_agree(stack: Stack) -> list[str]:
    roles = entrypoint_roles(stack.entrypoint)
    problems = [f"entrypoint.sh has no {role} role" for role in DJANGO_ROLES if role not in roles]
    for name, service in sorted(django_services(stack).items()):
        if role_of(service) not in roles:
            problems.append(
                f"compose service {name} runs {role_of(service)!r}, not an entrypoint role"
            )
    for name, service in django_services(stack).items():
        replicas = (service.get("deploy") or {}).get("replicas", 1)
        if role_of(service) == "web" and replicas < 2:
            problems.append(f"compose service {name} runs {replicas} web replica(s), not 2")
        if role_of(service) == "beat" and replicas != 1:
            problems.append(f"compose service {name} runs {replicas} beats: tasks would run twice")
    cmd = [v for i, v in final_stage(stack.dockerfile) if i == "CMD"]
    if not cmd or json.loads(cmd[-1])[0] not in roles:
        problems.append("the Dockerfile's CMD is not an entrypoint role")
    return problems


def check_every_service_has_a_health_check(stack: Stack) -> list[str]:
    problems = []
    all_services = services(stack)
    for name, service in sorted(all_services.items()):
        check = service.get("healthcheck") or {}
        if check.get("test") and not check.get("disable"):
            continue
        one_shot = str(service.get("restart", "no")) == "no"
        awaited = [
            other
            for other, s in all_services.items()
            if ((s.get("depends_on") or {}).get(name) or {}).get("condition")
            == "service_completed_successfully"
        ]
        if not (one_shot and awaited):
            problems.append(
                f"compose service {name} has no health check (only a one-shot service that "
                "others await with service_completed_successfully may go without)"
            )
    web_deps = (all_services.get("web") or {}).get("depends_on") or {}
    migrate = [n for n, s in django_services(stack).items() if role_of(s) == "migrate"]
    if not any(
        (web_deps.get(n) or {}).get("condition") == "service_completed_successfully"
        for n in migrate
    ):
        problems.append("web does not wait for the migrate service to complete successfully")
    return problems


def check_redis_never_evicts(stack: Stack) -> list[str]:
    command = (services(stack).get("redis") or {}).get("command") or []
    words = command.split() if isinstance(command, str) else [str(w) for w in command]
    pairs = dict(itertools.pairwise(words))
    if pairs.get("--maxmemory-policy") != "noeviction":
        return ["compose redis does not run with --maxmemory-policy noeviction"]
    return []


def check_dependencies_come_from_the_lock(stack: Stack) -> list[str]:
    problems = []
    stages = [
        " ".join(v for i, v in stage if i == "RUN")
        for stage in dockerfile_stages(stack.dockerfile)[1:]
    ]
    locked = re.compile(r"pip install --require-hashes .*-r \S*requirements\.lock")
    if not any(locked.search(run) for run in stages):
        problems.append("the Dockerfile does not pip install --require-hashes -r requirements.lock")
    if "requirements-prod.lock" not in stack.dockerfile:
        problems.append("the Dockerfile does not copy requirements-prod.lock (runtime only)")
    if len(stages) < 2:
        problems.append("the Dockerfile has one stage: compilers would stay in the image")
    elif re.search(r"build-essential|\bgcc\b", stages[-1]):
        problems.append("the Dockerfile's final stage installs a compiler")
    return problems


def filled_in_dotenv(stack: Stack) -> dict[str, str]:
    """The .env an operator makes from .env.example: its placeholders replaced by good values."""
    generated = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "GATEWAY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "POSTGRES_PASSWORD": secrets.token_hex(16),
    }
    values = env_example_set(stack.env_example)
    return {k: generated.get(k, v) if v == PLACEHOLDER else v for k, v in values.items()}


def check_web_environment_starts(stack: Stack) -> list[str]:
    """The web service's environment passes the gateway's start-up checks in production mode
    (its settings parse, no system check error). Postgres and Redis are not there: the checks
    that need them skip, as they do while a dependency is down."""
    try:
        env = service_environment(stack, "web", filled_in_dotenv(stack))
    except KeyError as exc:
        return [f"docker/compose.yml cannot be interpolated from .env.example: {exc}"]
    with tempfile.TemporaryDirectory() as metrics_dir:
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir, "PATH": os.environ["PATH"]}
        env.setdefault("WEB_CONCURRENCY", "2")  # the image's
        done = subprocess.run(
            [sys.executable, "-m", "gateway.startup"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    if done.returncode != 0:
        return [f"the web service's environment fails start-up:\n{done.stderr[-2000:]}"]
    return []


ALL_CHECKS = [
    check_settings_reads_are_literal,
    check_env_example_matches_settings,
    check_env_example_defaults,
    check_env_example_holds_no_secret,
    check_required_vars_reach_django_services,
    check_web_port_agrees,
    check_health_paths,
    check_user_is_not_root,
    check_images_are_pinned,
    check_roles_agree,
    check_every_service_has_a_health_check,
    check_redis_never_evicts,
    check_dependencies_come_from_the_lock,
    check_web_environment_starts,
]
