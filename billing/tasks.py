import os
import socket

from celery import shared_task
from django.conf import settings


@shared_task(name="billing.tasks.ingest_usage", ignore_result=False)
def ingest_usage() -> int:
    """Beat runs this every USAGE_INGEST_INTERVAL_S; overlapping runs are safe (consumer group)."""
    if not settings.REDIS_URL:
        from .writer import get_writer

        get_writer().flush()
        return 0
    from .ingest import ingest_usage_stream

    return ingest_usage_stream(consumer=f"{socket.gethostname()}-{os.getpid()}")
