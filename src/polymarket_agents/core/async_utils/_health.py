"""Health: ``check_agents()`` asks a running service whether it is alive (the seed's Docker
health check); :class:`Readiness` gathers why a service is not ready from its parts."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from ._errors import ConfigurationError
from ._robust import LOGGER_NAME

__all__ = ["HEALTH_URL_ENV", "Readiness", "ReadinessCheck", "check_agents"]

_logger = logging.getLogger(LOGGER_NAME)

HEALTH_URL_ENV = "POLYMARKET_AGENTS_HEALTH_URL"
"""Environment variable naming the liveness URL that :func:`check_agents` asks."""


async def check_agents(url: str | None = None, *, timeout: float = 5.0) -> bool:
    """Ask a running service whether it is alive: True when its health URL answers 200.

    The seed's Docker health check runs ``asyncio.run(check_agents())``; this is that
    function, written with the standard library only (one HTTP/1.1 GET over a plain TCP
    connection), so importing it costs nothing. It knows no service: the URL is given or
    comes from ``$POLYMARKET_AGENTS_HEALTH_URL``. The service layer's
    ``polymarket_agents.service.check_agents`` (and ``polymarket-agents health``) also
    knows where the service listens by default and by its settings.

    Args:
        url: The liveness URL; ``$POLYMARKET_AGENTS_HEALTH_URL`` when None.
        timeout: Seconds for the whole exchange.

    Returns:
        True if the service answered ``200``; False if it answered anything else, refused
        the connection, or did not answer in time.

    Raises:
        ConfigurationError: If there is no URL (neither given nor in the environment), or
            it is not an ``http://`` URL (a ``ValueError``).
    """
    target = url or os.environ.get(HEALTH_URL_ENV)
    if not target:
        raise ConfigurationError(
            f"no health URL: pass one or set ${HEALTH_URL_ENV} "
            f"(polymarket_agents.service.check_agents() knows the service's own)"
        )
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        raise ConfigurationError(f"health URL must be http://host[:port]/path, not {target!r}")
    host, port = parts.hostname, parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode(
                    "ascii"
                )
            )
            await writer.drain()
            status_line = await reader.readline()
    except (OSError, TimeoutError):
        return False
    finally:
        if writer is not None:
            writer.close()
    fields = status_line.split()
    return len(fields) >= 2 and fields[1] == b"200"


ReadinessCheck = Callable[[], str | Iterable[str] | None]
"""A readiness check: returns why its part is not ready (a reason, several, or None or an
empty iterable when all is well). It must be quick and must not block: it runs at every
readiness query."""


class Readiness:
    """Why a service is not ready, gathered from every part that has a say.

    A part contributes in one of two ways:

    * a check (:meth:`add_check`): a callable asked at every query, for conditions the part
      can read off its own state (a queue's depth, the age of the last message);
    * a held reason (:meth:`set_reason` ... :meth:`clear_reason`), for conditions found at one
      moment (a database file that vanished), held until the part clears it.

    ::

        readiness = Readiness()
        readiness.add_check("queue", lambda: "queue nearly full" if q.qsize() > 900 else None)
        readiness.set_reason("database", "database file data/agents.sqlite vanished")
        readiness.reasons()  # ['queue nearly full', 'database file data/agents.sqlite vanished']
        readiness.clear_reason("database")

    A check that raises is itself a reason (a probe must answer). Held reasons may be set and
    cleared from any thread; checks run in the thread that asks, in the order they were added,
    before the held reasons.
    """

    __slots__ = ("_checks", "_lock", "_reasons")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._checks: dict[str, ReadinessCheck] = {}
        self._reasons: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<Readiness checks={list(self._checks)} held={list(self._reasons)}>"

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        """Ask ``check`` at every query from now on.

        Args:
            name: Names the check in logs and for :meth:`remove_check`.
            check: The check (see :data:`ReadinessCheck`).

        Raises:
            ValueError: If a check of that name is already added.
        """
        with self._lock:
            if name in self._checks:
                raise ValueError(f"readiness check {name!r} is already added; remove it first")
            self._checks[name] = check

    def remove_check(self, name: str) -> None:
        """Stop asking the check ``name``; nothing happens if there is none."""
        with self._lock:
            self._checks.pop(name, None)

    def set_reason(self, name: str, reason: str) -> None:
        """Hold ``reason`` (replacing any held under ``name``) until :meth:`clear_reason`.

        Args:
            name: Who holds it: the part that will clear it.
            reason: Why the service is not ready, in words a reader of ``/readyz`` follows.
        """
        with self._lock:
            self._reasons[name] = reason

    def clear_reason(self, name: str) -> None:
        """Drop the reason held under ``name``; nothing happens if there is none."""
        with self._lock:
            self._reasons.pop(name, None)

    def reasons(self) -> list[str]:
        """Every check's reasons, then the held ones; empty when the service is ready."""
        with self._lock:
            checks = list(self._checks.items())
            held = list(self._reasons.values())
        found: list[str] = []
        for name, check in checks:
            try:
                result = check()
            except Exception as exc:
                _logger.warning("readiness check %s failed: %s", name, exc, exc_info=exc)
                found.append(f"{name}: readiness check failed: {type(exc).__name__}: {exc}")
                continue
            if result is None:
                continue
            if isinstance(result, str):
                found.append(result)
            else:
                found.extend(result)
        found.extend(held)
        return found

    @property
    def ready(self) -> bool:
        """Whether no check and no held reason says otherwise."""
        return not self.reasons()
