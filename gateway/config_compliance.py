"""The compliance parts of a configuration file: a provider's agreements and the requirements
of an organization or a team.

    providers:
      - name: openai-eu
        dpa: {status: signed, signed_on: 2026-01-15, expires_on: 2027-01-15, baa: true, ...}
        sub_processor_dpas:                 # optional: agreements covering its sub-processors
          - {sub_processor: azure, status: signed, signed_on: 2026-01-15}
    teams:
      - slug: clinic
        compliance: [hipaa]                 # also on an organization

Leaving `dpa` or `compliance` out leaves what is stored alone (it may have been set in the
admin): a file that does not mention a team's requirements never drops them. `compliance: []`
clears them. Inside a `dpa`, a field left out takes its default (status none, flags false, no
dates), so the file describes the whole agreement. The document itself is uploaded in the
admin; the file may give its `document_url`. Every save leaves a history row
(compliance/models.py), with "loadconfig" as its reason.
"""

import datetime

from compliance.models import DataProcessingAgreement, RequirementSet
from compliance.requirements import requirements_problem
from compliance.services import AGREEMENT_FIELDS as SETTABLE_AGREEMENT_FIELDS

from . import config_reading as read

# A provider's `dpa:` block takes what the registry's services take, but for `sub_processor`,
# which only entries of `sub_processor_dpas` name.
AGREEMENT_FIELDS = frozenset(SETTABLE_AGREEMENT_FIELDS) - {"sub_processor"}
PROVIDER_FIELDS = frozenset({"dpa", "sub_processor_dpas"})
_DATES = ("signed_on", "expires_on", "baa_signed_on", "baa_expires_on")
_REVIEW_DATES = ("last_reviewed_on", "next_review_on")
_FLAGS = ("zero_data_retention", "training_opt_out", "baa", "scc")
_TEXTS = ("document_url", "owner", "notes")
_REASON = "loadconfig"


def _date(item: dict, name: str, where: str, run) -> datetime.date | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
        return value  # YAML reads an unquoted 2026-01-15 as a date
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            pass
    run.error(f"{where}.{name}", f"not a date (YYYY-MM-DD): {value!r}")
    return None


def _false_flag(item: dict, name: str, where: str, run) -> bool:
    value = item.get(name, False)
    if not isinstance(value, bool):
        run.error(f"{where}.{name}", f"must be true or false, not {value!r}")
        return False
    return value


def _names(item: dict, name: str, where: str, run) -> list[str]:
    value = item.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        run.error(f"{where}.{name}", "must be a list of names")
        return []
    return value


def read_agreement(item, where: str, run, *, sub_processor: bool = False) -> dict | None:
    """The model values of one `dpa:` mapping (None if it is not one)."""
    if not isinstance(item, dict):
        run.error(where, "must be a mapping")
        return None
    allowed = AGREEMENT_FIELDS | ({"sub_processor"} if sub_processor else set())
    read.check_keys(
        item, allowed, frozenset({"sub_processor"} if sub_processor else ()), where, run
    )
    status = item.get("status", DataProcessingAgreement.Status.NONE)
    if status not in DataProcessingAgreement.Status.values:
        choices = ", ".join(DataProcessingAgreement.Status.values)
        run.error(f"{where}.status", f"{status!r} is not one of {choices}")
    retention = read.number(item, "retention_days", int, where, run)
    if retention is not None and retention < 0:
        run.error(f"{where}.retention_days", "must be >= 0")
    values = {
        "status": status,
        **{name: _date(item, name, where, run) for name in _DATES + _REVIEW_DATES},
        **{name: _false_flag(item, name, where, run) for name in _FLAGS},
        **{name: read.text(item, name, where, run) for name in _TEXTS},
        "retention_days": retention,
        # Region names are checked by the model's validator (full_clean), as in the admin.
        "regions": _names(item, "regions", where, run),
        "sub_processors": _names(item, "sub_processors", where, run),
    }
    if sub_processor:
        values["sub_processor"] = read.text(item, "sub_processor", where, run)
    return values


def read_agreements(item: dict, where: str, run) -> list[tuple[str, dict]]:
    """(path, values) of a provider's `dpa` and `sub_processor_dpas`, in that order."""
    found = []
    if "dpa" in item:
        values = read_agreement(item["dpa"], f"{where}.dpa", run)
        if values is not None:
            found.append((f"{where}.dpa", {**values, "sub_processor": ""}))
    path = f"{where}.sub_processor_dpas"
    for sub_path, sub in read.unique(
        read.items(item, "sub_processor_dpas", path, run), ("sub_processor",), run
    ):
        values = read_agreement(sub, sub_path, run, sub_processor=True)
        if values is not None:
            if not values["sub_processor"]:
                run.error(f"{sub_path}.sub_processor", "must name the sub-processor")
            found.append((sub_path, values))
    return found


def apply_agreements(agreements: list[tuple[str, dict]], provider, changed, run) -> None:
    """Create or update the provider's agreements; `changed(label, created, changes)` reports."""
    for where, values in agreements:
        values = dict(values)
        sub = values.pop("sub_processor")
        agreement = DataProcessingAgreement.objects.filter(
            provider=provider, sub_processor=sub
        ).first()
        created = agreement is None
        agreement = agreement or DataProcessingAgreement(provider=provider, sub_processor=sub)
        changes = []
        for name, new in values.items():
            old = getattr(agreement, name)
            if old != new:
                setattr(agreement, name, new)
                changes.append(f"{name} {old!r} -> {new!r}")
        paths = {name: f"{where}.{name}" for name in values}
        if (created or changes) and read.full_clean(agreement, where, run, paths):
            agreement._change_reason = _REASON  # the history row says where the change came from
            read.save(agreement, where, run)
        changed(f"agreement {agreement.party}", created, [] if created else changes)


def read_requirements(item: dict, where: str, run) -> list[str] | None:
    """A team's or organization's `compliance` list; None when the item has none."""
    if "compliance" not in item:
        return None
    value = item["compliance"]
    value = [] if value is None else value
    if problem := requirements_problem(value):
        run.error(f"{where}.compliance", problem)
        return None
    return list(dict.fromkeys(value))


def apply_requirements(requirements: list[str] | None, level: str, owner, changed) -> None:
    """Store an organization's or a team's requirements (`level`: organization | team)."""
    if requirements is None:
        return
    found = RequirementSet.objects.filter(**{level: owner}).first()
    if found is None and not requirements:
        return  # nothing stored, nothing asked for
    created = found is None
    found = found or RequirementSet(**{level: owner})
    if created or found.requirements != requirements:
        old = found.requirements
        found.requirements = requirements
        found._change_reason = _REASON
        found.save()
        changes = [] if created else [f"compliance {old!r} -> {requirements!r}"]
        changed(f"compliance requirements of {level} {owner.slug}", created, changes)
    else:
        changed(f"compliance requirements of {level} {owner.slug}", False, [])
