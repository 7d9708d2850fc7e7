from django.core.management.base import BaseCommand, CommandError

from tenants.models import Team
from tenants.services import api_key_issue


class Command(BaseCommand):
    help = "Issue an API key for a team. Prints only the secret on stdout (shown this once)."

    def add_arguments(self, parser):
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--name", default="cli", help="a label for the key")
        parser.add_argument("--expires-in-days", type=int, default=None)

    def handle(self, *args, team: str, name: str, expires_in_days: int | None, **options):
        team_obj = Team.objects.filter(slug=team).first()
        if team_obj is None:
            raise CommandError(f"no team with slug {team!r}")
        try:
            issued = api_key_issue(team=team_obj, name=name, expires_in_days=expires_in_days)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        # Only the secret on stdout, so `KEY=$(manage.py createapikey ...)` just works.
        self.stdout.write(issued.secret)
        self.stderr.write(f"issued key {issued.api_key.prefix}… for team {team_obj.slug}")
