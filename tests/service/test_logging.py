"""Log formats: plain lines and JSON lines, both carrying the records' extra fields."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from decimal import Decimal

from polymarket_agents.service import JsonFormatter, TextFormatter


def _record(msg: str, *args: object, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ConnectionError("feed dropped")
        except ConnectionError:
            exc_info = sys.exc_info()
    record = logging.LogRecord(
        "polymarket_agents.supervisor", logging.WARNING, __file__, 1, msg, args, exc_info
    )
    record.__dict__.update(extra)
    return record


def test_json_lines_have_the_fields_and_extras() -> None:
    """Each record is one JSON object: time, level, logger, message and its extra fields."""
    line = JsonFormatter().format(
        _record("task %r restarting in %.1f s", "feed", 5.0, task="feed", attempt=2)
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "polymarket_agents.supervisor"
    assert entry["message"] == "task 'feed' restarting in 5.0 s"
    assert (entry["task"], entry["attempt"]) == ("feed", 2)
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None


def test_json_lines_carry_tracebacks_and_odd_values() -> None:
    """A traceback becomes exc_info text; dates and decimals become text; objects are left out."""
    line = JsonFormatter().format(
        _record("failed", exc=True, when=datetime(2025, 1, 2), pnl=Decimal("1.5"), obj=object())
    )
    entry = json.loads(line)
    assert "ConnectionError: feed dropped" in entry["exc_info"]
    assert entry["when"] == "2025-01-02T00:00:00"
    assert entry["pnl"] == "1.5"
    assert "obj" not in entry


def test_text_lines_append_extras_as_pairs() -> None:
    """Plain lines read as the message followed by key=value pairs, traceback below."""
    text = TextFormatter().format(_record("restarting", exc=True, task="feed", tasks=["a", "b"]))
    first, *rest = text.splitlines()
    assert first.endswith(
        "WARNING polymarket_agents.supervisor: restarting task=feed tasks=['a', 'b']"
    )
    assert any("ConnectionError: feed dropped" in line for line in rest)
    assert TextFormatter().format(_record("plain")).endswith("polymarket_agents.supervisor: plain")
