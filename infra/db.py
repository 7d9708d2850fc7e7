"""Database access from async code on the proxy path.

The /v1 handler (gateway/proxy/handler.py) does not send Django's request_started and
request_finished signals, whose receivers normally close connections that are broken or past
CONN_MAX_AGE. The proxy only reaches the database on cache misses, so it does that hygiene
around each such call instead: a Postgres restart costs one failed lookup (a 503), not a
process stuck with a dead connection.
"""

from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

T = TypeVar("T")


def _close_old_connections() -> None:
    # Django's close_old_connections(), except that a connection inside a transaction is left
    # alone (closing it would break the transaction; tests run inside one).
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close_if_unusable_or_obsolete()


def _with_fresh_connection(fn: Callable[..., T], kwargs: dict) -> T:
    _close_old_connections()
    try:
        return fn(**kwargs)
    finally:
        _close_old_connections()


async def db_call(fn: Callable[..., T], /, **kwargs) -> T:
    """Run a sync ORM function on asgiref's thread-sensitive executor, with connection hygiene."""
    return await sync_to_async(_with_fresh_connection)(fn, kwargs)
