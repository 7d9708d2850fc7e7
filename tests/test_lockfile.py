"""requirements.lock agrees with pyproject.toml: every declared dependency is pinned, at a
version its specifier allows, with hashes; `make install` installs from it and nothing else.
A dependency added to pyproject.toml without `make lock` fails here, not on a fresh machine."""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)")


def _pins(name: str) -> dict[str, tuple[str, int]]:
    """package -> (version, number of hashes) of a lock file."""
    pins: dict[str, tuple[str, int]] = {}
    current = None
    for line in (ROOT / name).read_text().splitlines():
        found = _PIN.match(line)
        if found:
            current = canonicalize_name(found[1])
            pins[current] = (found[2], 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[current]
            pins[current] = (version, hashes + 1)
    return pins


def _declared(*, dev: bool) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + (project["optional-dependencies"]["dev"] if dev else [])
    return [Requirement(text) for text in listed]


@pytest.mark.parametrize(
    ("lock", "dev"), [("requirements.lock", True), ("requirements-prod.lock", False)]
)
def test_every_declared_dependency_is_pinned_within_its_specifier(lock, dev):
    pins = _pins(lock)
    for requirement in _declared(dev=dev):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in {lock}: run make lock"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{lock} pins {requirement.name}=={version}, outside {requirement.specifier}: "
            "run make lock"
        )


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-prod.lock"])
def test_every_pin_carries_hashes(lock):
    unhashed = [name for name, (_, hashes) in _pins(lock).items() if hashes == 0]
    assert not unhashed


def test_the_runtime_lock_is_the_full_lock_without_the_dev_tools():
    full, prod = _pins("requirements.lock"), _pins("requirements-prod.lock")
    assert {name: v for name, (v, _) in prod.items()} == {name: full[name][0] for name in prod}
    assert "pytest" in full and "pytest" not in prod


def test_make_install_installs_from_the_lock_with_hashes_required():
    makefile = (ROOT / "Makefile").read_text()
    assert "$(VENV_OK): pyproject.toml $(LOCK)" in makefile
    assert "pip install --quiet --require-hashes --no-deps -r $(LOCK)" in makefile
