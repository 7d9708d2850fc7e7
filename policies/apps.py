from django.apps import AppConfig


class PoliciesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "policies"
    verbose_name = "Policies and limits"

    def ready(self) -> None:
        from tenants.services import key_limits_writer_register

        from . import signals  # noqa: F401
        from .services import key_limits_set

        key_limits_writer_register(key_limits_set)
