"""Limit/offset pages: ?limit= (default 50, at most 200) and ?offset=. The lists the API pages
(teams, members, keys, tokens, agreements, deployments, usage groups) are small per tenant, so
the count query is cheap."""

from rest_framework.pagination import LimitOffsetPagination

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Pagination(LimitOffsetPagination):
    default_limit = DEFAULT_LIMIT
    max_limit = MAX_LIMIT
