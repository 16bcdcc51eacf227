"""What the service shows of its settings: no credentials, no absolute database path.

``/status``, ``/readyz``, start-up errors, the summary and (through the command line's log
formatter) every log line pass through a :class:`Redactor` built from the settings.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from polymarket_agents.feed import redact_text
from polymarket_agents.storage import redact_url

from ._config import ServiceConfig

__all__ = ["RedactingFormatter", "Redactor", "shown_db_path"]


def shown_db_path(path: Path | str) -> str:
    """The database path as the service shows it: as configured when relative, only the
    file name when absolute (where the file lives on this machine is nobody's business);
    a PostgreSQL URL without its password."""
    if isinstance(path, str):
        return redact_url(path)
    return path.name if path.is_absolute() else str(path)


class Redactor:
    """Hides credentials of URLs and the database's absolute path in text about to be shown.

    ::

        redact = Redactor.for_config(config)
        redact("cannot connect to wss://bot:s3cret@host/ws")  # 'cannot connect to wss://***@host/ws'

    Args:
        urls: URLs whose credentials must not show (None entries are skipped).
        db_path: The database file; its absolute form is shown as :func:`shown_db_path`.
    """

    __slots__ = ("_paths", "_urls")

    def __init__(self, *, urls: Sequence[str | None] = (), db_path: Path | None = None) -> None:
        self._urls = tuple(url for url in urls if url and ("@" in url or "?" in url))
        paths: dict[str, str] = {}
        if db_path is not None:
            shown = shown_db_path(db_path)
            for form in {os.path.abspath(db_path), str(db_path)}:
                if os.path.isabs(form) and form != shown:
                    paths[form] = shown
        self._paths = paths

    @classmethod
    def for_config(cls, config: ServiceConfig, *, paths: bool = True) -> Redactor:
        """The redactor of a run's settings: its feed and listing URLs, and its database
        path unless ``paths`` is False (logs are the operator's and may name it)."""
        database = config.db_path
        if isinstance(database, str):  # a PostgreSQL URL: its password must not show
            return cls(urls=(config.feed_url, config.gamma_url, database))
        return cls(urls=(config.feed_url, config.gamma_url), db_path=database if paths else None)

    def __repr__(self) -> str:
        return f"<Redactor urls={len(self._urls)} paths={len(self._paths)}>"

    def __bool__(self) -> bool:
        """Whether there is anything to hide at all."""
        return bool(self._urls or self._paths)

    def __call__(self, text: str) -> str:
        """``text`` with the credentials and the absolute database path hidden."""
        if self._urls:
            text = redact_text(text, self._urls)
        for path, shown in self._paths.items():
            if path in text:
                text = text.replace(path, shown)
        return text

    def deep(self, value: Any) -> Any:
        """A copy of a JSON-like value (dicts, lists, strings ...) with every string redacted."""
        if not self:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {k: self.deep(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.deep(v) for v in value]
        return value


class RedactingFormatter(logging.Formatter):
    """Formats with another formatter, then redacts the whole text (message, extras,
    traceback): the last line of defence for a credential quoted in an exception.

    Args:
        inner: The formatter that does the formatting.
        redact: Applied to its output.
    """

    def __init__(self, inner: logging.Formatter, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._inner = inner
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        """The inner formatter's text of ``record``, redacted."""
        return self._redact(self._inner.format(record))
