"""The layers of docs/architecture.md, checked on the import statements of the code.

Each package may import only the packages below it; a cycle between apps, or infrastructure
that knows an app, fails here rather than in a reviewer's head.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package -> the first-party packages it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "infra": set(),
    # The audit log sits just above infrastructure: every app records into it, and it watches
    # their models by label (audit/capture.py), importing none of them.
    "audit": {"infra"},
    "tenants": {"infra", "audit"},
    "routing": {"infra", "audit", "tenants"},
    "policies": {"infra", "audit", "tenants", "routing"},
    "billing": {"infra", "audit", "tenants", "routing", "policies"},
    # The registry reads providers and teams, and (for its report) the usage records; the hot
    # path reads its snapshot. Nothing below it imports it.
    "compliance": {"infra", "audit", "tenants", "routing", "policies", "billing"},
    "gateway.proxy": {"infra", "tenants", "routing", "policies", "billing", "compliance"},
    # The management API: a people-facing part of the project level, beside the URLs that
    # mount it; it reads and writes the apps through their selectors and services.
    "api": {"infra", "audit", "tenants", "routing", "policies", "billing", "compliance"},
    # The team portal: people-facing, on top of the apps, beside the project level; it never
    # imports the project (gateway/), which mounts it (urls.py) and shares its login throttle.
    "portal": {"infra", "audit", "tenants", "routing", "policies", "billing", "compliance"},
    # The project level (settings, ASGI entry, URLs, config loader, commands) sits on top.
    "gateway": {
        "api",
        "infra",
        "audit",
        "tenants",
        "routing",
        "policies",
        "billing",
        "compliance",
        "gateway.proxy",
        "portal",
    },
}
FIRST_PARTY = {
    "api",
    "infra",
    "audit",
    "tenants",
    "routing",
    "policies",
    "billing",
    "compliance",
    "gateway",
    "portal",
}


def _package_of(module: str) -> str | None:
    if module.startswith("gateway.proxy"):
        return "gateway.proxy"
    top = module.split(".")[0]
    return top if top in FIRST_PARTY else None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sources():
    for package in ALLOWED:
        folder = ROOT / package.replace(".", "/")
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            owner = _package_of(".".join(rel.with_suffix("").parts))
            if owner == package:
                yield package, path


@pytest.mark.parametrize(
    ("package", "path"),
    list(_sources()),
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v,
)
def test_module_imports_only_lower_layers(package, path):
    wrong = set()
    for module in _imports(path):
        target = _package_of(module)
        if target is not None and target != package and target not in ALLOWED[package]:
            wrong.add(module)
    assert not wrong, f"{path.relative_to(ROOT)} ({package}) imports {sorted(wrong)}"


def test_every_package_is_checked():
    assert {package for package, _ in _sources()} == set(ALLOWED)
