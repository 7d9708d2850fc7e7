"""Hot shared state behind one small interface: Redis in production, process memory embedded.

Everything above this package (auth cache, usage events; rate limits and budgets next) is the
same code in both modes.
"""

from functools import cache

from django.conf import settings

from .base import StateStore, StateUnavailable

__all__ = ["StateStore", "StateUnavailable", "get_state"]


@cache
def get_state() -> StateStore:
    if settings.REDIS_URL:
        from .redis import RedisStateStore

        return RedisStateStore(settings.REDIS_URL)
    from .memory import MemoryStateStore

    return MemoryStateStore()
