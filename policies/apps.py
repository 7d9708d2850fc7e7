from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "policies"
    verbose_name = "Policies and limits"

    def ready(self) -> None:
        from . import signals  # noqa: F401
