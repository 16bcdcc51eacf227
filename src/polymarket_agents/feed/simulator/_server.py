"""``MarketSimulator``: the local Polymarket market channel, over a real websockets server.

One engine task advances the :class:`Universe` at a Poisson event rate and broadcasts each
tick's events to the connections subscribed to them. Every connection has an outbox drained
by its own sender task, so the order a connection sees is exactly the order of the
universe's state changes: a snapshot taken when an asset is subscribed is queued before any
later change of it.

The same port answers ``GET /markets`` with the universe as Gamma-style JSON; any path other
than ``/ws/market`` and ``/markets`` is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from .._book import OrderBook
from .._errors import InvalidMessage
from .._gamma import MarketInfo
from .._messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    MarketResolved,
    NewMarket,
    PriceChange,
    TickSizeChange,
)
from .._protocol import Operation, Subscribe, TextReply, decode_client_frame
from .._universe import parse_end_date
from ._faults import FaultPlan, MalformedKind, malformed_frame, oversized_frame
from ._universe import SimMarket, Universe, legacy_price_changes

__all__ = ["ConnectionStats", "MarketSimulator", "run_simulator", "running_simulator"]

_logger = logging.getLogger("polymarket_agents.feed.simulator")

WS_PATH = "/ws/market"
MARKETS_PATH = "/markets"
_UNPACED_CHUNK = 32  # ticks generated per engine turn when the rate is unlimited


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionStats:
    """Exactly what the simulator sent on one connection (frames written to the socket).

    Attributes:
        id: 1 for the first connection, and so on.
        open: Whether it is still open.
        subscribed: Assets subscribed at the time of the snapshot.
        asset_ids: Those assets.
        frames: Frames written, of every kind.
        data_frames: Frames of market events (including snapshots).
        events: Market events in those frames.
        events_by_type: ``events`` per ``event_type``.
        pongs: ``PONG`` frames.
        invalid_operations: ``INVALID OPERATION`` frames.
        malformed: Malformed frames (fault injection).
        oversized: Oversized frames (fault injection).
        bytes_sent: Payload bytes of all frames.
        suppressed: Data frames not sent because the connection was frozen.
        pings: ``PING`` frames received.
        pings_ignored: ``PING`` frames left unanswered (fault injection).
        client_frames: Frames received from the client, ``PING`` included.
        close_reason: How it ended, once it has.
    """

    id: int
    open: bool
    subscribed: int
    asset_ids: frozenset[str]
    frames: int
    data_frames: int
    events: int
    events_by_type: Mapping[str, int]
    pongs: int
    invalid_operations: int
    malformed: int
    oversized: int
    bytes_sent: int
    suppressed: int
    pings: int
    pings_ignored: int
    client_frames: int
    close_reason: str


_BINARY = f"malformed:{MalformedKind.BINARY}"  # the one kind of frame sent as binary

# What a connection's outbox holds: the payload, its kind, and the event types it carries.
_Outgoing = tuple[bytes | str, str, tuple[str, ...]]


class _Connection:
    """One client connection: its subscription, outbox, fault clock and counters."""

    def __init__(self, sim: MarketSimulator, ws: ServerConnection, number: int) -> None:
        self.sim = sim
        self.ws = ws
        self.id = number
        self.opened = asyncio.get_running_loop().time()
        self.rng = random.Random(f"{sim.seed}/{number}")
        self.subscribed: dict[str, None] = {}
        self.initialized = False
        self.custom = False
        self.open = True
        self.close_reason = ""
        self.outbox: deque[_Outgoing] = deque()
        self.has_mail = asyncio.Event()
        self.drained = asyncio.Event()
        self.drained.set()
        self.room = asyncio.Event()
        self.room.set()
        self.frames = 0
        self.data_frames = 0
        self.events = 0
        self.events_by_type: Counter[str] = Counter()
        self.pongs = 0
        self.invalid_operations = 0
        self.malformed = 0
        self.malformed_posted = 0
        self.oversized = 0
        self.bytes_sent = 0
        self.suppressed = 0
        self.pings = 0
        self.pings_ignored = 0
        self.client_frames = 0

    def age(self) -> float:
        return asyncio.get_running_loop().time() - self.opened

    def stats(self) -> ConnectionStats:
        return ConnectionStats(
            id=self.id,
            open=self.open,
            subscribed=len(self.subscribed),
            asset_ids=frozenset(self.subscribed),
            frames=self.frames,
            data_frames=self.data_frames,
            events=self.events,
            events_by_type=dict(self.events_by_type),
            pongs=self.pongs,
            invalid_operations=self.invalid_operations,
            malformed=self.malformed,
            oversized=self.oversized,
            bytes_sent=self.bytes_sent,
            suppressed=self.suppressed,
            pings=self.pings,
            pings_ignored=self.pings_ignored,
            client_frames=self.client_frames,
            close_reason=self.close_reason,
        )

    def frozen(self) -> bool:
        after = self.sim.faults.freeze_after
        return after is not None and self.age() >= after

    def post(self, payload: bytes | str, kind: str, types: tuple[str, ...] = ()) -> None:
        """Queue a frame; never blocks, so queueing order is the universe's order."""
        self.outbox.append((payload, kind, types))
        self.has_mail.set()
        self.drained.clear()
        if len(self.outbox) >= self.sim.send_queue:
            self.room.clear()

    async def send_loop(self) -> None:
        ws = self.ws
        outbox = self.outbox
        delay = self.sim.faults.send_delay
        limit = self.sim.send_queue
        try:
            while True:
                while not outbox:
                    self.drained.set()
                    self.has_mail.clear()
                    await self.has_mail.wait()
                payload, kind, types = outbox[0]
                if delay:
                    await asyncio.sleep(delay)
                await ws.send(payload, text=kind != _BINARY)
                outbox.popleft()
                if len(outbox) < limit:
                    self.room.set()
                self._count(payload, kind, types)
        except ConnectionClosed:
            pass
        finally:
            self.open = False
            self.outbox.clear()
            self.drained.set()
            self.room.set()

    def _count(self, payload: bytes | str, kind: str, types: tuple[str, ...]) -> None:
        self.frames += 1
        self.bytes_sent += len(payload)
        if kind == "data":
            self.data_frames += 1
            self.events += len(types)
            self.events_by_type.update(types)
        elif kind == "pong":
            self.pongs += 1
        elif kind == "invalid_operation":
            self.invalid_operations += 1
        elif kind == "oversized":
            self.oversized += 1
        else:
            self.malformed += 1


def _asset_of(event: MarketEvent) -> str | None:
    """The single asset an event concerns, or None (price changes and market events)."""
    if type(event) in (Book, LastTradePrice, TickSizeChange, BestBidAsk):
        return event.asset_id  # type: ignore[union-attr]
    return None


class MarketSimulator:
    """A local Polymarket market channel and Gamma listing, seeded and fault-injectable.

    ::

        async with running_simulator(markets=3, event_rate=50.0) as sim:
            markets = sim.markets()            # or GET {sim.http_url}/markets
            async with MarketFeed(sim.ws_url, markets=markets) as feed:
                ...

    Args:
        host: Address to bind; loopback by default.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        seed: Seeds the universe, arrival times and per-connection faults.
        markets: Markets in the universe.
        levels: Book levels per side.
        event_rate: Ticks per second (each ~1.5 market events: a price change, a trade
            print and its price change, best bid/ask updates ...); None generates as fast
            as the slowest subscribed connection takes them (for benchmarks).
        batch_probability: Probability that a tick's events share the previous tick's
            array frame.
        book_after_trade: Send ``book`` snapshots after trades instead of price changes.
        dislocation_rate: Probability per tick of a complement dislocation (YES ask + NO
            ask briefly below 1); off by default.
        dislocation_edge: How far below 1 the asks then sum, or a range to draw from.
        dislocation_seconds: How long a dislocation lasts.
        faults: The faults to inject; none by default.
        idle_timeout: Close connections that send nothing for this long (the live service
            does, after about a minute); None never does.
        send_queue: Frames queued for a connection beyond which it is too slow: with a
            rate it is closed (code 1013), without one the engine waits for it.
        compression: websockets' ``compression`` setting (None: none, cheapest on
            loopback; ``"deflate"``: as over the internet).

    Raises:
        ValueError: On invalid universe settings or a negative rate.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        markets: int = 5,
        levels: int = 10,
        event_rate: float | None = 5.0,
        batch_probability: float = 0.1,
        book_after_trade: bool = False,
        dislocation_rate: float = 0.0,
        dislocation_edge: float | tuple[float, float] = (0.06, 0.10),
        dislocation_seconds: float = 2.0,
        faults: FaultPlan | None = None,
        idle_timeout: float | None = 60.0,
        send_queue: int = 10_000,
        compression: str | None = None,
    ) -> None:
        if event_rate is not None and not event_rate > 0:
            raise ValueError(f"event_rate must be > 0 or None, not {event_rate!r}")
        if not 0.0 <= batch_probability <= 1.0:
            raise ValueError(f"batch_probability must be in [0, 1], not {batch_probability!r}")
        self.host = host
        self.seed = seed
        self.event_rate = event_rate
        self.batch_probability = batch_probability
        self.faults = faults or FaultPlan()
        self.idle_timeout = idle_timeout
        self.send_queue = send_queue
        self.universe = Universe(
            seed=seed,
            markets=markets,
            levels=levels,
            book_after_trade=book_after_trade,
            dislocation_rate=dislocation_rate,
            dislocation_edge=dislocation_edge,
            dislocation_seconds=dislocation_seconds,
        )
        """The simulated markets; its books are the live state the events describe."""
        self._requested_port = port
        self._compression = compression
        self._arrivals = random.Random(f"{seed}/arrivals")
        self._server: Server | None = None
        self._port: int | None = None
        self._engine_task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self._running.set()
        # Set once some connection subscribes; the engine sleeps on it while nobody listens.
        self._audience = asyncio.Event()
        self._connections: list[_Connection] = []
        self._open: list[_Connection] = []
        # Who subscribed to each asset: a frame costs O(its subscribers), not O(connections).
        self._subscribers: dict[str, list[_Connection]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.ticks = 0
        """Ticks generated so far."""

    def __repr__(self) -> str:
        where = self.ws_url if self._port is not None else "not started"
        return f"<MarketSimulator {where} markets={len(self.universe.markets)}>"

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Bind the port and start the engine.

        Raises:
            OSError: If the address cannot be bound.
            RuntimeError: If already started.
        """
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            compression=self._compression,
            ping_interval=None,  # the protocol's heartbeat is PING/PONG text
            max_size=2**20,
            logger=_logger,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])
        self._engine_task = asyncio.create_task(self._engine(), name="simulator-engine")
        _logger.info("market simulator listening on %s", self.ws_url)

    async def aclose(self) -> None:
        """Stop the engine, close every connection and the listening socket."""
        engine, self._engine_task = self._engine_task, None
        if engine is not None:
            engine.cancel()
            await asyncio.wait((engine,))
        server = self._server
        if server is not None:
            server.close(code=1001)
            await server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)

    async def serve_forever(self) -> None:
        """Run until cancelled, then close.

        Raises:
            RuntimeError: If not started.
        """
        if self._server is None:
            raise RuntimeError("start the simulator first")
        try:
            await asyncio.Event().wait()
        finally:
            await self.aclose()

    @property
    def port(self) -> int:
        """The bound port.

        Raises:
            RuntimeError: If not started.
        """
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def ws_url(self) -> str:
        """The market channel URL, ``ws://host:port/ws/market``."""
        return f"ws://{self.host}:{self.port}{WS_PATH}"

    @property
    def http_url(self) -> str:
        """The Gamma-style base URL, ``http://host:port`` (``GET /markets``)."""
        return f"http://{self.host}:{self.port}"

    # -- in-process views --------------------------------------------------------------

    def markets(self) -> list[MarketInfo]:
        """The universe's markets, as a Gamma listing parses them."""
        return self.universe.infos()

    def gamma_markets(self) -> list[dict[str, Any]]:
        """The universe's markets as Gamma ``/markets`` rows (JSON-string fields included)."""
        return self.universe.gamma()

    @property
    def books(self) -> Mapping[str, OrderBook]:
        """The live books by token id: the state the events describe. Read, never write."""
        return self.universe.books

    def market(self, key: str) -> SimMarket:
        """A market by token id or condition id.

        Raises:
            KeyError: If neither matches.
        """
        return self.universe.market(key)

    def connections(self) -> list[ConnectionStats]:
        """What was sent on each connection so far, in connection order."""
        return [connection.stats() for connection in self._connections]

    # -- control -----------------------------------------------------------------------

    async def pause(self) -> None:
        """Stop generating events and wait until everything queued was written.

        Afterwards :meth:`connections` counts every frame a client can still receive.
        """
        self._running.clear()
        for connection in list(self._open):
            await connection.drained.wait()

    def resume(self) -> None:
        """Generate events again after :meth:`pause`."""
        self._running.set()

    def tick(self, count: int = 1) -> None:
        """Generate ``count`` ticks now and broadcast them (also while paused).

        Args:
            count: Ticks to generate.
        """
        now = asyncio.get_running_loop().time()
        for _ in range(count):
            self._broadcast(self.universe.step(now))
            self.ticks += 1

    def add_market(self) -> SimMarket:
        """Create a market; subscribers with custom features get a ``new_market``."""
        market, event = self.universe.add_market()
        self._broadcast([event])
        return market

    def resolve_market(
        self, key: str, winner: str | None = None, *, announce: bool = True
    ) -> MarketResolved:
        """Resolve a market: Gamma lists it ``closed`` with its final ``outcomePrices``,
        and subscribers with custom features get ``market_resolved``.

        Args:
            key: A token id or condition id.
            winner: ``"Yes"`` or ``"No"``; the likelier side if None.
            announce: Send ``market_resolved``; False leaves Gamma the only one to tell
                (the real feed has been reported to miss it).

        Returns:
            The event (sent if ``announce``).

        Raises:
            KeyError: For an unknown market.
            ValueError: For another winner.
        """
        event = self.universe.resolve(key, winner)
        if announce:
            self._broadcast([event])
        return event

    def close_market(self, key: str) -> None:
        """Close a market before it resolves: Gamma lists it ``closed`` at its last prices
        (not final), and it sends nothing more.

        Raises:
            KeyError: For an unknown market.
        """
        self.universe.close(key)

    def drop_connections(self, *, abort: bool = False, ids: Iterable[int] | None = None) -> int:
        """Drop open connections now: with a close frame, or by aborting TCP.

        Args:
            abort: Abort without a close frame.
            ids: Drop only these connections (:attr:`ConnectionStats.id`); all if None.

        Returns:
            How many connections were dropped.
        """
        dropped = 0
        wanted = None if ids is None else set(ids)
        for connection in list(self._open):
            if wanted is not None and connection.id not in wanted:
                continue
            self._drop(connection, abort=abort)
            dropped += 1
        return dropped

    def _drop(self, connection: _Connection, *, abort: bool) -> None:
        if not connection.open:
            return
        connection.open = False
        if abort:
            connection.close_reason = "aborted"
            connection.ws.transport.abort()
        else:
            code = self.faults.drop_code
            connection.close_reason = f"dropped ({code})"
            self._spawn(connection.ws.close(code, "simulated drop"))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- HTTP ----------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if url.path == WS_PATH:
            return None  # go on with the websocket handshake
        if url.path == MARKETS_PATH:
            rows = _filter_gamma(self.gamma_markets(), parse_qs(url.query))
            response = connection.respond(200, json.dumps(rows))
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "application/json"
            return response
        return connection.respond(404, "Not Found\n")

    # -- connections ---------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        connection = _Connection(self, ws, len(self._connections) + 1)
        self._connections.append(connection)
        self._open.append(connection)
        sender = asyncio.create_task(connection.send_loop(), name=f"simulator-send-{connection.id}")
        timers = [asyncio.create_task(self._fault_timers(connection))]
        try:
            await self._receive(connection)
        except ConnectionClosed:
            pass
        finally:
            connection.open = False
            if not connection.close_reason:
                connection.close_reason = "closed"
            self._open.remove(connection)
            self._unsubscribe(connection, list(connection.subscribed))
            self._update_features()
            sender.cancel()
            for timer in timers:
                timer.cancel()
            await asyncio.wait((sender, *timers))

    async def _receive(self, connection: _Connection) -> None:
        ws = connection.ws
        while True:
            if self.idle_timeout is None:
                frame = await ws.recv()
            else:
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        frame = await ws.recv()
                except TimeoutError:
                    connection.close_reason = "idle"
                    await ws.close(1000, "idle")
                    return
            connection.client_frames += 1
            self._on_client_frame(connection, frame)

    async def _fault_timers(self, connection: _Connection) -> None:
        faults = self.faults
        schedule = [
            (delay, abort)
            for delay, abort in ((faults.drop_every, False), (faults.abort_every, True))
            if delay is not None
        ]
        if not schedule:
            return
        delay, abort = min(schedule)
        await asyncio.sleep(delay)
        self._drop(connection, abort=abort)

    def _on_client_frame(self, connection: _Connection, frame: str | bytes) -> None:
        try:
            message = decode_client_frame(frame)
        except InvalidMessage:
            connection.post(TextReply.INVALID_OPERATION.value, "invalid_operation")
            return
        if message == "PING":
            connection.pings += 1
            after = self.faults.stop_pong_after
            if after is not None and connection.age() >= after:
                connection.pings_ignored += 1
            else:
                connection.post(TextReply.PONG.value, "pong")
            return
        if isinstance(message, Subscribe):
            if connection.initialized:
                # The live service rejects a second initial frame on one socket.
                connection.post(TextReply.INVALID_OPERATION.value, "invalid_operation")
                return
            connection.initialized = True
            connection.custom = message.custom_feature_enabled
            self._subscribe(connection, message.assets_ids, dump=message.initial_dump)
            self._update_features()
            return
        assert isinstance(message, Operation)
        connection.initialized = True
        connection.custom = connection.custom or message.custom_feature_enabled
        self._update_features()
        if message.operation == "subscribe":
            self._subscribe(connection, message.assets_ids, dump=True)
        else:
            self._unsubscribe(connection, message.assets_ids)

    def _unsubscribe(self, connection: _Connection, asset_ids: Iterable[str]) -> None:
        index = self._subscribers
        for asset_id in asset_ids:
            if connection.subscribed.pop(asset_id, 0) is None:
                subscribers = index[asset_id]
                subscribers.remove(connection)
                if not subscribers:
                    del index[asset_id]

    def _update_features(self) -> None:
        # best_bid_ask costs a little per tick; generate it only for someone who wants it.
        self.universe.best_bid_ask = any(c.custom for c in self._open)

    def _subscribe(self, connection: _Connection, asset_ids: Iterable[str], *, dump: bool) -> None:
        """Subscribe known assets (unknown ones are ignored, as live) and queue their books.

        Synchronous on purpose: the snapshots are queued before any later change.
        """
        books = self.universe.books
        added = [
            a for a in dict.fromkeys(asset_ids) if a in books and a not in connection.subscribed
        ]
        connection.subscribed.update(dict.fromkeys(added))
        index = self._subscribers
        for asset_id in added:
            index.setdefault(asset_id, []).append(connection)
        if added:
            self._audience.set()
        if dump and added and not connection.frozen():
            snapshots = [self.universe.snapshot(asset_id) for asset_id in added]
            connection.post(msgspec.json.encode(snapshots), "data", ("book",) * len(snapshots))

    # -- the engine ----------------------------------------------------------------------

    async def _engine(self) -> None:
        loop = asyncio.get_running_loop()
        rate = self.event_rate
        arrivals = self._arrivals
        next_at = loop.time()
        while True:
            if not self._running.is_set():
                await self._running.wait()
                next_at = loop.time()
            if not any(c.open and c.subscribed for c in self._open):
                # Nobody listens: generate nothing (flat out, that would spin a core) and
                # sleep until a connection subscribes.
                self._audience.clear()
                await self._audience.wait()
                next_at = loop.time()
                continue
            if rate is None:
                frames: list[list[MarketEvent]] = []
                now = loop.time()
                for _ in range(_UNPACED_CHUNK):
                    self._collect(frames, self.universe.step(now))
                for events in frames:
                    self._broadcast(events)
                for connection in list(self._open):
                    await connection.room.wait()
                await asyncio.sleep(0)
                continue
            now = loop.time()
            if next_at > now:
                await asyncio.sleep(next_at - now)
                if not self._running.is_set():
                    continue  # paused while asleep: generate nothing more
                now = loop.time()
            frames = []
            due = 0
            while next_at <= now and due < _UNPACED_CHUNK:
                self._collect(frames, self.universe.step(now))
                next_at += arrivals.expovariate(rate)
                due += 1
            for events in frames:
                self._broadcast(events)
            self._shed_slow_connections()
            if next_at <= loop.time():
                # Behind schedule: let the connections write before catching up, or a
                # simulator slower than its rate would never yield to them again.
                await asyncio.sleep(0)

    def _collect(self, frames: list[list[MarketEvent]], events: list[MarketEvent]) -> None:
        self.ticks += 1
        if not events:
            return
        if frames and self._arrivals.random() < self.batch_probability:
            frames[-1].extend(events)
        else:
            frames.append(events)

    def _shed_slow_connections(self) -> None:
        for connection in self._open:
            if connection.open and len(connection.outbox) > self.send_queue:
                _logger.warning(
                    "connection %d is %d frames behind; closing it",
                    connection.id,
                    len(connection.outbox),
                )
                connection.open = False
                connection.close_reason = "too slow (1013)"
                self._spawn(connection.ws.close(1013, "slow consumer"))

    def _broadcast(self, events: list[MarketEvent]) -> None:
        """Send one frame's events to every connection subscribed to some of them."""
        if not events or not self._open:
            return
        faults = self.faults
        shared: tuple[bytes, tuple[str, ...]] | None = None
        for connection in self._audience_of(events):
            if not connection.open:
                continue
            selected = self._select(connection, events)
            if not selected:
                continue
            if connection.frozen():
                connection.suppressed += 1
                continue
            if selected is events:
                if shared is None:
                    shared = self._encode(events)
                payload, types = shared
            else:
                payload, types = self._encode(selected)
            connection.post(payload, "data", types)
            rng = connection.rng
            if faults.malformed_rate and rng.random() < faults.malformed_rate:
                asset_id = next(iter(connection.subscribed))
                market = self.universe.market(asset_id).condition_id
                kind, text = malformed_frame(connection.malformed_posted, asset_id, market, "1")
                connection.malformed_posted += 1
                connection.post(text, f"malformed:{kind}")
            if faults.oversized_rate and rng.random() < faults.oversized_rate:
                connection.post(oversized_frame(faults.oversized_bytes, rng), "oversized")

    def _audience_of(self, events: list[MarketEvent]) -> Iterable[_Connection]:
        """The connections subscribed to some of ``events`` (market lifecycle events go to
        every connection with custom features), each once."""
        index = self._subscribers
        if len(events) == 1:
            event = events[0]
            asset_id = _asset_of(event)
            if asset_id is not None:
                return index.get(asset_id, ())
            if type(event) is PriceChange:
                entries = event.price_changes
                first = index.get(entries[0].asset_id, ())
                if all(index.get(c.asset_id, ()) == first for c in entries[1:]):
                    return first  # both tokens of a market: one connection, the usual case
        audience: dict[_Connection, None] = {}
        for event in events:
            asset_id = _asset_of(event)
            if asset_id is not None:
                audience.update(dict.fromkeys(index.get(asset_id, ())))
            elif type(event) is PriceChange:
                for change in event.price_changes:
                    audience.update(dict.fromkeys(index.get(change.asset_id, ())))
            else:
                audience.update(dict.fromkeys(c for c in self._open if c.custom))
        return audience

    def _select(self, connection: _Connection, events: list[MarketEvent]) -> list[MarketEvent]:
        """The part of ``events`` this connection subscribed to (``events`` itself if all)."""
        subscribed = connection.subscribed
        selected: list[MarketEvent] = []
        changed = False
        for event in events:
            asset_id = _asset_of(event)
            if asset_id is not None:
                wanted = asset_id in subscribed and (
                    type(event) is not BestBidAsk or connection.custom
                )
                if wanted:
                    selected.append(event)
                else:
                    changed = True
            elif type(event) is PriceChange:
                entries = event.price_changes
                kept = tuple(c for c in entries if c.asset_id in subscribed)
                if len(kept) == len(entries):
                    selected.append(event)
                else:
                    changed = True
                    if kept:
                        selected.append(
                            PriceChange(
                                market=event.market,
                                timestamp=event.timestamp,
                                price_changes=kept,
                            )
                        )
            elif connection.custom and type(event) in (NewMarket, MarketResolved):
                selected.append(event)
            else:
                changed = True
        return selected if changed else events

    def _encode(self, events: list[MarketEvent]) -> tuple[bytes, tuple[str, ...]]:
        items: list[Any] = []
        if self.faults.legacy_price_change:
            for event in events:
                if type(event) is PriceChange:
                    items.extend(legacy_price_changes(event))
                else:
                    items.append(event)
        else:
            items = list(events)
        types = tuple(
            item["event_type"] if isinstance(item, dict) else _EVENT_TYPE[type(item)]
            for item in items
        )
        payload = msgspec.json.encode(items[0] if len(items) == 1 else items)
        return payload, types


_EVENT_TYPE: dict[type, str] = {
    Book: "book",
    PriceChange: "price_change",
    LastTradePrice: "last_trade_price",
    TickSizeChange: "tick_size_change",
    BestBidAsk: "best_bid_ask",
    NewMarket: "new_market",
    MarketResolved: "market_resolved",
}


def _filter_gamma(rows: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Apply the Gamma ``/markets`` query parameters the simulator understands."""

    def flag(name: str) -> bool | None:
        values = query.get(name)
        return None if not values else values[-1].lower() == "true"

    for name in ("active", "closed", "archived"):
        wanted = flag(name)
        if wanted is not None:
            rows = [row for row in rows if row[name] is wanted]
    tokens = {t for value in query.get("clob_token_ids", ()) for t in value.split(",") if t}
    if tokens:
        rows = [row for row in rows if tokens & set(json.loads(row["clobTokenIds"]))]
    conditions = {c for value in query.get("condition_ids", ()) for c in value.split(",") if c}
    if conditions:
        rows = [row for row in rows if row["conditionId"] in conditions]
    slugs = set(query.get("slug", ()))
    if slugs:
        rows = [row for row in rows if row["slug"] in slugs]
    rows = _filter_numbers(rows, query)
    try:
        offset = max(int(query.get("offset", ["0"])[-1]), 0)
        limit = int(query["limit"][-1]) if "limit" in query else len(rows)
    except ValueError:
        offset, limit = 0, len(rows)
    return rows[offset : offset + max(limit, 0)]


def _filter_numbers(
    rows: list[dict[str, Any]], query: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """Gamma's range filters: ``liquidity_num_min``, ``volume_num_min``, ``tag_id``,
    ``end_date_min``, ``end_date_max`` (a malformed value filters nothing, as Gamma
    ignores it)."""

    def last(name: str) -> str | None:
        values = query.get(name)
        return values[-1] if values else None

    for name, field in (("liquidity_num_min", "liquidityNum"), ("volume_num_min", "volumeNum")):
        text = last(name)
        if text is None:
            continue
        with contextlib.suppress(ValueError):
            least = float(text)
            rows = [row for row in rows if row[field] >= least]
    tag = last("tag_id")
    if tag is not None:
        rows = [row for row in rows if any(t["id"] == tag for t in row["tags"])]
    low, high = last("end_date_min"), last("end_date_max")
    after = parse_end_date(low) if low else None
    before = parse_end_date(high) if high else None
    if after is not None or before is not None:
        kept = []
        for row in rows:
            end = parse_end_date(row["endDate"])
            if end is None or (after is not None and end < after):
                continue
            if before is not None and end > before:
                continue
            kept.append(row)
        rows = kept
    return rows


@contextlib.asynccontextmanager
async def running_simulator(**options: Any) -> AsyncIterator[MarketSimulator]:
    """A started simulator on 127.0.0.1 and a free port, closed on exit: a test helper.

    Args:
        **options: As for :class:`MarketSimulator` (``host`` and ``port`` excepted).

    Yields:
        The simulator; connect to its ``ws_url`` / ``http_url``.
    """
    simulator = MarketSimulator(host="127.0.0.1", port=0, **options)
    async with simulator:
        yield simulator


async def run_simulator(
    host: str = "127.0.0.1",
    port: int = 8765,
    *,
    ready: Callable[[MarketSimulator], object] | None = None,
    **options: Any,
) -> None:
    """Serve a simulator until cancelled: the entry point of ``polymarket-agents simulate``.

    Args:
        host: Address to bind.
        port: Port to bind (0: any free port).
        ready: Called with the started simulator, e.g. to print its URLs.
        **options: As for :class:`MarketSimulator`.

    Raises:
        OSError: If the address cannot be bound.
        ValueError: On invalid options.
    """
    simulator = MarketSimulator(host=host, port=port, **options)
    await simulator.start()
    if ready is not None:
        ready(simulator)
    await simulator.serve_forever()
