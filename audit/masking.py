"""What of a model instance goes into an audit row, and what never does.

A field is secret when its name says so: a part (between underscores) that is "secret",
"password", "token", "hash", "encrypted", "credential(s)" or "webhook"; "max_tokens" is a limit,
not a secret, and stays readable. A secret's value is replaced by whether it is set and whether
it changed, never by any of its characters, hashed or not.
"""

import datetime
import decimal
import re
import uuid

MASK = "***"
MASK_CHANGED = "*** (changed)"
_SECRET_PARTS = frozenset(
    {"secret", "password", "token", "hash", "encrypted", "credential", "credentials", "webhook"}
)


def is_secret(name: str) -> bool:
    return any(part in _SECRET_PARTS for part in re.split(r"[_\W]+", name.lower()))


def plain(value):
    """A JSON-safe copy of a field value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return str(value)


def _masked(value):
    return MASK if value not in (None, "", b"") else value


def masked_pair(name: str, before, after) -> list:
    if not is_secret(name):
        return [plain(before), plain(after)]
    after_shown = _masked(after)
    if before not in (None, "") and after not in (None, "") and before != after:
        after_shown = MASK_CHANGED
    return [_masked(before), after_shown]


def mask_changes(changes: dict | None) -> dict:
    """{field: [before, after]} with secrets masked; any other shape is masked as a whole."""
    out = {}
    for name, pair in (changes or {}).items():
        if isinstance(pair, list | tuple) and len(pair) == 2:
            out[name] = masked_pair(name, pair[0], pair[1])
        else:
            out[name] = _masked(pair) if is_secret(name) else plain(pair)
    return out


def snapshot(instance) -> dict:
    """The instance's concrete fields, by name (foreign keys as ids), in clear: masked only
    when turned into changes, so a secret's change can still be detected."""
    values = {}
    for field in instance._meta.concrete_fields:
        if not field.primary_key:  # the row's object_id already says it
            values[field.name] = field.value_from_object(instance)
    return values


def diff(before: dict | None, after: dict | None) -> dict:
    """Masked {field: [before, after]} of the fields that differ (every field when one side
    is missing: a creation or a deletion)."""
    before = before or {}
    after = after or {}
    changes = {}
    for name in dict.fromkeys([*before, *after]):
        old, new = before.get(name), after.get(name)
        if old != new or not before or not after:
            if old is None and new is None:
                continue
            changes[name] = masked_pair(name, old, new)
    return changes
