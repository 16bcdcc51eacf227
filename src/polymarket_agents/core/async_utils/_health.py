"""``check_agents()``: is a running service healthy? (The seed's Docker health check.)"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit

__all__ = ["DEFAULT_HEALTH_URL", "HEALTH_URL_ENV", "check_agents"]

HEALTH_URL_ENV = "POLYMARKET_AGENTS_HEALTH_URL"
"""Environment variable naming the liveness URL that :func:`check_agents` asks."""

DEFAULT_HEALTH_URL = "http://127.0.0.1:8080/healthz"
"""Where the service answers liveness by default."""


async def check_agents(url: str | None = None, *, timeout: float = 5.0) -> bool:
    """Ask a running service whether it is alive: True when its health URL answers 200.

    The seed's Docker health check runs ``asyncio.run(check_agents())``; this is that
    function, written with the standard library only (one HTTP/1.1 GET over a plain TCP
    connection), so importing it costs nothing.

    Args:
        url: The liveness URL; ``$POLYMARKET_AGENTS_HEALTH_URL``, else
            ``http://127.0.0.1:8080/healthz``, when None.
        timeout: Seconds for the whole exchange.

    Returns:
        True if the service answered ``200``; False if it answered anything else, refused
        the connection, or did not answer in time.

    Raises:
        ValueError: If ``url`` is not an ``http://`` URL.
    """
    target = url or os.environ.get(HEALTH_URL_ENV) or DEFAULT_HEALTH_URL
    parts = urlsplit(target)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"health URL must be http://host[:port]/path, not {target!r}")
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
