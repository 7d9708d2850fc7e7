from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and keys"

    def ready(self) -> None:
        from . import signals  # noqa: F401
