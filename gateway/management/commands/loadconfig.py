from pathlib import Path

from django.core.management.base import CommandError

from audit.commands import AuditedCommand
from gateway.config import ConfigError, config_load


class Command(AuditedCommand):
    help = "Create or update providers, models and teams from a YAML file (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)

    def handle(self, *args, file: Path, **options):
        try:
            text = file.read_text()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from exc
        try:
            report = config_load(text=text)
        except ConfigError as exc:
            if len(exc.errors) == 1:
                raise CommandError(f"{file}: {exc.errors[0]}; nothing was changed") from exc
            listed = "\n".join(f"  {error}" for error in exc.errors)
            raise CommandError(
                f"{file}: {len(exc.errors)} errors; nothing was changed:\n{listed}"
            ) from exc
        for line in report.lines:
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(report.summary()))
