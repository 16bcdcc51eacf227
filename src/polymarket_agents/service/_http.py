"""Health, readiness, metrics and status over HTTP, served by aiohttp.

=============  ====================================================================
``/healthz``   liveness: 200 while the loop turns and the service has not failed
``/readyz``    readiness: 200 when feeds are synced and the database writable, else 503
               with the reasons
``/metrics``   Prometheus text (OpenMetrics when asked), built at scrape time
``/status``    JSON: service counters, runtime stats, every task's metrics
``/books``     JSON: every monitored asset's local order book (``/books/{asset_id}``:
               one), as :meth:`~polymarket_agents.feed.OrderBook.to_json` shows it
=============  ====================================================================

Every handler reads snapshots; none waits on the agents.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from polymarket_agents.feed import OrderBook

from ._state import LOGGER_NAME, ServiceState

__all__ = ["HttpServer", "create_app"]

_logger = logging.getLogger(LOGGER_NAME)

_STATE: web.AppKey[ServiceState] = web.AppKey("state", ServiceState)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(data, indent=2, default=str) + "\n",
        content_type="application/json",
    )


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    alive, reasons = state.liveness()
    body = {"alive": alive, "phase": str(state.phase), "uptime": round(state.uptime, 3)}
    if not alive:
        body["reasons"] = reasons
    return _json(body, 200 if alive else 503)


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    ready, reasons = state.readiness()
    return _json({"ready": ready, "reasons": reasons}, 200 if ready else 503)


async def _status(request: web.Request) -> web.Response:
    return _json(request.app[_STATE].status())


def _books(state: ServiceState) -> list[OrderBook]:
    runtime = state.runtime
    return [] if runtime is None else list(runtime.books())


async def _all_books(request: web.Request) -> web.Response:
    return _json([book.to_json() for book in _books(request.app[_STATE])])


async def _one_book(request: web.Request) -> web.Response:
    asset_id = request.match_info["asset_id"]
    for book in _books(request.app[_STATE]):
        if book.asset_id == asset_id:
            return _json(book.to_json())
    return _json({"error": f"no book of asset {asset_id!r}"}, 404)


async def _index(request: web.Request) -> web.Response:
    return _json({"endpoints": ["/healthz", "/readyz", "/metrics", "/status", "/books"]})


@web.middleware
async def _count(request: web.Request, handler: Any) -> web.StreamResponse:
    request.app[_STATE].http_requests += 1
    response: web.StreamResponse = await handler(request)
    return response


def create_app(state: ServiceState, registry: CollectorRegistry) -> web.Application:
    """The aiohttp application serving ``state`` and ``registry``.

    Args:
        state: The service whose health, readiness and status are served.
        registry: What ``/metrics`` exposes.

    Returns:
        The application (run it with :class:`HttpServer`, or aiohttp's test client).
    """
    app = web.Application(middlewares=[_count])
    app[_STATE] = state
    app.router.add_get("/", _index)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/status", _status)
    app.router.add_get("/books", _all_books)
    app.router.add_get("/books/{asset_id}", _one_book)
    return app


class HttpServer:
    """Runs an aiohttp application on one address, without aiohttp's own signal handling.

    Args:
        app: The application.
        host: Address to bind.
        port: Port to bind; 0 picks a free one (see :attr:`url`).
        shutdown_timeout: Seconds open requests may take to finish at :meth:`stop`.
    """

    def __init__(
        self, app: web.Application, host: str, port: int, *, shutdown_timeout: float = 1.0
    ) -> None:
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=shutdown_timeout
        )
        self._host = host
        self._port = port
        self._bound: tuple[str, int] | None = None

    def __repr__(self) -> str:
        return f"<HttpServer {self.url if self._bound else 'not started'}>"

    @property
    def url(self) -> str:
        """``http://host:port`` of the bound socket.

        Raises:
            RuntimeError: If the server has not started.
        """
        if self._bound is None:
            raise RuntimeError("the HTTP server has not started")
        host, port = self._bound
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    async def start(self) -> str:
        """Bind and serve.

        Returns:
            The server's URL.

        Raises:
            OSError: If the address cannot be bound (in use, not local, no permission).
        """
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        try:
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        host, port = self._runner.addresses[0][:2]
        self._bound = (str(host), int(port))
        _logger.info("serving health and metrics on %s", self.url, extra={"url": self.url})
        return self.url

    async def stop(self) -> None:
        """Stop accepting, let open requests finish (within the shutdown timeout), close."""
        await self._runner.cleanup()
