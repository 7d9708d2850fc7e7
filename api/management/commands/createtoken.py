from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api.models import SCOPES
from api.services import pat_create


class Command(BaseCommand):
    help = (
        "Create a personal access token for the management API. Prints only the token on "
        "stdout (shown this once): TOKEN=$(manage.py createtoken --user alice --scopes read)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--name", default="cli", help="a label for the token")
        parser.add_argument(
            "--scopes",
            default="read",
            help=f"comma-separated, any of {', '.join(SCOPES)} (default: read)",
        )
        parser.add_argument(
            "--expires-in-days", type=int, default=90, help="required life (default 90)"
        )

    def handle(self, *args, user: str, name: str, scopes: str, expires_in_days: int, **options):
        found = get_user_model().objects.filter(username=user, is_active=True).first()
        if found is None:
            raise CommandError(f"no active user {user!r}")
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            issued = pat_create(
                user=found, name=name, scopes=wanted, expires_in_days=expires_in_days
            )
        except ValidationError as exc:
            problems = [f"{f}: {' '.join(m)}" for f, m in exc.message_dict.items()]
            raise CommandError("; ".join(problems)) from exc
        self.stdout.write(issued.secret)
        self.stderr.write(
            f"created token {issued.token.prefix}… for {found.get_username()} "
            f"({', '.join(issued.token.scopes)}), expires {issued.token.expires_at:%Y-%m-%d}"
        )
