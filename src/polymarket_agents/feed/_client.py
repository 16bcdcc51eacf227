"""``MarketFeed``: the market-channel websocket client the agents use.

One background task owns the connection. It opens one connection at a time and, when one
ends, waits the restart policy's backoff (the core's :class:`RestartPolicy`: classification,
exponential delays with jitter, the restart-intensity limit) before the next. The count of
consecutive failures starts again once a connection is subscribed and every book synced from
its snapshot, so a feed that drops every few seconds but syncs each time reconnects at the
first delay, not at the cap. A connection goes: open -> send the one initial subscribe frame
-> read frames until the socket drops or a watchdog closes it. A PONG watchdog (from the
first unanswered PING) and a data-silence watchdog raise
:class:`~polymarket_agents.feed.FeedTimeout` (a ``TimeoutError``: recoverable); a dropped
socket raises websockets' ``ConnectionClosed`` or an ``OSError`` (recoverable too).

No frame, however malformed, costs the connection: a binary frame, invalid UTF-8, JSON nested
100,000 deep, an empty array or a broken event is counted by its
:class:`~polymarket_agents.feed.InvalidKind` and skipped, with one WARNING per connection.
The one exception is a frame larger than four times ``max_frame_bytes``, which websockets
refuses to buffer (close code 1009): reading it would let a server exhaust memory.

Frames are decoded, applied to :attr:`MarketFeed.books`, and only then handed to the
consumer through a bounded channel: when the consumer falls behind, the reader stops reading
the socket (TCP pushes back on the server) and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidURI
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from polymarket_agents.core.async_utils import (
    ConfigurationError,
    ErrorClass,
    RestartPolicy,
    managed_resource,
)

from ._book import BookSet, SyncState
from ._channel import Channel
from ._errors import (
    DataSilence,
    FeedStopped,
    FeedTimeout,
    InvalidKind,
    InvalidMessage,
    PongTimeout,
    ResyncTimeout,
)
from ._gamma import MarketInfo
from ._messages import MarketEvent
from ._protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    PING,
    FrameDecoder,
    TextReply,
    encode_operation,
    encode_subscribe,
)
from ._redact import redact_text, redact_url

__all__ = [
    "DEFAULT_MARKET_URL",
    "MAX_ASSETS_PER_CONNECTION",
    "FeedStats",
    "MarketFeed",
    "default_feed_policy",
]

DEFAULT_MARKET_URL = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
"""Polymarket's market channel."""

MAX_ASSETS_PER_CONNECTION = 500
"""Polymarket's documented limit of assets per market-channel connection."""

_logger = logging.getLogger("polymarket_agents.feed")


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
    """A snapshot of a feed's counters.

    Attributes:
        connected: Whether a connection is open and subscribed.
        frames: Frames received, of every kind.
        events: Market events decoded (unknown event types excluded).
        invalid_frames: Frames that failed to decode, counted and skipped.
        invalid_by_kind: ``invalid_frames`` per :class:`InvalidKind` value.
        invalid_operations: ``INVALID OPERATION`` replies from the server.
        pongs: ``PONG`` replies.
        connections: Connections opened.
        reconnects: Connection attempts after the first one.
        resyncs: Snapshots requested again for books that went stale.
        dropped_updates: ``price_change`` entries dropped because their book was unsynced.
        last_error: The error that ended the last connection, as ``"Type: message"``.
        synced: Per subscribed asset, whether its book is synced.
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

    @property
    def ready(self) -> bool:
        """Connected, and every subscribed asset's book synced: what readiness checks read."""
        return self.connected and all(self.synced.values())


class MarketFeed:
    """A Polymarket market-channel client: parsed events, local books, automatic recovery.

    ::

        async with MarketFeed(sim.ws_url, ["<yes token>", "<no token>"]) as feed:
            async for event in feed:
                book = feed.books[event.asset_id]  # already updated by the event

    Args:
        url: The market channel (``.../ws/market``); Polymarket's by default.
        asset_ids: Token ids to subscribe to.
        markets: Binary markets to subscribe to (both tokens), which also pairs their YES
            and NO books in :attr:`books`.
        policy: Reconnect policy; :func:`default_feed_policy` if None. Tests pass
            ``instant_policy()``.
        ping_interval: Seconds between ``PING`` frames.
        pong_timeout: Seconds without ``PONG`` after which the connection is dead.
        silence_timeout: Seconds without market data after which the connection is taken
            to be frozen; None turns the watchdog off (for rarely traded assets).
        resync_timeout: Seconds a stale book may wait for its fresh snapshot before the
            connection is opened again to get one.
        open_timeout: Seconds allowed for the opening handshake.
        close_timeout: Seconds allowed for the closing handshake before the socket is
            aborted.
        max_frame_bytes: Longer frames are counted as invalid and skipped; frames over four
            times this size close the connection (websockets will not buffer them).
        queue_size: Frames decoded ahead of the consumer before reading pauses.
        deliver_events: False for a feed used only for its books: events are not queued,
            so a feed nobody iterates never stalls.
        custom_feature_enabled: Ask for ``best_bid_ask``, ``new_market``, ``market_resolved``.
        name: Names the connection task in logs.

    Raises:
        ConfigurationError: On an invalid URL or a non-positive interval.
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
        self.url = url
        self.name = name
        self._policy = policy or default_feed_policy()
        self._ping_interval = ping_interval
        self._pong_timeout = pong_timeout
        self._silence_timeout = silence_timeout
        self._resync_timeout = resync_timeout
        self._open_timeout = open_timeout
        self._close_timeout = close_timeout
        self._max_frame_bytes = max_frame_bytes
        self._deliver = deliver_events
        self._custom = custom_feature_enabled
        self._decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
        self._channel: Channel[list[MarketEvent]] = Channel(queue_size)
        self.books = BookSet()
        """The local books of every subscribed asset; see :class:`BookSet`."""
        self._assets: dict[str, None] = {}  # insertion-ordered set
        for market in markets:
            self.books.add_market(market.condition_id, market.yes_token, market.no_token)
            self._assets.update(dict.fromkeys(market.token_ids))
        for asset_id in asset_ids:
            self.books.add(asset_id)
            self._assets[asset_id] = None
        self._task: asyncio.Task[None] | None = None
        self._ws: _FeedConnection | None = None
        self._failures = 0
        self._synced_once = False
        self._fault: FeedTimeout | None = None
        self._stale_since: dict[str, float] = {}
        self._ready_waiters: list[asyncio.Future[None]] = []
        self._unanswered_since: float | None = None
        self._last_data = 0.0
        self._closing = False
        self._stop_error: BaseException | None = None
        # Counters, read through `stats`.
        self._frames = 0
        self._events = 0
        self._invalid = 0
        self._invalid_by_kind: dict[str, int] = {}
        self._invalid_ops = 0
        self._pongs = 0
        self._attempts = 0
        self._connections = 0
        self._resyncs = 0
        self._last_error: str | None = None

    def __repr__(self) -> str:
        state = "connected" if self._ws is not None else "disconnected"
        return f"<MarketFeed {redact_url(self.url)} {state} assets={len(self._assets)}>"

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
        """Start the connection task (``async with`` does this).

        Raises:
            RuntimeError: If the feed was started or closed before.
        """
        if self._task is not None or self._closing:
            raise RuntimeError("a MarketFeed can be started only once")
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-connection")

    async def aclose(self) -> None:
        """Stop the connection task and close the socket; idempotent.

        It returns only once the socket is closed, even if the caller is cancelled while
        waiting (the cancellation is re-raised afterwards); the close itself is bounded by
        ``close_timeout``.
        """
        self._closing = True
        task = self._task
        if task is None:
            self._channel.close()
            return
        task.cancel()
        cancelled = False
        while not task.done():
            try:
                await asyncio.wait((task,))
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError()

    async def _run(self) -> None:
        """The connection task: one connection after another until closed or given up."""
        error: FeedStopped | None = None
        try:
            await self._reconnect_loop()
            error = FeedStopped(f"{self.name}: the connection failed for good: {self._last_error}")
            error.__cause__ = self._stop_error
        finally:
            self._ws = None
            self._channel.close(error)
            self._wake_ready_waiters(error or FeedStopped(f"{self.name} was closed"))

    async def _reconnect_loop(self) -> None:
        """Connect, and after each failure wait the policy's backoff; return on a final one."""
        policy = self._policy
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        restart_times: deque[float] = deque()
        while True:
            self._synced_once = False
            try:
                await self._connection()
            except Exception as exc:
                if task.cancelling():
                    # A close turned our cancellation into another error (a handshake cut
                    # short, say); the cancellation still wins.
                    raise asyncio.CancelledError() from exc
                error_class = policy.classify_error(exc)
            else:  # pragma: no cover - _serve only ends by raising
                error_class = ErrorClass.RECOVERABLE
            # A connection that synced its books was a success: back off from the start.
            self._failures = 1 if self._synced_once else self._failures + 1
            give_up = _give_up_reason(policy, error_class, restart_times, loop.time())
            if give_up is not None:
                _logger.error("%s: not reconnecting (%s): %s", self.name, give_up, self._last_error)
                return
            delay = policy.delay(self._failures, error_class)
            _logger.log(
                logging.ERROR if error_class is ErrorClass.UNEXPECTED else logging.WARNING,
                "%s: connection lost (%s error, failure %d): %s; reconnecting in %.2f s",
                self.name,
                error_class.value,
                self._failures,
                self._last_error,
                delay,
                exc_info=self._stop_error if error_class is ErrorClass.UNEXPECTED else None,
                extra={"feed": self.name, "attempt": self._failures, "delay": delay},
            )
            await asyncio.sleep(delay)

    # -- one connection ----------------------------------------------------------------

    async def _connection(self) -> None:
        """Open one connection, subscribe, and read until it ends (always with an error)."""
        self._attempts += 1
        try:
            async with managed_resource(self._open, self._close_socket) as ws:
                await self._serve(ws)
        except Exception as exc:
            self._last_error = redact_text(f"{type(exc).__name__}: {exc}", (self.url,))
            self._stop_error = exc
            raise

    async def _open(self) -> _FeedConnection:
        ws = await connect(
            self.url,
            ping_interval=None,  # the protocol has its own PING/PONG heartbeat
            open_timeout=self._open_timeout,
            close_timeout=self._close_timeout,
            max_size=4 * self._max_frame_bytes,
            logger=_logger,
            create_connection=_FeedConnection,
        )
        assert isinstance(ws, _FeedConnection)
        return ws

    async def _close_socket(self, ws: _FeedConnection) -> None:
        await ws.close()

    async def _serve(self, ws: _FeedConnection) -> None:
        loop = asyncio.get_running_loop()
        self._connections += 1
        self._fault = None
        self._stale_since.clear()
        self._unanswered_since = None
        self._last_data = loop.time()
        # Fail closed: nothing from before this connection is trusted.
        self.books.invalidate_all()
        if len(self._assets) > MAX_ASSETS_PER_CONNECTION:
            _logger.warning(
                "%s: %d assets on one connection; Polymarket allows %d",
                self.name,
                len(self._assets),
                MAX_ASSETS_PER_CONNECTION,
            )
        await ws.send(encode_subscribe(self._assets, custom_feature_enabled=self._custom))
        self._ws = ws
        self._check_ready()
        _logger.info(
            "%s: connected to %s (connection %d), %d assets subscribed",
            self.name,
            redact_url(self.url),
            self._connections,
            len(self._assets),
        )
        heartbeat = asyncio.create_task(self._heartbeat(ws), name=f"{self.name}-heartbeat")
        try:
            await self._read(ws)
        finally:
            self._ws = None
            heartbeat.cancel()
            await asyncio.wait((heartbeat,))

    async def _read(self, ws: _FeedConnection) -> None:
        loop = asyncio.get_running_loop()
        decode = self._decoder.decode
        books = self.books
        channel = self._channel
        deliver = self._deliver
        binary = ws.binary_messages
        warned = False
        while True:
            try:
                frame = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                if self._fault is not None:
                    raise self._fault from exc
                raise
            self._frames += 1
            ws.messages_read += 1
            try:
                if binary and binary[0] == ws.messages_read:
                    binary.popleft()
                    raise InvalidMessage(frame, "a binary frame", InvalidKind.BINARY)
                result = decode(frame)
            except InvalidMessage as exc:
                self._invalid += 1
                kinds = self._invalid_by_kind
                kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
                # One warning per connection; a flood of bad frames must not flood the log.
                level = logging.DEBUG if warned else logging.WARNING
                warned = True
                _logger.log(level, "%s: skipping a frame: %s", self.name, exc)
                continue
            if isinstance(result, TextReply):
                if result is TextReply.PONG:
                    self._pongs += 1
                    self._unanswered_since = None
                else:
                    self._invalid_ops += 1
                    _logger.warning("%s: the server answered INVALID OPERATION", self.name)
                continue
            self._last_data = loop.time()
            if not result:
                continue
            self._events += len(result)
            snapshots = books.snapshots
            stale = books.apply(result)
            if stale:
                await self._resync(ws, stale)
            if books.snapshots != snapshots and (self._ready_waiters or not self._synced_once):
                self._check_ready()
            if deliver:
                await channel.put(result)

    async def _resync(self, ws: _FeedConnection, asset_ids: list[str]) -> None:
        """Ask for fresh snapshots: unsubscribe and subscribe again on this connection."""
        now = asyncio.get_running_loop().time()
        for asset_id in asset_ids:
            self._stale_since.setdefault(asset_id, now)
        self._resyncs += len(asset_ids)
        custom = self._custom
        await ws.send(encode_operation("unsubscribe", asset_ids, custom_feature_enabled=custom))
        await ws.send(encode_operation("subscribe", asset_ids, custom_feature_enabled=custom))

    async def _heartbeat(self, ws: _FeedConnection) -> None:
        """PING on schedule; watch PONGs, data silence and stale books; abort when dead."""
        loop = asyncio.get_running_loop()
        limits = [self._ping_interval, self._pong_timeout / 3, self._resync_timeout / 3]
        if self._silence_timeout is not None:
            limits.append(self._silence_timeout / 3)
        tick = min(limits)
        next_ping = loop.time() + self._ping_interval
        try:
            while True:
                await asyncio.sleep(tick)
                now = loop.time()
                if self._channel.blocked:
                    # The reader is waiting for the consumer, not the server: PONGs and data
                    # sit unread in the socket, which says nothing about the connection.
                    self._last_data = now
                    if self._unanswered_since is not None:
                        self._unanswered_since = now
                fault = self._check_liveness(now)
                if fault is not None:
                    _logger.warning("%s: %s; reconnecting", self.name, fault)
                    self._fault = fault
                    ws.transport.abort()
                    return
                if now >= next_ping:
                    next_ping = now + self._ping_interval
                    if self._unanswered_since is None:
                        # The PONG timer runs from the first PING left unanswered.
                        self._unanswered_since = now
                    await ws.send(PING)
        except ConnectionClosed:
            return  # the reader sees the same closure and reports it

    def _check_liveness(self, now: float) -> FeedTimeout | None:
        """The watchdog that fired, if any."""
        unanswered = self._unanswered_since
        if unanswered is not None and now - unanswered > self._pong_timeout:
            return PongTimeout(f"no PONG for {now - unanswered:.1f} s after a PING")
        silence = self._silence_timeout
        # With nothing subscribed, silence is what the server owes us.
        if silence is not None and self._assets and now - self._last_data > silence:
            return DataSilence(f"PONGs but no market data for {now - self._last_data:.1f} s")
        stale_since = self._stale_since
        if stale_since:
            for asset_id in list(stale_since):
                book = self.books.get(asset_id)
                if book is None or book.state is SyncState.SYNCED:
                    del stale_since[asset_id]
                elif now - stale_since[asset_id] > self._resync_timeout:
                    return ResyncTimeout(
                        f"the book of {asset_id} stayed stale for {self._resync_timeout:g} s"
                    )
        return None

    # -- subscriptions -----------------------------------------------------------------

    async def subscribe(
        self, asset_ids: Iterable[str] = (), *, markets: Iterable[MarketInfo] = ()
    ) -> None:
        """Add assets without reconnecting (an ``operation`` frame on the open connection).

        Their books start unsynced; the server sends their snapshots. If no connection is
        open, the next one subscribes to them.

        Args:
            asset_ids: Token ids.
            markets: Binary markets (both tokens, paired in :attr:`books`).
        """
        added: list[str] = []
        for market in markets:
            self.books.add_market(market.condition_id, market.yes_token, market.no_token)
            added.extend(a for a in market.token_ids if a not in self._assets)
        for asset_id in asset_ids:
            self.books.add(asset_id)
            if asset_id not in self._assets:
                added.append(asset_id)
        added = list(dict.fromkeys(added))
        self._assets.update(dict.fromkeys(added))
        await self._send_operation("subscribe", added)

    async def unsubscribe(self, asset_ids: Iterable[str]) -> None:
        """Remove assets (and their books) without reconnecting.

        Args:
            asset_ids: Token ids; unknown ones are ignored.
        """
        removed = [a for a in dict.fromkeys(asset_ids) if a in self._assets]
        for asset_id in removed:
            del self._assets[asset_id]
            self.books.remove(asset_id)
            self._stale_since.pop(asset_id, None)
        await self._send_operation("unsubscribe", removed)

    async def _send_operation(
        self, operation: Literal["subscribe", "unsubscribe"], asset_ids: list[str]
    ) -> None:
        ws = self._ws
        if not asset_ids or ws is None:
            return
        try:
            await ws.send(
                encode_operation(operation, asset_ids, custom_feature_enabled=self._custom)
            )
        except ConnectionClosed:
            pass  # the next connection's initial frame covers the current set

    @property
    def asset_ids(self) -> tuple[str, ...]:
        """The subscribed token ids, in subscription order."""
        return tuple(self._assets)

    # -- consuming -----------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[MarketEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[MarketEvent]:
        """Parsed events, in arrival order, each yielded after it was applied to the books.

        Iterate from one task only. The iteration ends when the feed is closed.

        Yields:
            Every decoded market event; unknown event types are skipped.

        Raises:
            FeedStopped: If the connection failed for good (a fatal error, or the policy's
                restart budget spent); events received before are yielded first.
            RuntimeError: If the feed was never started.
        """
        if self._task is None:
            raise RuntimeError("start the feed first: `async with MarketFeed(...) as feed:`")
        if not self._deliver:
            raise RuntimeError("this feed was created with deliver_events=False")
        get = self._channel.get
        while True:
            try:
                batch = await get()
            except EOFError:
                return
            for event in batch:
                yield event

    async def wait_ready(self) -> None:
        """Wait until connected and every subscribed book is synced.

        The live service ignores asset ids it does not know, and sends them no snapshot:
        bound the wait with ``asyncio.timeout()`` when the ids are not known to be good.

        Raises:
            FeedStopped: If the connection fails for good meanwhile.
            RuntimeError: If the feed was never started.
        """
        if self._task is None:
            raise RuntimeError("start the feed first")
        if self._task.done():
            raise FeedStopped(f"{self.name} has stopped")
        if self._ws is not None and self.books.all_synced:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._ready_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._ready_waiters:
                self._ready_waiters.remove(waiter)

    def _check_ready(self) -> None:
        if self._ws is not None and self.books.all_synced:
            self._synced_once = True
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
        """Whether a connection is open and subscribed."""
        return self._ws is not None

    @property
    def silent_for(self) -> float | None:
        """Seconds since the open connection last brought market data (or opened); None
        when no connection is open. Read it on the feed's event loop."""
        if self._ws is None:
            return None
        return asyncio.get_running_loop().time() - self._last_data

    @property
    def stats(self) -> FeedStats:
        """A snapshot of the counters and of each book's sync state."""
        return FeedStats(
            connected=self._ws is not None,
            frames=self._frames,
            events=self._events,
            invalid_frames=self._invalid,
            invalid_by_kind=dict(self._invalid_by_kind),
            invalid_operations=self._invalid_ops,
            pongs=self._pongs,
            connections=self._connections,
            reconnects=max(self._attempts - 1, 0),
            resyncs=self._resyncs,
            dropped_updates=self.books.dropped_updates,
            last_error=self._last_error,
            synced={asset_id: book.synced for asset_id, book in self.books.items()},
        )


def _give_up_reason(
    policy: RestartPolicy, error_class: ErrorClass, restart_times: deque[float], now: float
) -> str | None:
    """Why the feed should not reconnect after a failure of ``error_class``, or None."""
    if error_class is ErrorClass.FATAL:
        return "fatal error"
    if policy.max_restarts is not None:
        while restart_times and restart_times[0] <= now - policy.restart_window:
            restart_times.popleft()
        if len(restart_times) >= policy.max_restarts:
            return (
                f"restart intensity exceeded ({policy.max_restarts} restarts "
                f"in {policy.restart_window:g} s)"
            )
        restart_times.append(now)
    return None


class _FeedConnection(ClientConnection):
    """A client connection that remembers which received messages were binary.

    ``recv(decode=False)`` returns text and binary messages alike as bytes, and letting it
    decode text instead would close the connection (1007) on a text frame holding invalid
    UTF-8. So the first frame of every message is noted here as it arrives: a binary one by
    its number, which the reader compares with the number of the message it reads.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages_received = 0
        self.messages_read = 0
        self.binary_messages: deque[int] = deque()

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            opcode = event.opcode
            if opcode is Opcode.TEXT:
                self.messages_received += 1
            elif opcode is Opcode.BINARY:
                self.messages_received += 1
                self.binary_messages.append(self.messages_received)
        super().process_event(event)
