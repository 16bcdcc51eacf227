"""Log formats: plain text lines and JSON lines, both carrying the records' ``extra`` fields.

Formatters only: attaching them to handlers is the command line's job, the one place that
configures logging.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

__all__ = ["JsonFormatter", "TextFormatter"]

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


_PLAIN = (
    type(None),
    bool,
    int,
    float,
    str,
    Decimal,
    dt.datetime,
    list,
    tuple,
    dict,
    set,
    frozenset,
)


def _extras(record: logging.LogRecord) -> Iterator[tuple[str, Any]]:
    """The record's ``extra`` fields that are data; objects (a library's connection passed
    for its own handlers, say) are left out rather than logged as their repr."""
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_") and isinstance(value, _PLAIN):
            yield key, value


def _plain(value: Any) -> Any:
    """A JSON-friendly form of an ``extra`` value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value)


class TextFormatter(logging.Formatter):
    """``2025-01-01 12:00:00,000 INFO    polymarket_agents.service: message key=value ...``.

    The record's ``extra`` fields follow the message as ``key=value`` pairs, so plain logs
    stay greppable and structured.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as one line (plus a traceback, if any), extras appended."""
        text = super().format(record)
        pairs = " ".join(f"{key}={_plain(value)}" for key, value in _extras(record))
        if not pairs:
            return text
        head, newline, tail = text.partition("\n")
        return f"{head} {pairs}{newline}{tail}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the ``extra`` fields, and ``exc_info`` as text when there is one.

    For containers, whose log collectors parse each line on its own.
    """

    def format(self, record: logging.LogRecord) -> str:
        """Format the record as one line of JSON."""
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record):
            entry.setdefault(key, _plain(value))
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
