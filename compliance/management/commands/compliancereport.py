import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from compliance.report import compliance_report
from compliance.report_formats import report_csv, report_html, report_text

DEFAULT_DAYS = 30

_RENDER = {"csv": report_csv, "html": report_html, "text": report_text}


def _date(value: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Write the compliance report (providers used and by which teams, their agreements, "
        "teams' privacy modes and requirements, gaps) to stdout. The period is whole days in "
        "TIME_ZONE, both ends included; by default the last 30 days, today included."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=sorted(_RENDER), default="text")
        parser.add_argument("--since", type=str, help="first day, YYYY-MM-DD")
        parser.add_argument("--until", type=str, help="last day, YYYY-MM-DD (default: today)")

    def handle(self, *args, **options):
        until = _date(options["until"]) if options["until"] else timezone.localdate()
        if options["since"]:
            since = _date(options["since"])
        else:
            since = until - datetime.timedelta(days=DEFAULT_DAYS - 1)
        if since > until:
            raise CommandError(f"--since {since} is after --until {until}")
        report = compliance_report(since=since, until=until)
        # As is: a CSV or an HTML page must not gain a trailing newline per write.
        self.stdout.write(_RENDER[options["format"]](report), ending="")
