"""Limit/offset pages: ?limit= (default 50, at most 200) and ?offset=. The lists the API pages
(teams, members, keys, tokens, agreements, deployments, usage groups) are small per tenant, so
the count query is cheap."""

import functools

from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Pagination(LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT


@functools.cache
def page_of(item: type[serializers.Serializer]) -> type[serializers.Serializer]:
    """The schema of one page of `item`s, for the views' extend_schema (drf-spectacular wraps
    lists in pages itself only for generic views). Cached: one class, one schema component."""
    return type(
        f"Paginated{item.__name__}List",
        (serializers.Serializer,),
        {
            "count": serializers.IntegerField(help_text="Items in every page."),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )
