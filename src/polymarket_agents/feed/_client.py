"""``MarketFeed``: the market-channel client, a pool of connections the agents share.

One feed per process holds every subscribed asset's book in one :class:`BookSet` and a pool
of connections, each carrying at most ``assets_per_connection`` assets (200 by default,
Polymarket allows 500). A market's two tokens always share a connection, since one
``price_change`` covers both. Markets are added and removed at runtime with the protocol's
``subscribe``/``unsubscribe`` operation frames, never by reconnecting: a new market goes to
the first connection with room (a new connection when none has), and when removals leave
the pool a connection larger than it needs, the emptiest connection's markets move to the
others and it closes. Each connection reconnects on its own (see ``_connection.py``): it
subscribes exactly its own assets again, and only their books go unsynced and get fresh
snapshots.

Frames are decoded, applied to :attr:`MarketFeed.books`, and only then handed on: to the
feed's own event iterator (``async for event in feed``) and to the :class:`MarketStream` of
each market a consumer attached to (:meth:`MarketFeed.attach`), each through a bounded
channel. When a consumer falls behind, the connection carrying its market stops reading its
socket (TCP pushes back on the server) and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from websockets.exceptions import InvalidURI
from websockets.uri import parse_uri

from polymarket_agents.core.async_utils import (
    ConfigurationError,
    Observer,
    RestartPolicy,
    TaskFailure,
    TaskSupervisor,
    shielded,
)

from ._book import BookSet, MarketBooks
from ._channel import Channel
from ._connection import FeedConnectionStats, _Connection, connection_policy, group_assets
from ._errors import FeedStopped
from ._gamma import MarketInfo
from ._messages import MarketEvent, MarketResolved, NewMarket
from ._protocol import DEFAULT_MAX_FRAME_BYTES, FrameDecoder
from ._redact import redact_url

__all__ = [
    "DEFAULT_ASSETS_PER_CONNECTION",
    "DEFAULT_MARKET_URL",
    "DEFAULT_STREAM_QUEUE",
    "MAX_ASSETS_PER_CONNECTION",
    "FeedStats",
    "MarketFeed",
    "MarketStream",
    "default_feed_policy",
]

DEFAULT_MARKET_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
"""Polymarket's market channel."""

MAX_ASSETS_PER_CONNECTION = 500
"""Polymarket's documented limit of assets per market-channel connection."""

DEFAULT_ASSETS_PER_CONNECTION = 200
"""Assets per pooled connection by default (NautilusTrader's choice too)."""

DEFAULT_STREAM_QUEUE = 16
"""Batches queued per market stream. Small on purpose: thousands of streams share a
process, and a consumer that falls behind should pause its connection (TCP pushes back on
the server), not fill memory."""

_logger = logging.getLogger("polymarket_agents.feed")

_Delivery = list[Awaitable[None]]
LifecycleEvent = NewMarket | MarketResolved


def default_feed_policy() -> RestartPolicy:
    """Reconnect backoff as mature Polymarket clients do it: 1, 2, 4 ... 60 s, with jitter.

    The count starts again once a connection has synced every book from its snapshot (the
    policy's ``reset_after`` is not used by the feed).

    Returns:
        The policy.
    """
    return RestartPolicy(backoff_seconds=1.0, max_backoff=60.0, reset_after=5.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedStats:
    """A snapshot of a feed's counters, summed over its connections.

    Attributes:
        connected: Whether every connection that carries assets has a socket open and
            subscribed (and at least one connection exists).
        frames: Frames received, of every kind.
        events: Market events decoded (unknown event types excluded).
        invalid_frames: Frames that failed to decode, counted and skipped.
        invalid_by_kind: ``invalid_frames`` per :class:`InvalidKind` value.
        invalid_operations: ``INVALID OPERATION`` replies from the server.
        pongs: ``PONG`` replies.
        connections: Sockets opened.
        reconnects: Socket attempts after each connection's first.
        resyncs: Snapshots requested again for books that went stale.
        dropped_updates: ``price_change`` entries dropped because their book was unsynced.
        last_error: The error that ended the last socket of any connection.
        synced: Per subscribed asset, whether its book is synced.
        pool: The connections now in the pool.
        moves: Markets moved between connections by rebalancing.
    """

    connected: bool
    frames: int
    events: int
    invalid_frames: int
    invalid_by_kind: Mapping[str, int]
    invalid_operations: int
    pongs: int
    connections: int
    reconnects: int
    resyncs: int
    dropped_updates: int
    last_error: str | None
    synced: Mapping[str, bool]
    pool: int = 1
    moves: int = 0

    @property
    def ready(self) -> bool:
        """Connected, and every subscribed asset's book synced: what readiness checks read."""
        return self.connected and all(self.synced.values())


Handler = Callable[[list[MarketEvent]], Awaitable[None] | None]
"""Takes a batch of one market's events: None once done with it, or an awaitable the
market's connection awaits before it reads on."""


class _Pool(Observer):
    """Tells a feed when its supervisor gives up one of its connections."""

    __slots__ = ("feed",)

    def __init__(self, feed: MarketFeed) -> None:
        self.feed = feed

    def on_failure(self, event: TaskFailure) -> None:
        """A connection that will not be restarted ends its markets' streams."""
        if not event.final:
            return
        name = event.task.rsplit("/", 1)[-1]
        for connection in self.feed._connections:
            if connection.name == name:
                connection.gave_up()
                return


class MarketStream:
    """One market's events from a shared :class:`MarketFeed`, and its books.

    Made by :meth:`MarketFeed.attach`. Events arrive after they were applied to the books,
    in the order the market's connection received them, either by iterating the stream
    from one task, or through :meth:`serve`: a handler called by the connection itself,
    without a task switch per event (what the agents' monitors do at scale).

    Attributes:
        market: The market.
        books: Its YES and NO books (shared with the feed).
    """

    __slots__ = (
        "_channel",
        "_context",
        "_done",
        "_feed",
        "_handler",
        "books",
        "market",
        "received",
    )

    def __init__(self, feed: MarketFeed, market: MarketInfo, queue_size: int) -> None:
        self._feed = feed
        self.market = market
        self.books: MarketBooks = feed.books.pair(market.condition_id)
        self._channel: Channel[list[MarketEvent]] = Channel(queue_size)
        self._handler: Handler | None = None
        self._context: contextvars.Context | None = None
        self._done: asyncio.Future[None] | None = None
        self.received = 0
        """Events handed to this stream, each already applied to :attr:`books`: minus
        the events taken, how far the books are ahead of the consumer."""

    def __repr__(self) -> str:
        return f"<MarketStream {self.market.condition_id[:10]}... backlog={len(self._channel)}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[MarketEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[MarketEvent]:
        """The market's events, each yielded after it was applied to the books.

        Yields:
            Every decoded event of the market (its ``market_resolved`` included).

        Raises:
            FeedStopped: If the market's connection failed for good; events received
                before are yielded first.
        """
        get = self._channel.get
        while True:
            try:
                batch = await get()
            except EOFError:
                return
            for event in batch:
                yield event

    async def serve(self, handler: Handler) -> None:
        """Hand every batch of the market's events to ``handler`` until the stream ends.

        The handler runs in the market's connection, right after the books took the
        batch, in (a copy of) the context of the task that called ``serve``, so that
        context variables (a supervisor's heartbeat, say) are its caller's: return None
        when done with it, or an awaitable (waiting for room in a
        queue, placing an order) that the connection awaits before it reads on, which
        pushes back on the server like a slow iterator does. Batches that arrived before
        ``serve`` was called are handled first, here.

        Args:
            handler: Takes a batch of events.

        Raises:
            FeedStopped: If the market's connection failed for good.
            Exception: What the handler raised, or the awaitable it returned; the stream
                is closed then.
            RuntimeError: If the stream is served already or closed.
        """
        if self._handler is not None or self._channel.closed:
            raise RuntimeError("this stream is served already, or closed")
        while (batch := self._channel.get_nowait()) is not None:
            pending = handler(batch)
            if pending is not None:
                await pending
        done = self._done = asyncio.get_running_loop().create_future()
        self._context = contextvars.copy_context()
        self._handler = handler
        try:
            await done
        finally:
            self._handler = None

    def _handle(self, batch: list[MarketEvent]) -> Awaitable[None] | None:
        """Call the handler (in the connection); an error ends the stream with it."""
        assert self._handler is not None
        assert self._context is not None
        try:
            pending = self._context.run(self._handler, batch)
        except Exception as exc:
            self._finish(exc)
            return None
        return None if pending is None else self._guard(pending)

    async def _guard(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        except Exception as exc:
            self._finish(exc)

    def _finish(self, error: BaseException | None) -> None:
        """End the stream: iteration sees the end (or ``error``), :meth:`serve` returns
        (or raises it)."""
        self._feed._detach(self)
        self._handler = None
        self._channel.close(error)
        done = self._done
        if done is not None and not done.done():
            if error is None:
                done.set_result(None)
            else:
                done.set_exception(error)

    @property
    def backlog(self) -> int:
        """Batches of events received and not yet taken."""
        return len(self._channel)

    @property
    def connected(self) -> bool:
        """Whether the connection carrying the market has a socket open."""
        connection = self._feed._owner.get(self.market.yes_token)
        return connection is not None and connection.ws is not None

    @property
    def silent_for(self) -> float | None:
        """Seconds since the market's connection last brought data; None if disconnected."""
        connection = self._feed._owner.get(self.market.yes_token)
        if connection is None:
            return None
        return connection.silent_for(asyncio.get_running_loop().time())

    @property
    def connection(self) -> str | None:
        """The name of the connection carrying the market, if any."""
        connection = self._feed._owner.get(self.market.yes_token)
        return None if connection is None else connection.name

    def close(self) -> None:
        """Stop receiving (the market stays subscribed); idempotent."""
        self._finish(None)


def _hand(stream: MarketStream, batch: list[MarketEvent]) -> Awaitable[None] | None:
    """Give ``batch`` to a stream: its handler, or its queue; what must be awaited, if any."""
    if stream._handler is not None:
        return stream._handle(batch)
    channel = stream._channel
    return None if channel.put_nowait(batch) else channel.put(batch)


class MarketFeed:
    """A Polymarket market-channel client: pooled connections, local books, recovery.

    ::

        async with MarketFeed(sim.ws_url, markets=markets) as feed:
            async for event in feed:
                book = feed.books[event.asset_id]  # already updated by the event

        # shared by many consumers, one per market:
        async with MarketFeed(url, markets=markets, deliver_events=False) as feed:
            async with await feed.attach(markets[0]) as stream:
                async for event in stream: ...

    Args:
        url: The market channel (``.../ws/market``); Polymarket's by default.
        asset_ids: Token ids to subscribe to.
        markets: Binary markets to subscribe to (both tokens), which also pairs their YES
            and NO books in :attr:`books`.
        policy: Reconnect policy of each connection; :func:`default_feed_policy` if None.
            Tests pass ``instant_policy()``.
        ping_interval: Seconds between ``PING`` frames.
        pong_timeout: Seconds after a ``PING`` without ``PONG`` after which the
            connection is dead.
        silence_timeout: Seconds without market data after which a connection is taken
            to be frozen; None turns the watchdog off (for rarely traded assets).
        resync_timeout: Seconds a stale book may wait for its fresh snapshot before its
            connection is opened again to get one.
        open_timeout: Seconds allowed for the opening handshake.
        close_timeout: Seconds allowed for the closing handshake before the socket is
            aborted.
        max_frame_bytes: Longer frames are refused unread (websockets closes the connection,
            code 1009), counted as invalid (``too_large``), and the connection reconnects.
        queue_size: Batches of events decoded ahead of each consumer before reading pauses.
        deliver_events: False for a feed used only for its books and its market streams:
            its own iterator gets nothing, so a feed nobody iterates never stalls.
        custom_feature_enabled: Ask for ``best_bid_ask``, ``new_market``, ``market_resolved``.
        assets_per_connection: Most assets on one connection (at most 500).
        on_lifecycle: Called with every ``new_market`` and ``market_resolved`` event (each
            connection may deliver its own copy); it must not block.
        name: Names the connections in logs (``<name>-1``, ``<name>-2`` ...).

    Raises:
        ConfigurationError: On an invalid URL, a non-positive interval, or
            ``assets_per_connection`` outside [2, 500].
    """

    def __init__(
        self,
        url: str = DEFAULT_MARKET_URL,
        asset_ids: Iterable[str] = (),
        *,
        markets: Iterable[MarketInfo] = (),
        policy: RestartPolicy | None = None,
        ping_interval: float = 10.0,
        pong_timeout: float = 30.0,
        silence_timeout: float | None = 60.0,
        resync_timeout: float = 10.0,
        open_timeout: float = 10.0,
        close_timeout: float = 2.0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        queue_size: int = 256,
        deliver_events: bool = True,
        custom_feature_enabled: bool = False,
        assets_per_connection: int = DEFAULT_ASSETS_PER_CONNECTION,
        on_lifecycle: Callable[[LifecycleEvent], object] | None = None,
        name: str = "market-feed",
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ConfigurationError(f"invalid market feed URL {url!r}: {exc}") from None
        for setting, value in (
            ("ping_interval", ping_interval),
            ("pong_timeout", pong_timeout),
            ("resync_timeout", resync_timeout),
            ("open_timeout", open_timeout),
            ("close_timeout", close_timeout),
            ("silence_timeout", 1.0 if silence_timeout is None else silence_timeout),
            ("max_frame_bytes", max_frame_bytes),
            ("queue_size", queue_size),
        ):
            if not value > 0:
                raise ConfigurationError(f"{setting} must be > 0, not {value!r}")
        if not 2 <= assets_per_connection <= MAX_ASSETS_PER_CONNECTION:
            raise ConfigurationError(
                f"assets_per_connection must be in [2, {MAX_ASSETS_PER_CONNECTION}], "
                f"not {assets_per_connection!r}"
            )
        self.url = url
        self.name = name
        self.assets_per_connection = assets_per_connection
        self._policy = policy or default_feed_policy()
        self._connection_policy = connection_policy(self._policy)
        self.supervisor = TaskSupervisor(
            name=name,
            # A socket's close is bounded by close_timeout; a little more for the rest.
            stop_timeout=close_timeout + 1.0,
            logger=_logger,
            observer=_Pool(self),
        )
        """The supervisor of the pool: one task per connection, each attempt a socket,
        restarted with ``policy``. A supervision tree may take it as a child (before
        :meth:`start`, or while running); otherwise it runs on its own."""
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._silence_timeout = silence_timeout
        self._resync_timeout = resync_timeout
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._max_frame_bytes = max_frame_bytes
        self._queue_size = queue_size
        self._custom = custom_feature_enabled
        self._on_lifecycle = on_lifecycle
        self._decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
        self._channel: Channel[list[MarketEvent]] | None = (
            Channel(queue_size) if deliver_events else None
        )
        self._delivered = 0
        self.books = BookSet()
        """The local books of every subscribed asset; see :class:`BookSet`."""
        self._market_assets: dict[str, tuple[str, ...]] = {}  # condition id -> its tokens
        self._assets: dict[str, None] = {}  # insertion-ordered set of every asset
        for market in markets:
            self._add_market(market)
        for asset_id in asset_ids:
            self.books.add(asset_id)
            self._assets[asset_id] = None
        self._connections: list[_Connection] = []
        self._owner: dict[str, _Connection] = {}
        self._streams: dict[str, MarketStream] = {}
        self._numbers = 0
        self._started = False
        self._closing = False
        self._stop_error: FeedStopped | None = None
        self._ready_waiters: list[asyncio.Future[None]] = []
        self._lock = asyncio.Lock()
        self._moves = 0
        # Counters of connections that left the pool, so totals never go down.
        self._past: dict[str, int] = {}
        self._past_invalid: dict[str, int] = {}
        self._past_error: str | None = None

    def __repr__(self) -> str:
        up = sum(connection.ws is not None for connection in self._connections)
        state = "connected" if self.connected else "disconnected"
        return (
            f"<MarketFeed {redact_url(self.url)} {state} connections={up}/{len(self._connections)} "
            f"assets={len(self._assets)}>"
        )

    def _add_market(self, market: MarketInfo) -> list[str]:
        """Track a market's books; the tokens not yet subscribed."""
        self.books.add_market(market.condition_id, market.yes_token, market.no_token)
        self._market_assets[market.condition_id] = market.token_ids
        added = [a for a in market.token_ids if a not in self._assets]
        self._assets.update(dict.fromkeys(added))
        return added

    # -- lifecycle ---------------------------------------------------------------------------

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
        """Open the pool's connections (``async with`` does this).

        Raises:
            RuntimeError: If the feed was started or closed before.
        """
        if self._started or self._closing:
            raise RuntimeError("a MarketFeed can be started only once")
        self._started = True
        groups = group_assets(self._market_assets, self._assets)
        if not groups:
            # A feed without assets still holds one connection: subscriptions come later.
            await self._new_connection().start()
            return
        for group in groups:
            connection = self._room_for(len(group))
            connection.assets.update(dict.fromkeys(group))
            for asset_id in group:
                self._owner[asset_id] = connection
        for connection in self._connections:
            await connection.start()

    async def aclose(self) -> None:
        """Close every connection and end every iteration; idempotent.

        It returns only once every socket is closed, even if the caller is cancelled while
        waiting (the cancellation is re-raised afterwards); each close is bounded by
        ``close_timeout``.
        """
        self._closing = True
        connections = list(self._connections)
        await shielded(asyncio.gather(*(c.close() for c in connections)))
        self._end(None)

    def _end(self, error: FeedStopped | None) -> None:
        """Close every channel and wake every waiter: the feed delivers nothing more."""
        if self._channel is not None:
            self._channel.close(error)
        for stream in list(self._streams.values()):
            stream._finish(error)
        self._wake_ready_waiters(error or FeedStopped(f"{self.name} was closed"))

    def _new_connection(self) -> _Connection:
        self._numbers += 1
        connection = _Connection(self, self._numbers)
        self._connections.append(connection)
        return connection

    def _room_for(self, size: int, *, exclude: _Connection | None = None) -> _Connection:
        """The first live connection with room for ``size`` more assets, or a new one."""
        limit = self.assets_per_connection
        for connection in self._connections:
            if (
                connection is not exclude
                and not connection.failed
                and len(connection.assets) + size <= limit
            ):
                return connection
        return self._new_connection()

    def _connection_ended(self, connection: _Connection, error: FeedStopped) -> None:
        """A connection gave up for good (``error``): its markets lose it."""
        if self._closing or connection not in self._connections:
            return
        self._stop_error = error
        # Its markets' consumers learn it; they may attach again, to a live connection.
        for asset_id in list(connection.assets):
            if self._owner.get(asset_id) is connection:
                del self._owner[asset_id]
        for condition_id, assets in self._market_assets.items():
            if assets[0] in connection.assets:
                stream = self._streams.get(condition_id)
                if stream is not None:
                    stream._finish(error)
        if self._channel is not None:
            self._channel.close(error)
        self._fold(connection)
        self._connections.remove(connection)
        self._wake_ready_waiters(error)
        # Once its supervisor has marked it stopped (right after telling us): forgotten.
        asyncio.get_running_loop().call_soon(self._forget, connection.name)

    def _forget(self, name: str) -> None:
        pool = self.supervisor
        if name in pool and pool.status(name) == "stopped":
            pool.delete_child(name)

    def _fold(self, connection: _Connection) -> None:
        """Keep the counters of a connection that leaves the pool."""
        stats = connection.stats()
        past = self._past
        for name in ("frames", "events", "invalid_frames", "pongs", "connections", "resyncs"):
            past[name] = past.get(name, 0) + getattr(stats, name)
        past["reconnects"] = past.get("reconnects", 0) + stats.reconnects
        past["invalid_operations"] = past.get("invalid_operations", 0) + connection.invalid_ops
        for kind, count in connection.invalid_by_kind.items():
            self._past_invalid[kind] = self._past_invalid.get(kind, 0) + count
        self._past_error = connection.last_error or self._past_error

    # -- delivery ----------------------------------------------------------------------------

    def _deliver(self, events: list[MarketEvent]) -> _Delivery | None:
        """Hand applied events to the feed's iterator and the market streams.

        Returns:
            What could not be queued without waiting, in order: the caller awaits each.
        """
        blocked: _Delivery | None = None
        channel = self._channel
        if channel is not None:
            self._delivered += len(events)
            if not channel.put_nowait(events):
                blocked = [channel.put(events)]
        streams = self._streams
        on_lifecycle = self._on_lifecycle
        if not streams and on_lifecycle is None:
            return blocked
        if len(events) == 1:
            event = events[0]
            stream = streams.get(event.market)
            if stream is not None:
                stream.received += 1
                waiting = _hand(stream, events)
                if waiting is not None:
                    blocked = blocked or []
                    blocked.append(waiting)
            if on_lifecycle is not None and type(event) in (NewMarket, MarketResolved):
                self._lifecycle(event)  # type: ignore[arg-type]
            return blocked
        by_market: dict[str, list[MarketEvent]] = {}
        for event in events:
            if event.market in streams:
                by_market.setdefault(event.market, []).append(event)
            if on_lifecycle is not None and type(event) in (NewMarket, MarketResolved):
                self._lifecycle(event)  # type: ignore[arg-type]
        for market, batch in by_market.items():
            stream = streams.get(market)
            if stream is None:
                continue  # a handler earlier in the frame ended it
            stream.received += len(batch)
            waiting = _hand(stream, batch)
            if waiting is not None:
                blocked = blocked or []
                blocked.append(waiting)
        return blocked

    def _lifecycle(self, event: LifecycleEvent) -> None:
        assert self._on_lifecycle is not None
        try:
            self._on_lifecycle(event)
        except Exception:
            _logger.exception("%s: the lifecycle hook raised", self.name)

    def __aiter__(self) -> AsyncIterator[MarketEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Every parsed event, in arrival order per connection, each yielded after it was
        applied to the books.

        Iterate from one task only. The iteration ends when the feed is closed.

        Yields:
            Every decoded market event; unknown event types are skipped.

        Raises:
            FeedStopped: If a connection failed for good (a fatal error, or the policy's
                restart budget spent); events received before are yielded first.
            RuntimeError: If the feed was never started, or made with
                ``deliver_events=False``.
        """
        if not self._started:
            raise RuntimeError("start the feed first: `async with MarketFeed(...) as feed:`")
        if self._channel is None:
            raise RuntimeError("this feed was created with deliver_events=False")
        get = self._channel.get
        while True:
            try:
                batch = await get()
            except EOFError:
                return
            for event in batch:
                yield event

    # -- subscriptions -----------------------------------------------------------------------

    async def attach(self, market: MarketInfo, *, queue_size: int | None = None) -> MarketStream:
        """A stream of one market's events, subscribing the market if it is not yet.

        A market's stream replaces none: attach once per market (close the stream to
        attach again). A market whose connection failed for good is subscribed again on a
        live connection.

        Args:
            market: The market.
            queue_size: Batches queued for the stream before its connection pauses;
                :data:`DEFAULT_STREAM_QUEUE` if None.

        Returns:
            The stream; close it (or leave its ``async with``) to stop receiving.

        Raises:
            RuntimeError: If a stream of that market is open, or the feed is closed.
        """
        if self._closing:
            raise RuntimeError(f"{self.name} is closed")
        condition_id = market.condition_id
        if condition_id in self._streams:
            raise RuntimeError(f"{condition_id} already has an open stream")
        if condition_id not in self._market_assets or market.yes_token not in self._owner:
            await self.subscribe(markets=[market])
        stream = MarketStream(self, market, queue_size or DEFAULT_STREAM_QUEUE)
        self._streams[condition_id] = stream
        return stream

    def _detach(self, stream: MarketStream) -> None:
        if self._streams.get(stream.market.condition_id) is stream:
            del self._streams[stream.market.condition_id]

    async def subscribe(
        self, asset_ids: Iterable[str] = (), *, markets: Iterable[MarketInfo] = ()
    ) -> None:
        """Add assets without reconnecting (operation frames on open connections).

        Each market (or lone asset) goes to the first connection with room, or to a new
        connection. Their books start unsynced; the server sends their snapshots.

        Args:
            asset_ids: Token ids.
            markets: Binary markets (both tokens, paired in :attr:`books`).
        """
        groups: list[tuple[str, ...]] = []
        for market in markets:
            self._add_market(market)
            if market.yes_token not in self._owner:
                groups.append(market.token_ids)
        for asset_id in asset_ids:
            self.books.add(asset_id)
            self._assets[asset_id] = None
            if asset_id not in self._owner:
                groups.append((asset_id,))
        if not self._started or not groups:
            return
        async with self._lock:
            placed: dict[_Connection, list[str]] = {}
            fresh: list[_Connection] = []
            for group in dict.fromkeys(groups):
                group = tuple(a for a in group if a not in self._owner)
                if not group:
                    continue
                known = len(self._connections)
                connection = self._room_for(len(group))
                if len(self._connections) > known:
                    fresh.append(connection)
                connection.assets.update(dict.fromkeys(group))
                for asset_id in group:
                    self._owner[asset_id] = connection
                    book = self.books.get(asset_id)
                    if book is not None:
                        book.invalidate()
                placed.setdefault(connection, []).extend(group)
            for connection, assets in placed.items():
                if connection in fresh:
                    continue  # its initial frame names them
                # Already in connection.assets: send the operation for them alone.
                connection.synced_once = False
                await connection._send_operation("subscribe", assets)
            for connection in fresh:
                await connection.start()
            # An empty connection kept for later subscriptions has done its job.
            await self._close_empty()

    async def unsubscribe(
        self, asset_ids: Iterable[str] = (), *, markets: Iterable[MarketInfo | str] = ()
    ) -> None:
        """Remove assets or markets (and their books) without reconnecting.

        A removed market's stream ends. Connections left empty close, and when the pool
        is larger than its assets need, it is rebalanced (:meth:`rebalance`).

        Args:
            asset_ids: Token ids; unknown ones are ignored.
            markets: Markets, or their condition ids.
        """
        removed: list[str] = []
        for item in markets:
            condition_id = item if isinstance(item, str) else item.condition_id
            removed.extend(self._market_assets.pop(condition_id, ()))
            stream = self._streams.get(condition_id)
            if stream is not None:
                stream._finish(None)
        removed.extend(asset_ids)
        removed = [a for a in dict.fromkeys(removed) if a in self._assets]
        if not removed:
            return
        async with self._lock:
            by_connection: dict[_Connection, list[str]] = {}
            for asset_id in removed:
                del self._assets[asset_id]
                self.books.remove(asset_id)
                connection = self._owner.pop(asset_id, None)
                if connection is not None:
                    by_connection.setdefault(connection, []).append(asset_id)
            for connection, assets in by_connection.items():
                await connection.remove(assets, moving=False)
            await self._close_empty()
        await self.rebalance()

    async def _close_empty(self) -> None:
        """Close connections left with no assets, keeping one if the pool would be empty."""
        for connection in list(self._connections):
            if connection.assets or len(self._connections) == 1:
                continue
            self._connections.remove(connection)
            self._fold(connection)
            await connection.close()

    async def rebalance(self) -> int:
        """Move markets off the emptiest connections while the pool has one too many.

        The pool needs ``ceil(assets / assets_per_connection)`` connections; while it has
        more, the least loaded connection's markets move (subscribe on the new connection,
        then unsubscribe on the old, never a reconnect) to connections with room, and the
        emptied connection closes. The moved books take a fresh snapshot.

        Returns:
            The markets (or lone assets) moved.
        """
        moved = 0
        async with self._lock:
            while True:
                live = [c for c in self._connections if not c.failed]
                needed = max(math.ceil(len(self._owner) / self.assets_per_connection), 1)
                if len(live) <= needed:
                    break
                source = min(live, key=lambda c: len(c.assets))
                groups = group_assets(
                    {
                        cid: assets
                        for cid, assets in self._market_assets.items()
                        if assets[0] in source.assets
                    },
                    source.assets,
                )
                targets: dict[_Connection, list[str]] = {}
                limit = self.assets_per_connection
                for group in groups:
                    group = tuple(a for a in group if a in source.assets)
                    target = next(
                        (
                            c
                            for c in live
                            if c is not source and len(c.assets) + len(group) <= limit
                        ),
                        None,
                    )
                    if target is None:
                        break
                    target.assets.update(dict.fromkeys(group))
                    for asset_id in group:
                        self._owner[asset_id] = target
                        book = self.books.get(asset_id)
                        if book is not None:
                            book.invalidate()
                    targets.setdefault(target, []).extend(group)
                    moved += 1
                for target, assets in targets.items():
                    target.synced_once = False
                    await target._send_operation("subscribe", assets)
                    await source.remove(assets, moving=True)
                if source.assets:
                    break  # the others had no room after all
                self._connections.remove(source)
                self._fold(source)
                await source.close()
        if moved:
            self._moves += moved
            _logger.info("%s: rebalanced, %d market(s) moved", self.name, moved)
        return moved

    @property
    def asset_ids(self) -> tuple[str, ...]:
        """The subscribed token ids, in subscription order."""
        return tuple(self._assets)

    @property
    def markets(self) -> tuple[str, ...]:
        """The condition ids of the subscribed markets."""
        return tuple(self._market_assets)

    # -- readiness ---------------------------------------------------------------------------

    async def wait_ready(self) -> None:
        """Wait until every connection is connected and every subscribed book synced.

        The live service ignores asset ids it does not know, and sends them no snapshot:
        bound the wait with ``asyncio.timeout()`` when the ids are not known to be good.

        Raises:
            FeedStopped: If a connection fails for good meanwhile.
            RuntimeError: If the feed was never started.
        """
        if not self._started:
            raise RuntimeError("start the feed first")
        if self._closing:
            raise FeedStopped(f"{self.name} was closed")
        if self._stop_error is not None and self._orphaned():
            raise FeedStopped(f"{self.name} has stopped") from self._stop_error
        if self._all_ready():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._ready_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._ready_waiters:
                self._ready_waiters.remove(waiter)

    def _orphaned(self) -> bool:
        """Whether some assets lost their connection (it failed for good)."""
        return len(self._owner) < len(self._assets)

    def _all_ready(self) -> bool:
        return (
            bool(self._connections)
            and not self._orphaned()
            and all(c.all_synced() for c in self._connections)
        )

    def _check_ready(self) -> None:
        if self._ready_waiters and self._all_ready():
            self._wake_ready_waiters(None)

    def _wake_ready_waiters(self, error: FeedStopped | None) -> None:
        waiters, self._ready_waiters = self._ready_waiters, []
        for waiter in waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    @property
    def connected(self) -> bool:
        """Whether every connection carrying assets has a socket open (and one exists)."""
        connections = self._connections
        return bool(connections) and all(
            c.ws is not None for c in connections if c.assets or len(connections) == 1
        )

    @property
    def events_received(self) -> int:
        """Events handed to the feed's own iterator (:meth:`events`), each already applied
        to :attr:`books`: minus the events taken, how far the books are ahead of the
        consumer. A cheap read."""
        return self._delivered

    @property
    def silent_for(self) -> float | None:
        """The shortest silence of the open connections, in seconds (see
        :attr:`FeedConnectionStats.silent_for`); None when none is open. Read it on the feed's
        event loop."""
        now = asyncio.get_running_loop().time()
        silences = [s for c in self._connections if (s := c.silent_for(now)) is not None]
        return min(silences) if silences else None

    def connections(self) -> list[FeedConnectionStats]:
        """A snapshot of each connection of the pool: assets, sync, silence, PONG wait."""
        return [connection.stats() for connection in self._connections]

    @property
    def stats(self) -> FeedStats:
        """A snapshot of the counters, summed over the connections (past ones included),
        and of each book's sync state."""
        past = self._past
        totals = {
            name: past.get(name, 0)
            for name in (
                "frames",
                "events",
                "invalid_frames",
                "pongs",
                "connections",
                "resyncs",
                "reconnects",
                "invalid_operations",
            )
        }
        invalid = dict(self._past_invalid)
        last_error = self._past_error
        for connection in self._connections:
            totals["frames"] += connection.frames
            totals["events"] += connection.events
            totals["invalid_frames"] += connection.invalid
            totals["pongs"] += connection.pongs
            totals["connections"] += connection.connections
            totals["resyncs"] += connection.resyncs
            totals["reconnects"] += max(connection.attempts - 1, 0)
            totals["invalid_operations"] += connection.invalid_ops
            for kind, count in connection.invalid_by_kind.items():
                invalid[kind] = invalid.get(kind, 0) + count
            last_error = connection.last_error or last_error
        return FeedStats(
            connected=self.connected,
            frames=totals["frames"],
            events=totals["events"],
            invalid_frames=totals["invalid_frames"],
            invalid_by_kind=invalid,
            invalid_operations=totals["invalid_operations"],
            pongs=totals["pongs"],
            connections=totals["connections"],
            reconnects=totals["reconnects"],
            resyncs=totals["resyncs"],
            dropped_updates=self.books.dropped_updates,
            last_error=last_error,
            synced={asset_id: book.synced for asset_id, book in self.books.items()},
            pool=len(self._connections),
            moves=self._moves,
        )
