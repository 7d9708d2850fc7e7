"""What a model group's fallbacks may name: one rule for the admin and the configuration file.
Pure: the names that exist are passed in (routing/models.py reads them for the admin).

A fallback names a group of the same mode (chat falls back to chat), that exists (it has a
ModelGroup row or deployments), and never the group itself: a group falling back to itself
would only try the same deployments again.
"""

FALLBACK_FIELDS = ("fallbacks", "context_fallbacks")


def fallback_list_problems(name: str, field: str, value, known: set[str]) -> list[tuple[str, str]]:
    """(path under the group, message) for each problem of one fallback list."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        return [(field, "must be a list of group names")]
    problems = []
    for index, entry in enumerate(value):
        if entry == name:
            problems.append((f"{field}[{index}]", "a group cannot fall back to itself"))
        elif entry not in known:
            shown = ", ".join(sorted(known - {name})) or "none"
            problems.append(
                (f"{field}[{index}]", f"{entry!r} names no group of this mode (known: {shown})")
            )
    return problems
