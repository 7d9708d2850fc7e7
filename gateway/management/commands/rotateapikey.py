from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from audit.commands import AuditedCommand
from tenants.models import ApiKey
from tenants.services import api_key_rotate


class Command(AuditedCommand):
    help = (
        "Rotate an API key: a new secret for the same key (team, owner, models, limits). The "
        "old secret keeps working for --grace-seconds (default 0: revoked now). Prints only "
        "the new secret on stdout (shown this once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("prefix", help="the key's shown prefix, e.g. sk-gw-AbC123")
        parser.add_argument("--grace-seconds", type=int, default=0)

    def handle(self, *args, prefix: str, grace_seconds: int, **options):
        matches = list(ApiKey.objects.active().filter(prefix=prefix)[:2])
        if len(matches) != 1:
            found = "no active key" if not matches else "more than one active key"
            raise CommandError(f"{found} with prefix {prefix!r}")
        try:
            rotated = api_key_rotate(api_key=matches[0], grace_seconds=grace_seconds)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(rotated.secret)
        self.stderr.write(
            f"rotated {prefix}… into {rotated.api_key.prefix}…; the old secret "
            + (f"works for {grace_seconds} s more" if grace_seconds else "is revoked")
        )
