from django.core.management.base import BaseCommand

from compliance.roles import roles_create


class Command(BaseCommand):
    help = (
        "Create the admin's role groups (platform admin, compliance officer, auditor) or bring "
        "their permissions up to date. Safe to run again; run it after migrate."
    )

    def handle(self, *args, **options):
        for name, (created, count) in roles_create().items():
            verb = "created" if created else "updated"
            self.stdout.write(f"{name}: {verb}, {count} permissions")
        self.stdout.write("Members need is_staff to sign in to the admin.")
