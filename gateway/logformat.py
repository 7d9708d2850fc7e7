"""Log formatters: one JSON object per line in production, readable lines at a terminal.

settings.LOGGING picks one by LOG_FORMAT. Both show the fields a call site passes in `extra=`
(request_id, status, client, ...): JSON as top-level keys a log pipeline can index, the console
as `key=value` after the message. Plain stdlib logging, so Django's, Celery's and uvicorn's loggers
come out in the same format as ours.
"""

import json
import logging
from datetime import UTC, datetime

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=`. Except uvicorn's
# `color_message`: the message again, with terminal colour codes.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _extras(record: logging.LogRecord) -> dict:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """`{"timestamp", "level", "logger", "message", <extras>, "exception"?}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)  # an extra cannot hide the core fields
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:
            # orjson refuses a few values str() cannot save (integers over 64 bits); a log line
            # is worth the slower encoder.
            return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """`2025-01-01 12:00:00,000 INFO logger message key=value ...`, for people."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{key}={value}" for key, value in extras.items())
        return line
