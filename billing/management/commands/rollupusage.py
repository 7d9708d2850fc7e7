from datetime import date

from django.core.management.base import BaseCommand
from django.utils import timezone

from billing.rollups import ROLLUP, advance, rollup_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the daily usage rollups (DailyUsage) from the usage rows: every day that has "
        "usage or rollup rows, or those from --since on. Days whose usage rows were purged "
        "keep their rollups."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", type=date.fromisoformat, default=None, help="first UTC day (YYYY-MM-DD)"
        )

    def handle(self, *args, since: date | None, **options):
        started = timezone.now()
        written = rollup_rebuild(since=since)
        if since is None:
            # Everything stored was just rolled up: the beat task can start from here.
            advance(ROLLUP, started)
        self.stdout.write(f"{written} daily usage rows written")
