"""Re-encrypting the secrets at rest under the first key of GATEWAY_ENCRYPTION_KEYS.

Every field encrypted with routing/crypto.py is listed in ENCRYPTED_FIELDS (a test fails when a
model gains an `*_encrypted` field that is not). Rows are read in primary-key batches, each batch
locked and rewritten in its own transaction: a crash between batches leaves some rows under the
new key and the rest under an old one, all readable while both keys are in the list, and a rerun
skips the rows already done. Nothing here ever returns or logs a token or a plaintext.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.db import transaction

# (model label, field name): every column holding a Fernet token of routing/crypto.py.
ENCRYPTED_FIELDS: tuple[tuple[str, str], ...] = (
    ("routing.Provider", "credentials_encrypted"),
    ("policies.Policy", "alert_webhook_encrypted"),
)


@dataclass
class FieldCount:
    """What one model field held: `stale` rows were (or, on a dry run or check, would be)
    re-encrypted; `unreadable` rows decrypt under no key in the list and are left alone."""

    label: str
    scanned: int = 0
    empty: int = 0
    current: int = 0
    stale: int = 0
    unreadable: int = 0


@dataclass
class RotationReport:
    fields: list[FieldCount] = field(default_factory=list)
    complete: bool = True  # False when --limit stopped the run early

    @property
    def stale(self) -> int:
        return sum(f.stale for f in self.fields)

    @property
    def unreadable(self) -> int:
        return sum(f.unreadable for f in self.fields)


def _keys() -> tuple[Fernet, MultiFernet]:
    # Built from the settings on each run, not routing/crypto.py's cached one: a test (or a
    # shell) may change the key list between runs.
    fernets = [Fernet(k.encode()) for k in settings.GATEWAY_ENCRYPTION_KEYS]
    return fernets[0], MultiFernet(fernets)


def _under_first_key(first: Fernet, token: str) -> bool:
    try:
        first.decrypt(token.encode())
    except InvalidToken:
        return False
    return True


# Called after each committed batch with the field's label and the rows written so far; the
# crash test raises from here to stop a run between two batches.
after_batch: Callable[[str, int], None] | None = None


def _rotate_field(
    label: str,
    field_name: str,
    *,
    write: bool,
    batch_size: int,
    budget: list[int | None],
) -> tuple[FieldCount, bool]:
    """One field of one model. `budget` holds the rows still allowed to be rewritten by this
    run (None: no limit), shared across fields. Returns the counts and whether it finished."""
    model = apps.get_model(label)
    first, multi = _keys()
    count = FieldCount(label=f"{label}.{field_name}")
    last_pk = None
    while True:
        with transaction.atomic():
            rows = model._default_manager.order_by("pk")
            if last_pk is not None:
                rows = rows.filter(pk__gt=last_pk)
            if write:
                # Locked so that a concurrent save (the admin setting a new credential) is not
                # overwritten by a re-encryption of the value it replaced.
                rows = rows.select_for_update(of=("self",))
            batch = list(rows.values_list("pk", field_name)[:batch_size])
            rewritten = []
            stopped = False
            for pk, token in batch:
                count.scanned += 1
                if not token:
                    count.empty += 1
                elif _under_first_key(first, token):
                    count.current += 1
                elif budget[0] == 0:
                    count.scanned -= 1  # left for the next run
                    stopped = True
                    break
                else:
                    try:
                        rotated = multi.rotate(token.encode()).decode()
                    except InvalidToken:
                        count.unreadable += 1
                        continue
                    count.stale += 1
                    if budget[0] is not None:
                        budget[0] -= 1
                    rewritten.append(model(pk=pk, **{field_name: rotated}))
            if write and rewritten:
                # One UPDATE for the batch, and not save(): the plaintext is unchanged, so
                # neither updated_at nor the audit log's per-row capture should move.
                model._default_manager.bulk_update(rewritten, [field_name])
        if stopped:
            return count, False
        if not batch:
            return count, True
        last_pk = batch[-1][0]
        if write and after_batch is not None:
            after_batch(count.label, count.stale)


def keys_rotate(*, write: bool, batch_size: int = 500, limit: int | None = None) -> RotationReport:
    """Re-encrypt every stale token under the first key (write=False: count only)."""
    report = RotationReport()
    budget: list[int | None] = [limit]
    for label, field_name in ENCRYPTED_FIELDS:
        count, finished = _rotate_field(
            label, field_name, write=write, batch_size=batch_size, budget=budget
        )
        report.fields.append(count)
        if not finished:
            report.complete = False
            break
    return report
