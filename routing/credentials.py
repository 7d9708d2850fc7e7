"""A provider's credential: a small object of named parts, encrypted at rest as a whole.

Stored as one Fernet token (routing/crypto.py) of a JSON object such as `{"api_key": "..."}` or
`{"api_key": "...", "api_version": "2024-10-21"}`; which parts a kind takes is declared in
routing/kinds.py. Nothing here ever puts a value into a message: errors, reprs and change
reports name parts only.
"""

from collections.abc import Iterator, Mapping

import orjson

from . import crypto
from .kinds import PARTS


class Credentials(Mapping[str, str]):
    """The decrypted parts, read-only. Its repr names the parts, never their values."""

    __slots__ = ("_parts",)

    def __init__(self, parts: Mapping[str, str] | None = None) -> None:
        # Empty values are no values: `api_key: ""` (an unset variable's default) means none.
        self._parts = {k: v for k, v in (parts or {}).items() if v}

    def __getitem__(self, name: str) -> str:
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def __hash__(self) -> int:
        return hash(frozenset(self._parts.items()))

    def __repr__(self) -> str:
        return f"Credentials({', '.join(sorted(self._parts))})"

    __str__ = __repr__

    def secret_values(self) -> tuple[str, ...]:
        """The values to keep out of anything relayed or shown. A part this version does not
        know is treated as secret."""
        return tuple(v for k, v in self._parts.items() if k not in PARTS or PARTS[k].secret)


EMPTY = Credentials()


def encrypt_credentials(parts: Mapping[str, str]) -> str:
    """One token for the whole object; "" when there is nothing to store."""
    found = Credentials(parts)
    if not found:
        return ""
    return crypto.encrypt(orjson.dumps(dict(sorted(found.items()))).decode())


def decrypt_credentials(token: str) -> Credentials:
    """The parts of a stored token. Raises ValueError (naming nothing secret) when the token
    cannot be decrypted or holds something other than an object of text values."""
    plaintext = crypto.decrypt(token)
    if not plaintext:
        return EMPTY
    if not plaintext.startswith("{"):
        # A token of the earlier format: the bare API key. Migration 0004 converts them all,
        # but a row written meanwhile by a process not yet upgraded (or one whose key was only
        # restored later) still reads correctly.
        return Credentials({"api_key": plaintext})
    try:
        parts = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        parts = None
    if not isinstance(parts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parts.items()
    ):
        raise ValueError("stored credential is not an object of text values")
    return Credentials(parts)


def credential_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """What changed between two credentials, for a report: secret parts by name only,
    others with their old and new values."""
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name, ""), new.get(name, "")
        if before == after:
            continue
        part = PARTS.get(name)
        if part is not None and not part.secret:
            changes.append(f"{name} {before!r} -> {after!r}")
        else:
            changes.append(name)
    return changes
