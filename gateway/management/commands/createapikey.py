from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError
from django.db import transaction

from audit.commands import AuditedCommand
from tenants.models import Team
from tenants.services import api_key_issue, api_key_limits_set

# Policy field -> the option that sets it, for messages.
_OPTIONS = {"rpm": "--rpm", "tpm": "--tpm", "monthly_budget_usd": "--budget-usd"}


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation as exc:
        raise ValueError(value) from exc
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.000001")):
        raise ValueError(value)
    return amount


class Command(AuditedCommand):
    help = (
        "Issue an API key for a team. Prints only the secret on stdout (shown this once). "
        "--rpm, --tpm and --budget-usd give the key its own limits, within its team's."
    )

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--name", default="cli", help="a label for the key")
        parser.add_argument("--expires-in-days", type=int, default=None)
        parser.add_argument("--rpm", type=int, default=None, help="the key's requests per minute")
        parser.add_argument("--tpm", type=int, default=None, help="the key's tokens per minute")
        parser.add_argument(
            "--budget-usd",
            type=_usd,
            default=None,
            help="the key's monthly budget in USD (hard; at most 6 decimals)",
        )

    def handle(self, *args, team: str, name: str, expires_in_days: int | None, **options):
        team_obj = Team.objects.filter(slug=team).first()
        if team_obj is None:
            raise CommandError(f"no team with slug {team!r}")
        try:
            # One transaction: a key whose limits are refused is not issued either.
            with transaction.atomic():
                issued = api_key_issue(team=team_obj, name=name, expires_in_days=expires_in_days)
                api_key_limits_set(
                    api_key=issued.api_key,
                    rpm=options["rpm"],
                    tpm=options["tpm"],
                    budget_usd=options["budget_usd"],
                )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            problems = [
                f"{_OPTIONS.get(field, field)}: {' '.join(messages)}"
                for field, messages in exc.message_dict.items()
            ]
            raise CommandError("; ".join(problems)) from exc
        # Only the secret on stdout, so `KEY=$(manage.py createapikey ...)` just works.
        self.stdout.write(issued.secret)
        self.stderr.write(f"issued key {issued.api_key.prefix}… for team {team_obj.slug}")
