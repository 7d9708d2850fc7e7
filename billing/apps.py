from django.apps import AppConfig
from django.conf import settings


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Usage and billing"

    def ready(self) -> None:
        # The embedded default (no Redis) stores usage through a writer thread in this process;
        # the in-process state store hands events to it without importing billing.
        if not settings.REDIS_URL:
            from infra.state.memory import set_usage_sink

            from .writer import submit_event

            set_usage_sink(submit_event)
