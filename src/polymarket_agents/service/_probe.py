"""``check_agents()`` with the service's own knowledge: where it listens, by its settings."""

from __future__ import annotations

import os
from collections.abc import Mapping

from polymarket_agents.core.async_utils import HEALTH_URL_ENV
from polymarket_agents.core.async_utils import check_agents as probe

from ._config import DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, ServiceConfig

__all__ = ["DEFAULT_HEALTH_URL", "check_agents", "health_url"]

DEFAULT_HEALTH_URL = f"http://{DEFAULT_HTTP_HOST}:{DEFAULT_HTTP_PORT}/healthz"
"""Where the service answers liveness with its default settings."""


def health_url(config: ServiceConfig) -> str:
    """Where a service with these settings answers liveness (over loopback if it listens
    on every address)."""
    host = config.http_host
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{config.http_port}/healthz"


async def check_agents(
    url: str | None = None,
    *,
    config: ServiceConfig | None = None,
    environ: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> bool:
    """Ask the running service whether it is alive: True when its ``/healthz`` answers 200.

    The service layer's side of the seed's ``check_agents()``: with no URL, it asks
    ``$POLYMARKET_AGENTS_HEALTH_URL``, else where a service with ``config`` (by default the
    settings the environment gives, as ``polymarket-agents run`` reads them) listens. The
    probe itself is :func:`polymarket_agents.core.async_utils.check_agents`.

    Args:
        url: The liveness URL, if known.
        config: The service's settings.
        environ: The environment to read them from; ``os.environ`` if None.
        timeout: Seconds for the whole exchange.

    Returns:
        True if the service answered 200; False otherwise.

    Raises:
        ConfigurationError: If the URL is not an ``http://`` URL, or the settings in the
            environment are invalid.
    """
    if url is None:
        environ = os.environ if environ is None else environ
        url = environ.get(HEALTH_URL_ENV)
        if not url:
            url = health_url(config or ServiceConfig.from_env(environ))
    return await probe(url, timeout=timeout)
