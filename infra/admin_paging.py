"""A paginator for the admin's big tables (the request log, rollups, health checks, audit
events) that never runs COUNT(*) over them.

Postgres counts by reading every row, so an exact count of a log with millions of rows costs
seconds on every list page. The planner's own estimate (EXPLAIN, which reads the statistics,
not the table) is good enough to draw page links. Small results are counted exactly, but by
fetching at most EXACT_UP_TO primary keys, which is bounded whatever the table's size.
"""

import json

from django.core.paginator import Paginator
from django.db import DatabaseError, connections
from django.utils.functional import cached_property

EXACT_UP_TO = 1000  # below this many rows the paginator knows the exact number


def planner_rows(queryset) -> int | None:
    """The planner's estimate of the rows the query returns; None where there is none."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    try:
        plan = json.loads(queryset.order_by().explain(format="json"))
    except (DatabaseError, ValueError):
        return None
    # Django joins the rows of EXPLAIN's JSON output: one object, or a list holding it.
    if isinstance(plan, list):
        plan = plan[0]
    return int(plan["Plan"]["Plan Rows"])


class EstimatedCountPaginator(Paginator):
    """`count` is exact up to EXACT_UP_TO rows, the planner's estimate above (never less than
    what was seen). The admin shows it as the number of results; pages past the true end are
    empty, never an error."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not hasattr(queryset, "query"):
            return len(queryset)
        seen = len(queryset.order_by().values_list("pk", flat=True)[: EXACT_UP_TO + 1])
        if seen <= EXACT_UP_TO:
            return seen
        return max(planner_rows(queryset) or 0, seen)
