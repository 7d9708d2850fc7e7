"""Reading a configuration document: each value checked, each problem recorded at its path.

The loaders in gateway/config.py read every field through these helpers, which record a problem
(`teams[2] (search).allowed_models[1]: ...`) and carry on, so that one run reports them all.
"""

import difflib
import os
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Problems:
    """The errors found so far, each "<path>: <message>"."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def check(self) -> Callable[[], bool]:
        """A function that says whether any error was added since this call."""
        mark = len(self.errors)
        return lambda: len(self.errors) > mark


def name_of(value) -> str | None:
    """A YAML value usable as a name (a string, or a number written without quotes)."""
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None


def label(path: str, item: dict, key: str) -> str:
    name = name_of(item.get(key))
    return f"{path} ({name})" if name else path


def interpolate(value, where: str, run: Problems):
    if isinstance(value, str):

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name not in os.environ:
                run.error(where, f"environment variable {name} is not set")
                return match.group(0)
            return os.environ[name]

        return _ENV_REF.sub(replace, value)
    if isinstance(value, list):
        return [interpolate(v, f"{where}[{i}]", run) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: interpolate(v, f"{where}.{k}", run) for k, v in value.items()}
    return value


def items(container: dict, section: str, path: str, run: Problems) -> list[tuple[str, dict]]:
    """(path, item) for each mapping of a list section; anything else is an error."""
    items = container.get(section) or []
    if not isinstance(items, list):
        run.error(path, "must be a list of mappings")
        return []
    found = []
    for index, item in enumerate(items):
        if isinstance(item, dict):
            found.append((f"{path}[{index}]", item))
        else:
            run.error(f"{path}[{index}]", "must be a mapping")
    return found


def unique(items: list[tuple[str, dict]], keys: tuple[str, ...], run: Problems) -> list:
    """Drop (and report) a later item with the same name: which one should win is a guess."""
    first: dict[tuple, str] = {}
    kept = []
    for path, item in items:
        key = tuple(name_of(item.get(k)) for k in keys)
        if None in key:  # missing or not a name: reported with the item's other problems
            kept.append((path, item))
        elif key in first:
            where = label(path, item, keys[0])
            if len(keys) == 1:
                where, shown = f"{where}.{keys[0]}", repr(key[0])
            else:
                shown = " with ".join(f"{k} {v!r}" for k, v in zip(keys, key, strict=True))
            run.error(where, f"{shown} is listed twice (first at {first[key]})")
        else:
            first[key] = path
            kept.append((path, item))
    return kept


def check_keys(
    item: dict, allowed: frozenset[str], required: frozenset[str], where: str, run: Problems
) -> None:
    for name in sorted(str(k) for k in set(item) - allowed):
        close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(allowed))}"
        run.error(f"{where}.{name}", f"unknown field ({hint})")
    for name in sorted(required - set(item)):
        run.error(f"{where}.{name}", "missing (required)")


def price(item: dict, name: str, where: str, run: Problems) -> Decimal | None:
    value = item.get(name, 0)
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        price = None
    if price is None or not price.is_finite() or isinstance(value, bool):
        run.error(f"{where}.{name}", f"not a number: {value!r}")
        return None
    if price < 0 or price != price.quantize(Decimal("0.000001")):
        run.error(f"{where}.{name}", "must be >= 0 with at most 6 decimals")
        return None
    return price


def number(item: dict, name: str, cast, where: str, run: Problems, default=None):
    value = item.get(name, default)
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise TypeError
        return cast(value)
    except (TypeError, ValueError):
        run.error(f"{where}.{name}", f"not a number: {value!r}")
        return None


def flag(item: dict, name: str, where: str, run: Problems) -> bool:
    value = item.get(name, True)
    if not isinstance(value, bool):
        # bool("false") is True: a quoted "false" must not silently mean enabled.
        run.error(f"{where}.{name}", f"must be true or false, not {value!r}")
    return bool(value)


def text(item: dict, name: str, where: str, run: Problems, default: str = "") -> str:
    value = item.get(name)
    if value is None:
        return default
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    run.error(f"{where}.{name}", f"must be text, not {value!r}")
    return default


def full_clean(obj, where: str, run: Problems, paths: dict[str, str] | None = None) -> bool:
    """The model's own validation (slugs, URLs, minimums), each message at its file path."""
    try:
        obj.full_clean()
    except ValidationError as exc:
        paths = paths or {}
        for name, messages in exc.message_dict.items():
            path = where if name == "__all__" else paths.get(name, f"{where}.{name}")
            run.error(path, " ".join(messages))
        return False
    return True


def save(obj, where: str, run: Problems) -> None:
    try:
        with transaction.atomic():  # a savepoint: one refused row must not poison the rest
            obj.save()
    except DatabaseError as exc:
        run.error(where, f"the database refused it: {exc}")


def known(names: list[str], limit: int = 20) -> str:
    """ " (known: a, b, c)", for a message about a name that matched none of them."""
    if not names:
        return " (none are defined)"
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f" (known: {shown})"
