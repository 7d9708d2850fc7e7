"""Reading the container stack (docker/, .env.example) and the settings, for
tests/test_container_stack.py. Parsers only: no container engine, no network.

Each `check_*` function takes a Stack and returns a list of problems, one sentence each (empty:
all good), so that a test can show every problem at once and can run the same check on a
deliberately broken copy.
"""

import ast
import contextlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
# The entrypoint roles that run Django, hence need the settings' variables.
DJANGO_ROLES = ("web", "worker", "beat", "migrate")
# A value in .env.example may be a placeholder, never a secret.
PLACEHOLDER = "change-me"
SECRET_NAME = re.compile(r"(SECRET_KEY|_KEYS?|PASSWORD|_TOKEN|WEBHOOK_URL)$")
# Set in every Django service of the compose file: without them a container silently runs the
# embedded mode (its own SQLite file, in-process state), not the shared deployment.
PRODUCTION_VARS = ("DATABASE_URL", "REDIS_URL")


@dataclass(frozen=True)
class Stack:
    settings: str  # gateway/settings.py
    compose: dict  # docker/compose.yml, parsed
    dockerfile: str
    dockerignore: str
    entrypoint: str
    nginx: str
    env_example: str  # .env.example

    @classmethod
    def load(cls) -> "Stack":
        return cls(
            settings=(ROOT / "gateway" / "settings.py").read_text(),
            compose=yaml.safe_load((DOCKER / "compose.yml").read_text()),
            dockerfile=(DOCKER / "Dockerfile").read_text(),
            dockerignore=(DOCKER / "Dockerfile.dockerignore").read_text(),
            entrypoint=(DOCKER / "entrypoint.sh").read_text(),
            nginx=(DOCKER / "nginx.conf").read_text(),
            env_example=(ROOT / ".env.example").read_text(),
        )


# --- The settings' environment variables -------------------------------------------------------


@dataclass(frozen=True)
class EnvRead:
    name: str | None  # None: not a string literal
    default: ast.expr | None  # None: no default=
    line: int


def settings_reads(source: str) -> tuple[list[EnvRead], set[str]]:
    """Every django-environ read in the settings (`env.str("X", default=...)`, `env("X")`,
    `env.db("X")`...), and the names tested with `"X" in env`."""
    reads, tested = [], set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Constant)
            and isinstance(node.ops[0], ast.In)
            and _is_env(node.comparators[0])
        ):
            tested.add(node.left.value)
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        if not (_is_env(func) or (isinstance(func, ast.Attribute) and _is_env(func.value))):
            continue
        first = node.args[0]
        name = first.value if isinstance(first, ast.Constant) else None
        default = next((k.value for k in node.keywords if k.arg == "default"), None)
        reads.append(EnvRead(name, default, node.lineno))
    return reads, tested


def _is_env(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "env"


def settings_vars(source: str) -> set[str]:
    reads, tested = settings_reads(source)
    return {r.name for r in reads if r.name} | tested


def required_vars(source: str) -> set[str]:
    """Read without a default anywhere, and never tested for presence first."""
    reads, tested = settings_reads(source)
    with_default = {r.name for r in reads if r.default is not None}
    return {r.name for r in reads if r.name} - with_default - tested


def literal_defaults(source: str) -> dict[str, object]:
    """name -> default, for the defaults that are plain values (numbers, strings, lists)."""
    found = {}
    for read in settings_reads(source)[0]:
        if read.name and read.default is not None:
            # A default computed from other settings (mode, BASE_DIR) is not comparable.
            with contextlib.suppress(ValueError):
                found[read.name] = _literal(read.default)
    return found


def _literal(node: ast.expr):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult | ast.Pow):
        left, right = _literal(node.left), _literal(node.right)
        return left * right if isinstance(node.op, ast.Mult) else left**right
    raise ValueError(ast.unparse(node))


# Runs the settings module in a child process with django-environ's reads recorded, in the
# embedded and in the production mode: the reads that actually happen, whatever their syntax.
_RECORDER = r"""
import json, runpy, sys
import environ
seen = set()
get_value = environ.Env.get_value
def recording(self, var, *args, **kwargs):
    seen.add(var)
    return get_value(self, var, *args, **kwargs)
contains = environ.Env.__contains__
def recording_contains(self, var):
    seen.add(var)
    return contains(self, var)
environ.Env.get_value = recording
environ.Env.__contains__ = recording_contains
environ.Env.read_env = classmethod(lambda cls, *args, **kwargs: None)  # no .env file
runpy.run_path(sys.argv[1])
print(json.dumps(sorted(seen)))
"""


def recorded_reads(settings_path: Path) -> set[str]:
    base = {"SECRET_KEY": "x" * 50, "GATEWAY_ENCRYPTION_KEYS": "k", "PATH": "/usr/bin:/bin"}
    production = {"DATABASE_URL": "postgres://u@db:5432/g", "REDIS_URL": "redis://r:6379/0"}
    seen: set[str] = set()
    for extra in ({}, production):
        done = subprocess.run(
            [sys.executable, "-c", _RECORDER, str(settings_path)],
            env={**base, **extra, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        seen |= set(json.loads(done.stdout.strip().splitlines()[-1]))
    return seen


# --- .env.example ------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^(#\s?)?([A-Z][A-Z0-9_]*)=(.*)$")


def env_example_entries(text: str) -> list[tuple[str, str, bool]]:
    """(name, value, set) per `NAME=value` line; set is False for a commented `# NAME=value`."""
    entries = []
    for line in text.splitlines():
        match = _ENV_LINE.match(line.strip())
        if match:
            entries.append((match.group(2), match.group(3), match.group(1) is None))
    return entries


def env_example_set(text: str) -> dict[str, str]:
    return {name: value for name, value, is_set in env_example_entries(text) if is_set}


def stack_references(stack: Stack) -> set[str]:
    """Variables the compose file, the entrypoint or the Dockerfile read themselves."""
    text = yaml.safe_dump(stack.compose) + stack.entrypoint + stack.dockerfile
    return set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))


# --- docker/compose.yml ------------------------------------------------------------------------


def services(stack: Stack) -> dict[str, dict]:
    return stack.compose.get("services") or {}


def django_services(stack: Stack) -> dict[str, dict]:
    """The services that run the gateway's image: built from docker/Dockerfile."""
    found = {}
    for name, service in services(stack).items():
        build = service.get("build") or {}
        if isinstance(build, dict) and build.get("dockerfile") == "docker/Dockerfile":
            found[name] = service
    return found


def role_of(service: dict) -> str | None:
    command = service.get("command")
    if isinstance(command, str):
        command = command.split()
    return command[0] if command else None


def healthcheck_path(test) -> str | None:
    """The HTTP path a health check command requests ("/readyz", or a URL's path)."""
    for part in test if isinstance(test, list) else str(test).split():
        if part.startswith("/") and not part.startswith("/dev/"):
            return part
        if part.startswith(("http://", "https://")):
            return urlsplit(part).path
    return None


def interpolations(compose: dict) -> list[tuple[str, str]]:
    """(name, operator) per ${NAME...} in the compose file; operator ':?', ':-' or ''."""
    text = yaml.safe_dump(compose)
    return re.findall(r"\$\{([A-Z][A-Z0-9_]*)(:\?|:-|\?|-)?", text)


# --- docker/Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        current += " " + stripped[:-1] if stripped.endswith("\\") else " " + stripped
        if not stripped.endswith("\\"):
            logical.append(current.strip())
            current = ""
    pairs = [(*line.split(None, 1), "")[:2] for line in logical]
    return [(instruction.upper(), value) for instruction, value in pairs]


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (the ones before the first FROM are stage 0's ARGs,
    returned as their own list first)."""
    stages: list[list[tuple[str, str]]] = [[]]
    for instruction in dockerfile_instructions(text):
        if instruction[0] == "FROM":
            stages.append([])
        stages[-1].append(instruction)
    return stages


def base_images(text: str) -> list[str]:
    """The image of every FROM, with global ARG defaults substituted; stage names left out."""
    args = {}
    for instruction, value in dockerfile_stages(text)[0]:
        if instruction == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            args[key.strip()] = default.strip()
    stage_names, images = set(), []
    for instruction, value in dockerfile_instructions(text):
        if instruction != "FROM":
            continue
        words = value.split()
        words = [w for w in words if not w.startswith("--platform")]
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), words[0])
        if len(words) >= 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
        if image not in stage_names:
            images.append(image)
    return images


def image_pin_problem(image: str) -> str | None:
    """None for `name:tag@sha256:<64 hex>` with a specific tag; otherwise what is wrong."""
    name, _, digest = image.partition("@")
    tag = name.rpartition(":")[2] if ":" in name.rpartition("/")[2] else ""
    if not tag:
        return f"{image} has no tag"
    if tag == "latest":
        return f"{image} uses the tag latest"
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
        return f"{image} is not pinned by digest (@sha256:...)"
    return None


def final_stage(text: str) -> list[tuple[str, str]]:
    return dockerfile_stages(text)[-1]


def entrypoint_roles(text: str) -> set[str]:
    """The words of the `case "$role"` arms (`web | serve)` gives web and serve)."""
    roles = set()
    for arm in re.findall(r"^\s*([a-z][a-z |]*)\)\s*$", text, re.M):
        roles.update(word.strip() for word in arm.split("|"))
    return roles


def dockerignored(path: str, patterns: str) -> bool:
    from fnmatch import fnmatch

    rules = [p.strip() for p in patterns.splitlines() if p.strip() and not p.startswith("#")]
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch(prefix, rule) for rule in rules for prefix in prefixes)


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, from `variables`."""

    def replace(match: re.Match) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if variables.get(name):
            return variables[name]
        if operator == ":?":
            raise KeyError(f"${{{name}}} is required: {rest}")
        return rest if operator == ":-" else ""

    return re.sub(r"\$\{([A-Z][A-Z0-9_]*)(:-|:\?)?([^}]*)\}", replace, value)


def service_environment(stack: Stack, name: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What the container of a compose service sees: its env_file (`dotenv`, the .env made
    from .env.example), overridden by its own environment, interpolated from `dotenv`."""
    environment = services(stack)[name].get("environment") or {}
    return {**dotenv, **{k: interpolate(str(v), dotenv) for k, v in environment.items()}}
