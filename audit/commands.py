"""Management commands that change things record their changes with source "cli".

manage.py sets that for every command it runs; this base class also covers a command called
in-process (call_command), which has no manage.py around it.
"""

from django.core.management.base import BaseCommand

from .context import audit_context


class AuditedCommand(BaseCommand):
    def execute(self, *args, **options):
        with audit_context(source="cli"):
            return super().execute(*args, **options)
