"""Writes of the compliance registry made outside the admin (the management API).

Each save is validated as the admin's form would (full_clean), records the actor in the
agreement's history (django-simple-history) and in the audit log."""

from audit.context import service_action

from .models import DataProcessingAgreement

# What a caller may set; the document file is uploaded in the admin only.
AGREEMENT_FIELDS = (
    "sub_processor",
    "status",
    "signed_on",
    "expires_on",
    "document_url",
    "retention_days",
    "zero_data_retention",
    "training_opt_out",
    "baa",
    "baa_signed_on",
    "baa_expires_on",
    "scc",
    "regions",
    "sub_processors",
    "owner",
    "last_reviewed_on",
    "next_review_on",
    "notes",
)


def _save(agreement: DataProcessingAgreement, action: str, actor) -> DataProcessingAgreement:
    agreement.full_clean()
    if actor is not None:
        agreement._history_user = actor  # the history row's author (not the request's user)
    with service_action(action, actor=actor):
        agreement.save()
    return agreement


def agreement_create(*, provider, actor=None, **values) -> DataProcessingAgreement:
    """Raises ValidationError for an invalid agreement, or one that exists for the party."""
    unknown = set(values) - set(AGREEMENT_FIELDS)
    if unknown:
        raise TypeError(f"not agreement fields: {sorted(unknown)}")
    return _save(DataProcessingAgreement(provider=provider, **values), "create", actor)


def agreement_update(
    *, agreement: DataProcessingAgreement, actor=None, **values
) -> DataProcessingAgreement:
    unknown = set(values) - set(AGREEMENT_FIELDS)
    if unknown:
        raise TypeError(f"not agreement fields: {sorted(unknown)}")
    for name, value in values.items():
        setattr(agreement, name, value)
    return _save(agreement, "update", actor)
