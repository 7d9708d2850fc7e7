"""The audit log as CSV, streamed: a year of rows must not be built in memory first."""

import csv
import json
from collections.abc import AsyncIterator, Iterable, Iterator

from django.http import StreamingHttpResponse
from django.utils import timezone

from .models import AuditEvent

COLUMNS = (
    "at",
    "actor",
    "actor_id",
    "source",
    "ip",
    "action",
    "object_type",
    "object_id",
    "object",
    "team_id",
    "changes",
    "request_id",
)
CHUNK = 2000


class _Echo:
    """csv.writer's file: hands each written line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    # A cell a spreadsheet would run as a formula (=, +, -, @) starts with a quote instead.
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


COLUMNS_ROW = list(COLUMNS)


def rows(events: Iterable[AuditEvent]) -> Iterator[list[str]]:
    yield COLUMNS_ROW
    for event in events:
        yield _row(event)


def _row(e: AuditEvent) -> list[str]:
    return [
        e.at.isoformat(),
        _cell(e.actor_repr),
        "" if e.actor_id is None else str(e.actor_id),
        e.source,
        e.ip or "",
        _cell(e.action),
        e.object_type,
        _cell(e.object_id),
        _cell(e.object_repr),
        "" if e.team_id is None else str(e.team_id),
        _cell(json.dumps(e.changes, sort_keys=True, ensure_ascii=False)),
        _cell(e.request_id),
    ]


async def _alines(queryset) -> AsyncIterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(COLUMNS_ROW)
    async for event in queryset.aiterator(chunk_size=CHUNK):
        yield writer.writerow(_row(event))


def csv_response(queryset, *, asynchronous: bool) -> StreamingHttpResponse:
    """Rows are fetched from a server-side cursor in chunks and written as they come.

    Under ASGI the response must be an async iterator: Django reads a sync one to the end
    (into a list) before sending a byte. Under WSGI (and the test client) a sync one streams."""
    if asynchronous:
        lines = _alines(queryset)
    else:
        writer = csv.writer(_Echo())
        lines = (writer.writerow(row) for row in rows(queryset.iterator(chunk_size=CHUNK)))
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response
