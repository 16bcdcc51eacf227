"""Health, readiness, metrics and status over HTTP, served by aiohttp, isolated from ingestion.

=============  ====================================================================
``/healthz``   liveness: 200 while the loop turns and the service has not failed
``/readyz``    readiness: 200 when feeds are synced and the database writable, else 503
               with the reasons
``/metrics``   Prometheus text (OpenMetrics when asked)
``/status``    JSON: service counters, runtime stats, every task's metrics
``/books``     JSON: every monitored asset's local order book (``/books/{asset_id}``:
               one), as :meth:`~polymarket_agents.feed.OrderBook.to_json` shows it
``/``          the live dashboard (see :mod:`._dashboard`), when the service has one
=============  ====================================================================

No client load may slow the agents. By default the server runs on a thread and event loop
of its own (:class:`HttpServer`), and is kept to a small, fixed share of the process:

* no request takes a turn of the agents' loop: handlers run on the server's loop and reach
  the service's state only through :func:`snapshot`, which collects on the agents' loop
  (``/healthz`` reads the heartbeat directly, so it answers even while that loop is stuck);
* ``/metrics``, ``/status`` and ``/books`` are collected at most once per
  :attr:`HttpLimits.snapshot_age` (and only when asked), ``/readyz`` at most four times a
  second: a thousand scrapes cost one collection and share its bytes;
* requests are paced: at most :attr:`HttpLimits.request_rate` per second for ``/metrics``,
  ``/status`` and any other path, :attr:`HttpLimits.probe_rate` for the probes
  (``/healthz``, ``/readyz``), each in arrival order, so a flood waits its turn (the
  server's thread still needs the GIL for every request it parses), and a probe never
  queues behind a scrape;
* at most :attr:`HttpLimits.max_connections` connections are open; one more is answered
  503 and closed at once, so descriptors stay for the feeds and the database;
* a connection that sends no complete request within :attr:`HttpLimits.idle_timeout`
  (idle keep-alive, or a request trickled in) is closed;
* :meth:`HttpServer.stop` runs first at shutdown: the drain has the process to itself.

Why a thread (``bench/service.py``, 200 keep-alive clients hammering ``/metrics`` and
``/status``, paced at 200/s then): with the same snapshots, pacing and limits on the
agents' own loop, stored
rows/s held as well (0.96x and 0.99x in two runs, against 0.93x and 0.96x on the thread:
both within the noise), but a ``/healthz`` probe waited its turn behind the agents'
callbacks: p99 63 to 96 ms, against 23 to 25 ms from the thread; the thread costs about one
point of a core more. ``thread=False`` serves on the caller's loop still.

To add a route: ``app.router.add_get(path, handler)`` on :func:`create_app`'s application;
it is paced like ``/status``. The handler runs on the server's loop: it reads the service
through :func:`snapshot` (collected on the agents' loop, cached, shared by every request).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import json
import logging
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from polymarket_agents.core.async_utils import ConfigurationError

from ._dashboard import Dashboard, add_dashboard
from ._state import LOGGER_NAME, ServiceState

__all__ = ["PROBE_PATHS", "HttpLimits", "HttpServer", "Snapshots", "create_app", "snapshot"]

_logger = logging.getLogger(LOGGER_NAME)

PROBE_PATHS = frozenset({"/healthz", "/readyz"})
"""Paths paced by :attr:`HttpLimits.probe_rate` rather than :attr:`HttpLimits.request_rate`."""


def _default_max_connections() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 256 if soft == resource.RLIM_INFINITY else max(8, min(256, soft // 4))


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits:
    """How much of the service the HTTP side may take.

    Attributes:
        max_connections: Open connections at most; one more is answered 503 and closed.
            By default a quarter of the process's descriptor limit, at most 256: the rest
            stay for the feeds, the database and the simulator.
        idle_timeout: Seconds a connection may go without sending a complete request (a
            keep-alive between requests, or a request sent slowly) before it is closed.
        request_rate: Requests per second served at most on ``/metrics``, ``/status`` and
            any path but the probes; the rest wait their turn.
        probe_rate: Requests per second served at most on ``/healthz`` and ``/readyz``.
        snapshot_age: Seconds a rendering of ``/metrics`` or ``/status`` is served before
            it is rendered again.
        collect_timeout: Seconds a request waits for the service's loop to collect a
            snapshot; past it, the last one is served (``/readyz``: 503, the loop is stuck).
        shutdown_timeout: Seconds requests in progress get to finish at :meth:`HttpServer.stop`.

    Raises:
        ConfigurationError: On a number out of range.
    """

    max_connections: int = field(default_factory=lambda: _default_max_connections())
    idle_timeout: float = 5.0
    request_rate: float = 100.0
    probe_rate: float = 100.0
    snapshot_age: float = 1.0
    collect_timeout: float = 2.0
    shutdown_timeout: float = 0.25

    def __post_init__(self) -> None:
        positive = ("max_connections", "idle_timeout", "request_rate", "probe_rate")
        for name in (*positive, "collect_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be > 0, not {getattr(self, name)!r}")
        for name in ("snapshot_age", "shutdown_timeout"):
            if not getattr(self, name) >= 0:
                raise ConfigurationError(f"{name} must be >= 0, not {getattr(self, name)!r}")


class Snapshots:
    """Renderings kept for a while: each key is rendered at most once per :attr:`max_age`,
    however many requests ask, and requests that ask while it renders share the rendering.

    Rendering has two steps: ``collect()`` reads the service's state, on the event loop that
    owns it (:attr:`owner`; handed over with ``call_soon_threadsafe`` when the server runs on
    a thread of its own), and ``encode(collected)`` turns it into what is served, where the
    request is handled.

    Args:
        max_age: Seconds a rendering is served before it is rendered again.
        wait: Seconds a request waits for the owner loop to collect (a stuck loop); then the
            last rendering is served, or :class:`TimeoutError` raised if there is none.
    """

    __slots__ = ("_entries", "_inflight", "max_age", "owner", "wait")

    def __init__(self, max_age: float, *, wait: float = 2.0) -> None:
        self.max_age = max_age
        self.wait = wait
        self.owner: asyncio.AbstractEventLoop | None = None
        """The loop that owns the service's state; None: the loop asking."""
        self._entries: dict[Hashable, tuple[float, Any]] = {}
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    def __repr__(self) -> str:
        return f"<Snapshots max_age={self.max_age} keys={len(self._entries)}>"

    async def get(
        self,
        key: Hashable,
        collect: Callable[[], Any],
        encode: Callable[[Any], Any] | None = None,
        *,
        max_age: float | None = None,
    ) -> Any:
        """The rendering under ``key``, rendered anew if older than ``max_age`` (default
        :attr:`max_age`).

        Raises:
            TimeoutError: If the owner loop did not collect within :attr:`wait` and there
                is no earlier rendering to serve.
            Exception: Whatever ``collect`` or ``encode`` raised (nothing is kept).
        """
        entry = self._entries.get(key)
        limit = self.max_age if max_age is None else max_age
        if entry is not None and time.monotonic() - entry[0] < limit:
            return entry[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._render(key, collect, encode))
            self._inflight[key] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(key, None))
        try:
            return await asyncio.shield(pending)
        except TimeoutError:
            if entry is None:
                raise
            return entry[1]

    async def _render(
        self, key: Hashable, collect: Callable[[], Any], encode: Callable[[Any], Any] | None
    ) -> Any:
        owner = self.owner
        started = time.monotonic()
        if owner is None or owner is asyncio.get_running_loop():
            collected = collect()
        else:
            done: concurrent.futures.Future[Any] = concurrent.futures.Future()

            def run() -> None:
                if done.set_running_or_notify_cancel():
                    try:
                        done.set_result(collect())
                    except BaseException as exc:
                        done.set_exception(exc)

            owner.call_soon_threadsafe(run)
            try:
                async with asyncio.timeout(self.wait):
                    collected = await asyncio.wrap_future(done)
            finally:
                done.cancel()
        value = collected if encode is None else encode(collected)
        self._entries[key] = (started, value)
        return value


class _Pace:
    """Spaces admissions ``1 / rate`` seconds apart, in arrival order."""

    __slots__ = ("_interval", "_next")

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0

    async def turn(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self._interval
        if slot > now:
            await asyncio.sleep(slot - now)


_STATE: web.AppKey[ServiceState] = web.AppKey("state", ServiceState)
_SNAPSHOTS: web.AppKey[Snapshots] = web.AppKey("snapshots", Snapshots)
_REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
_PACES: web.AppKey[tuple[_Pace, _Pace]] = web.AppKey("paces", tuple)
_READY_AGE = 0.25  # seconds a readiness answer is served again: "within seconds" with margin


async def snapshot(
    request: web.Request,
    key: Hashable,
    collect: Callable[[], Any],
    encode: Callable[[Any], Any] | None = None,
    *,
    max_age: float | None = None,
) -> Any:
    """What a handler serves from the application's :class:`Snapshots`: ``collect()`` runs
    on the loop that owns the service's state at most once per ``max_age`` for ``key``
    (:attr:`HttpLimits.snapshot_age` by default), ``encode`` where the request is handled.

    Raises:
        TimeoutError: If the service's loop does not answer and nothing was rendered yet.
    """
    return await request.app[_SNAPSHOTS].get(key, collect, encode, max_age=max_age)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(data), status=status, content_type="application/json")


def _dumps(data: Any) -> bytes:
    return (json.dumps(data, indent=2, default=str) + "\n").encode()


async def _healthz(request: web.Request) -> web.Response:
    # Read where the request is: liveness is about the service's loop, which may be stuck.
    state = request.app[_STATE]
    alive, reasons = state.liveness()
    body = {"alive": alive, "phase": str(state.phase), "uptime": round(state.uptime, 3)}
    if not alive:
        body["reasons"] = reasons
    return _json(body, 200 if alive else 503)


async def _readyz(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    try:
        ready, reasons = await snapshot(request, "readiness", state.readiness, max_age=_READY_AGE)
    except TimeoutError:
        ready, reasons = False, ["the service's event loop does not answer"]
    return _json({"ready": ready, "reasons": reasons}, 200 if ready else 503)


async def _status(request: web.Request) -> web.Response:
    try:
        body = await snapshot(request, "status", request.app[_STATE].status, _dumps)
    except TimeoutError:
        return _json({"error": "the service's event loop does not answer"}, 503)
    return web.Response(body=body, content_type="application/json")


def _books(state: ServiceState) -> list[Any]:
    runtime = state.runtime
    return [] if runtime is None else [book.to_json() for book in runtime.books()]


async def _all_books(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    try:
        body = await snapshot(request, "books", lambda: _books(state), _dumps)
    except TimeoutError:
        return _json({"error": "the service's event loop does not answer"}, 503)
    return web.Response(body=body, content_type="application/json")


async def _one_book(request: web.Request) -> web.Response:
    state = request.app[_STATE]
    asset_id = request.match_info["asset_id"]
    try:
        books = await snapshot(
            request, "books by asset", lambda: {b["asset_id"]: b for b in _books(state)}
        )
    except TimeoutError:
        return _json({"error": "the service's event loop does not answer"}, 503)
    if asset_id not in books:
        return _json({"error": f"no book of asset {asset_id!r}"}, 404)
    return _json(books[asset_id])


class _Collected:
    """Metric families collected once, for an encoder that asks a registry for them."""

    __slots__ = ("_families",)

    def __init__(self, families: Iterable[Any]) -> None:
        self._families = list(families)

    def collect(self) -> list[Any]:
        return self._families


async def _metrics(request: web.Request) -> web.Response:
    encoder, content_type = choose_encoder(",".join(request.headers.getall(hdrs.ACCEPT, [])))
    registry = request.app[_REGISTRY]
    packed = "gzip" in request.headers.get(hdrs.ACCEPT_ENCODING, "")

    def encode(families: _Collected) -> bytes:
        output = encoder(families)
        return gzip.compress(output, compresslevel=1) if packed else output

    try:
        body = await snapshot(
            request,
            ("metrics", content_type, packed),
            lambda: _Collected(registry.collect()),
            encode,
        )
    except TimeoutError:
        return _json({"error": "the service's event loop does not answer"}, 503)
    response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
    if packed:
        response.headers[hdrs.CONTENT_ENCODING] = "gzip"
    return response


async def _index(request: web.Request) -> web.Response:
    return _json({"endpoints": sorted({r.canonical for r in request.app.router.resources()})})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _pace(request: web.Request, handler: Handler) -> web.StreamResponse:
    request.app[_STATE].http_requests += 1
    probes, others = request.app[_PACES]
    await (probes if request.path in PROBE_PATHS else others).turn()
    return await handler(request)


def create_app(
    state: ServiceState,
    registry: CollectorRegistry,
    *,
    limits: HttpLimits | None = None,
    dashboard: Dashboard | None = None,
) -> web.Application:
    """The aiohttp application serving ``state`` and ``registry``, paced by ``limits``.

    Args:
        state: The service whose health, readiness and status are served.
        registry: What ``/metrics`` exposes.
        limits: Pacing and snapshot age (the defaults of :class:`HttpLimits` if None).
        dashboard: The live dashboard served at ``/``; without one, ``/`` lists the
            endpoints as JSON.

    Returns:
        The application (run it with :class:`HttpServer`, or aiohttp's test client).
    """
    limits = limits or HttpLimits()
    app = web.Application(middlewares=[_pace])
    app[_STATE] = state
    app[_REGISTRY] = registry
    app[_SNAPSHOTS] = Snapshots(limits.snapshot_age, wait=limits.collect_timeout)
    app[_PACES] = (_Pace(limits.probe_rate), _Pace(limits.request_rate))
    if dashboard is not None:
        add_dashboard(app, dashboard, index=_index, snapshot=snapshot)
    else:
        app.router.add_get("/", _index)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/status", _status)
    app.router.add_get("/books", _all_books)
    app.router.add_get("/books/{asset_id}", _one_book)
    return app


_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 21\r\n\r\ntoo many connections\n"
)


class _Refuse(asyncio.Protocol):
    """Answers 503 and closes: what one connection over the limit gets."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_REFUSAL)
        transport.close()


class HttpServer:
    """Runs an aiohttp application on one address within :class:`HttpLimits`, on a thread
    and event loop of its own (or on the caller's loop), without aiohttp's signal handling.

    On its own thread (the default) no request ever takes a turn of the caller's loop: the
    handlers run there, and reach the service's state only through :func:`snapshot`, which
    collects on the caller's loop. ``/healthz`` answers even while that loop is stuck
    (saying so).

    Args:
        app: The application.
        host: Address to bind.
        port: Port to bind; 0 picks a free one (see :attr:`url`).
        limits: Connections at most, idle timeout, shutdown timeout (defaults if None).
        thread: Serve from a thread of its own; False serves on the loop that calls
            :meth:`start`.
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        limits: HttpLimits | None = None,
        thread: bool = True,
    ) -> None:
        self.limits = limits or HttpLimits()
        self._app = app
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=self.limits.shutdown_timeout,
            keepalive_timeout=self.limits.idle_timeout,
        )
        self._host = host
        self._port = port
        self._threaded = thread
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._bound: tuple[str, int] | None = None
        self._admitting: set[web.RequestHandler] = set()
        self.refused = 0
        """Connections answered 503 for being over :attr:`HttpLimits.max_connections`."""

    def __repr__(self) -> str:
        where = "own thread" if self._threaded else "caller's loop"
        return f"<HttpServer {self.url if self._bound else 'not started'} {where}>"

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

    @property
    def connections(self) -> int:
        """Connections open now."""
        server = self._runner.server
        return 0 if server is None else len(server.connections)

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None
        # A burst of accepts calls this factory for every connection before any of them
        # is counted in server.connections (connection_made comes one callback later), so
        # they are counted here until then, and no longer: one whose connection_made ran
        # (it has a transport) is in server.connections already. The doubly deferred
        # discard, after connection_made, forgets one that never got that far.
        admitting = sum(1 for handler in self._admitting if handler.transport is None)
        if len(server.connections) + admitting >= self.limits.max_connections:
            self.refused += 1
            return _Refuse()
        handler = server()
        self._admitting.add(handler)
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self._admitting.discard, handler)
        return handler

    async def _bind(self) -> None:
        await self._runner.setup()
        loop = asyncio.get_running_loop()
        try:
            # asyncio accepts up to `backlog` connections at a time, each a descriptor
            # until it is refused: keep that burst small beside the connection limit.
            backlog = max(8, min(128, self.limits.max_connections // 2))
            self._server = await loop.create_server(
                self._protocol, self._host, self._port, reuse_address=True, backlog=backlog
            )
        except BaseException:
            await self._runner.cleanup()
            raise
        host, port = self._server.sockets[0].getsockname()[:2]
        self._bound = (str(host), int(port))

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        await self._runner.cleanup()

    async def start(self) -> str:
        """Bind and serve.

        Returns:
            The server's URL.

        Raises:
            OSError: If the address cannot be bound (in use, not local, no permission).
        """
        owner = asyncio.get_running_loop()
        if not self._threaded:
            await self._bind()
        else:
            self._app[_SNAPSHOTS].owner = owner
            loop = asyncio.new_event_loop()
            bound: concurrent.futures.Future[None] = concurrent.futures.Future()
            self._thread = threading.Thread(
                target=self._serve, args=(loop, bound), name="http", daemon=True
            )
            self._thread.start()
            self._loop = loop
            try:
                # Shielded: a cancelled start must still learn whether the thread bound.
                await asyncio.shield(asyncio.wrap_future(bound))
            except BaseException:
                await asyncio.shield(self._abandon(bound))
                raise
        _logger.info("serving health and metrics on %s", self.url, extra={"url": self.url})
        return self.url

    def _serve(
        self, loop: asyncio.AbstractEventLoop, bound: concurrent.futures.Future[None]
    ) -> None:
        """The thread: bind, say so, serve until stopped, close the loop."""
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._bind())
            except BaseException as exc:
                bound.set_exception(exc)
                return
            bound.set_result(None)
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _abandon(self, bound: concurrent.futures.Future[None]) -> None:
        """After a failed or cancelled start: stop the thread once it has bound, or ended."""
        await asyncio.to_thread(concurrent.futures.wait, [bound])
        if bound.exception() is None:
            await self.stop()
        elif self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self._loop = self._thread = None

    async def stop(self) -> None:
        """Stop accepting, give requests in progress the shutdown timeout, close every
        connection (and the thread); idempotent."""
        loop, thread = self._loop, self._thread
        if thread is None or loop is None:
            if not self._threaded:
                await self._close()
            return
        self._loop = self._thread = None
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._close(), loop))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(thread.join)
