from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        # By label, once every app's models are loaded: audit imports none of them.
        from .capture import connect

        connect()
