"""What a model group's fallbacks may name: one rule for the admin and the configuration file.

A fallback names a group of the same mode (chat falls back to chat), that exists (it has a
ModelGroup row or deployments), and never the group itself: a group falling back to itself
would only try the same deployments again.
"""

from .models import Deployment, ModelGroup

FALLBACK_FIELDS = ("fallbacks", "context_fallbacks")


def group_names(mode: str | None = None) -> set[str]:
    """Every group name (of `mode`, or of any mode): rows and deployments' model names."""
    groups = ModelGroup.objects.order_by()
    deployments = Deployment.objects.order_by()
    if mode is not None:
        groups, deployments = groups.filter(mode=mode), deployments.filter(mode=mode)
    return set(groups.values_list("name", flat=True)) | set(
        deployments.values_list("model_name", flat=True)
    )


def group_exists(name: str) -> bool:
    return name in group_names()


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


def fallback_problems(name: str, mode: str, fallbacks, context_fallbacks) -> dict[str, str]:
    """The admin's check: field -> message (the first problem of each list)."""
    known = group_names(mode)
    errors: dict[str, str] = {}
    for field, value in zip(FALLBACK_FIELDS, (fallbacks, context_fallbacks), strict=True):
        problems = fallback_list_problems(name, field, value, known)
        if problems:
            errors[field] = "; ".join(message for _, message in problems)
    return errors
