from django.core.management.base import CommandError

from audit.commands import AuditedCommand
from audit.services import audit_record
from gateway.keyrotation import RotationReport, keys_rotate


class Command(AuditedCommand):
    help = (
        "Re-encrypt every secret stored at rest (provider credentials, alert webhook URLs) "
        "under the first key of GATEWAY_ENCRYPTION_KEYS. Idempotent and resumable: rows "
        "already under the first key are left alone. --check exits 1 while any row is still "
        "under another key, so the old key can be dropped once it exits 0."
    )

    def add_arguments(self, parser):
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--dry-run", action="store_true", help="count what would change; write nothing"
        )
        mode.add_argument(
            "--check",
            action="store_true",
            help="write nothing; exit 1 if any row is not under the first key",
        )
        parser.add_argument(
            "--batch-size", type=int, default=500, help="rows per transaction (default 500)"
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=None,
            help="re-encrypt at most this many rows in this run (rerun to continue)",
        )

    def handle(self, *args, dry_run, check, batch_size, limit, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if limit is not None and limit < 0:
            raise CommandError("--limit must not be negative")
        write = not (dry_run or check)
        report = keys_rotate(write=write, batch_size=batch_size, limit=limit)
        self._summary(report, write=write)
        if write and report.stale:
            # One event for the run: which fields moved and how many rows, never a value.
            audit_record(
                action="rotate",
                object_type="gateway.encryptionkeys",
                object_repr="GATEWAY_ENCRYPTION_KEYS",
                # Keyed by model: a key with "encrypted" in it would be masked as a secret.
                changes={
                    f"{f.label.rsplit('.', 1)[0]} rows rotated": [None, f.stale]
                    for f in report.fields
                },
            )
        if report.unreadable:
            raise CommandError(
                f"{report.unreadable} rows decrypt under no key in GATEWAY_ENCRYPTION_KEYS; "
                "restore the key they were written with, or set those secrets again"
            )
        if check and report.stale:
            raise CommandError(
                f"{report.stale} rows are still under an older key: run manage.py rotatekeys "
                "before removing it from GATEWAY_ENCRYPTION_KEYS"
            )

    def _summary(self, report: RotationReport, *, write: bool) -> None:
        verb = "re-encrypted" if write else "to re-encrypt"
        for f in report.fields:
            self.stdout.write(
                f"{f.label}: {f.scanned} rows, {f.stale} {verb}, {f.current} already under "
                f"the first key, {f.empty} empty, {f.unreadable} unreadable"
            )
        if not report.complete:
            self.stdout.write("stopped at --limit; run again to continue")
        elif write and not report.stale and not report.unreadable:
            self.stdout.write("nothing to do: every secret is under the first key")
        elif not write and not report.stale and not report.unreadable:
            self.stdout.write("every secret is under the first key: older keys can be removed")
