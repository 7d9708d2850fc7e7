"""A provider's credential in a configuration, read and checked against its kind's shape.

    credentials: {api_key: ${AZURE_OPENAI_API_KEY}, api_version: "2024-10-21"}
    api_key: ${OPENAI_API_KEY}          # shorthand for credentials: {api_key: ...}

Kept apart from the loader's walk through the file, like config_timeouts.py: it returns what
it found and what is wrong (path below the provider, message), and the loader reports the
problems its own way. Messages name parts, never values.
"""

import datetime
import difflib

from routing.kinds import PARTS, credential_shape

SHORTHAND = "api_key"
FIELD = "credentials"


def _text(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    # YAML reads an unquoted 2024-10-21 as a date; as an API version it means the text.
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value.isoformat()
    return None


def misplaced_parts(item: dict) -> list[str]:
    """Credential parts written beside the provider's fields instead of under credentials."""
    return sorted(name for name in item if name in PARTS and name != SHORTHAND)


def read_credentials(item: dict, kind) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The parts the provider entry gives (empty ones dropped) and its problems. An unknown
    kind has its own error; its parts are then only checked for being text."""
    problems: list[tuple[str, str]] = []
    if SHORTHAND in item and FIELD in item:
        problems.append((SHORTHAND, f"give the credential either as {SHORTHAND} or as {FIELD}"))
        return {}, problems
    if FIELD in item:
        given = item[FIELD] if item[FIELD] is not None else {}
        if not isinstance(given, dict):
            problems.append((FIELD, "must be a mapping of credential parts"))
            return {}, problems
        where = FIELD
    else:
        given = {SHORTHAND: item[SHORTHAND]} if SHORTHAND in item else {}
        where = ""
    found: dict[str, str] = {}
    for name, value in given.items():
        path = f"{where}.{name}" if where else str(name)
        if value is None:
            continue
        text = _text(value)
        if text is None:
            # The value may be a secret: its type is enough to say what is wrong.
            problems.append((path, f"must be text, not {type(value).__name__}"))
        elif text:
            found[str(name)] = text
    shape = credential_shape(kind) if isinstance(kind, str) else None
    if shape is None:
        return found, problems
    for name in shape.unknown({str(n) for n in given}):
        close = difflib.get_close_matches(name, shape.names, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else f"it takes: {shape.describe()}"
        path = f"{where}.{name}" if where else name
        problems.append((path, f"not a credential part of {kind} providers ({hint})"))
    for name in shape.missing(set(found)):
        problems.append((f"{FIELD}.{name}", f"missing (required for {kind} providers)"))
    return found, problems
