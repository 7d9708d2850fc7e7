"""Cost allocation tags: what a request says it is for (use case, feature, environment).

From an `x-gateway-tags: use_case=search,environment=prod` header, or the body's `metadata`
object (OpenAI's field of string values; the header wins on a key given twice). Keys must be
among the organization's allowed tag keys (`Organization.allowed_tag_keys`); keys and values
are short, plain tokens, and a request carries at most MAX_TAGS. In the header anything else is
a 400 that names the tag, so a typo never turns into spend nobody can attribute. In `metadata`
only the allowed keys are tags: the field also carries the provider's own metadata (OpenAI's
stored completions), which is none of the gateway's business and is forwarded as it is.
"""

import re

from django.http import HttpRequest

from .errors import BadRequest

HEADER = "x-gateway-tags"
MAX_TAGS = 10
_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
_VALUE = re.compile(r"[A-Za-z0-9_.:/@+-]{1,64}")


def _invalid(message: str, param: str) -> BadRequest:
    return BadRequest(message, param=param, code="invalid_tags")


def _from_header(raw: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise _invalid(f"'{HEADER}' takes key=value pairs separated by commas", HEADER)
        found[key.strip()] = value.strip()
    return found


def _from_metadata(metadata, allowed: frozenset[str]) -> dict[str, str]:
    if not isinstance(metadata, dict):
        return {}
    return {k: v for k, v in metadata.items() if k in allowed and isinstance(v, str)}


def parse(request: HttpRequest, data: dict, allowed: frozenset[str]) -> dict[str, str]:
    """The request's tags, validated; {} when it has none (the common case: two lookups)."""
    raw = request.headers.get(HEADER)
    metadata = data.get("metadata")
    if not raw and not metadata:
        return {}
    tags = {**_from_metadata(metadata, allowed), **(_from_header(raw) if raw else {})}
    param = HEADER if raw else "metadata"
    if len(tags) > MAX_TAGS:
        raise _invalid(f"at most {MAX_TAGS} tags per request", param)
    for key, value in tags.items():
        if not _KEY.fullmatch(key):
            raise _invalid(
                "a tag key is lower-case letters, digits and '_', at most 32 characters", param
            )
        if key not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise _invalid(f"tag '{key}' is not allowed here (allowed: {known})", param)
        if not _VALUE.fullmatch(value):
            raise _invalid(f"tag '{key}' must be 1-64 letters, digits or _.:/@+-", param)
    return tags
