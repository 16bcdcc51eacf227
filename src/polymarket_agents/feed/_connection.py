"""One connection of a feed's pool: its assets, its socket, its heartbeat and watchdogs.

A connection carries at most ``assets_per_connection`` assets of its :class:`MarketFeed`.
It is a task of the feed's supervisor (:attr:`MarketFeed.supervisor`, a
:class:`~polymarket_agents.core.async_utils.TaskSupervisor`) whose every attempt is one
socket: when a socket ends, the core's machinery restarts the attempt after the policy's
backoff (classification, exponential delays with jitter, a server's ``Retry-After``, the
restart-intensity limit) and counts it in the task's metrics; a final failure ends the
connection. The count of consecutive failures starts again once a socket is subscribed and
every book of the connection synced from its snapshot (the supervisor's ``reset_backoff``),
so a feed that drops every few seconds but syncs each time reconnects at the first delay,
not at the cap. A socket goes: open -> send the one initial subscribe frame (exactly this
connection's assets) -> read frames until it drops or a watchdog closes it. A PONG watchdog
(from the first unanswered PING), a data-silence watchdog and a resync watchdog raise
:class:`~polymarket_agents.feed.FeedTimeout` (a ``TimeoutError``: recoverable); a dropped
socket raises websockets' ``ConnectionClosed`` or an ``OSError`` (recoverable too).

No frame, however malformed, costs the connection: a binary frame, invalid UTF-8, JSON nested
100,000 deep, an empty array or a broken event is counted by its
:class:`~polymarket_agents.feed.InvalidKind` and skipped, with one WARNING per socket. The one
exception is a frame larger than ``max_frame_bytes``: websockets refuses it from its header,
before buffering any of it (close code 1009), since reading it would let a server make the
client hold that much memory per connection. It is counted as ``too_large`` all the same, and
the connection reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email.utils
import functools
import inspect
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode

from polymarket_agents.core.async_utils import (
    ErrorClass,
    RestartPolicy,
    managed_resource,
    shielded,
)

from ._book import SyncState
from ._errors import (
    DataSilence,
    FeedStopped,
    FeedTimeout,
    InvalidKind,
    InvalidMessage,
    PongTimeout,
    ResyncTimeout,
)
from ._messages import MarketEvent, PriceLevelChange
from ._protocol import PING, TextReply, encode_operation, encode_subscribe
from ._redact import redact_text, redact_url

if TYPE_CHECKING:
    from ._client import MarketFeed

__all__ = ["FeedConnectionStats"]

_logger = logging.getLogger("polymarket_agents.feed")

_SYNCED = SyncState.SYNCED


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedConnectionStats:
    """A snapshot of one connection of a feed's pool: what readiness checks and dashboards
    read to tell which markets a network fault touches.

    Attributes:
        number: The connection's number in its feed (1, 2, ...), as in its name.
        name: ``<feed name>-<number>``, as in logs.
        connected: Whether a socket is open and subscribed.
        assets: Assets it carries.
        synced: Of those, how many books are synced.
        frames: Frames received.
        events: Market events decoded.
        invalid_frames: Frames counted as invalid and skipped.
        pongs: ``PONG`` replies.
        connections: Sockets opened.
        reconnects: Socket attempts after the first.
        resyncs: Snapshots requested again for stale books.
        silent_for: Seconds since the open socket last brought market data (or opened);
            None while disconnected.
        unanswered_for: Seconds since the first ``PING`` still without ``PONG``; None when
            every ``PING`` was answered or while disconnected.
        last_error: The error that ended the last socket, as ``"Type: message"``.
        failed: Whether the connection gave up for good (a fatal error, or the policy's
            restart budget spent).
    """

    number: int
    name: str
    connected: bool
    assets: int
    synced: int
    frames: int
    events: int
    invalid_frames: int
    pongs: int
    connections: int
    reconnects: int
    resyncs: int
    silent_for: float | None
    unanswered_for: float | None
    last_error: str | None
    failed: bool


class _Connection:
    """One pooled connection; see the module docstring."""

    def __init__(self, feed: MarketFeed, number: int) -> None:
        self.feed = feed
        self.number = number
        self.name = f"{feed.name}-{number}"
        self.assets: dict[str, None] = {}  # insertion-ordered set
        # Assets moved off this connection: their late events are dropped until the server
        # has provably seen the unsubscribe (the PONG to a PING sent after it: PONGs answer
        # PINGs in order, so it is the socket's PONG number `_leaving_until_pongs`).
        self.leaving: set[str] = set()
        self._leaving_until_pongs = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # once started
        self.ws: _FeedConnection | None = None
        self.failed = False
        self.blocked = False
        """Whether the reader waits for a consumer (then the socket says nothing)."""
        self.synced_once = False
        self._fault: FeedTimeout | None = None
        self._stale_since: dict[str, float] = {}
        self._unanswered_since: float | None = None
        self._last_data = 0.0
        self._stop_error: BaseException | None = None
        # Counters, read through `stats`.
        self.frames = 0
        self.events = 0
        self.invalid = 0
        self.invalid_by_kind: dict[str, int] = {}
        self.invalid_ops = 0
        self.pongs = 0
        self.attempts = 0
        self.connections = 0
        self.resyncs = 0
        self.last_error: str | None = None

    def __repr__(self) -> str:
        state = "connected" if self.ws is not None else "failed" if self.failed else "down"
        return f"<connection {self.name} {state} assets={len(self.assets)}>"

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the connection as a task of the feed's supervisor."""
        feed = self.feed
        await feed.supervisor.start_task(self.name, self.attempt, policy=feed._connection_policy)

    async def close(self) -> None:
        """Stop the task and close the socket; returns once closed, even when cancelled.

        The connection then leaves the feed's supervisor (its counters are the feed's)."""
        pool = self.feed.supervisor
        if self.name not in pool:
            return
        if await shielded(pool.stop_task(self.name)):
            pool.delete_child(self.name)

    async def attempt(self) -> None:
        """One socket, from opening to its end: what the supervisor restarts.

        Raises:
            Exception: Whatever ended the socket (always something: a socket is read until
                it drops or a watchdog closes it), with a server's ``Retry-After`` as its
                ``retry_after`` for the policy.
        """
        self._loop = asyncio.get_running_loop()
        self.synced_once = False
        try:
            await self._connection()
        except Exception as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A close turned our cancellation into another error (a handshake cut
                # short, say); the cancellation still wins.
                raise asyncio.CancelledError() from exc
            # A server that refused us with a Retry-After (a 429, a 503) is waited for.
            hint = retry_after_header(exc)
            if hint:
                with contextlib.suppress(AttributeError):
                    exc.retry_after = hint  # type: ignore[attr-defined]
            raise

    def gave_up(self) -> None:
        """The supervisor will not restart the connection (a fatal error, or the policy's
        restart intensity exceeded): its markets' consumers are told (the feed)."""
        self.failed = True
        self.ws = None
        error = FeedStopped(f"{self.name}: the connection failed for good: {self.last_error}")
        error.__cause__ = self._stop_error
        self.feed._connection_ended(self, error)

    # -- one socket --------------------------------------------------------------------------

    async def _connection(self) -> None:
        """Open one socket, subscribe, and read until it ends (always with an error)."""
        self.attempts += 1
        try:
            async with managed_resource(self._open, self._close_socket) as ws:
                await self._serve(ws)
        except Exception as exc:
            self.last_error = redact_text(f"{type(exc).__name__}: {exc}", (self.feed.url,))
            self._stop_error = exc
            raise

    async def _open(self) -> _FeedConnection:
        feed = self.feed
        ws = await connect(
            feed.url,
            ping_interval=None,  # the protocol has its own PING/PONG heartbeat
            open_timeout=feed._open_timeout,
            close_timeout=feed._close_timeout,
            # The decoder's own limit: a frame the decoder would refuse is never buffered.
            max_size=feed._max_frame_bytes,
            logger=_logger,
            create_connection=_FeedConnection,
        )
        assert isinstance(ws, _FeedConnection)
        return ws

    async def _close_socket(self, ws: _FeedConnection) -> None:
        await ws.close()

    async def _serve(self, ws: _FeedConnection) -> None:
        loop = asyncio.get_running_loop()
        feed = self.feed
        self.connections += 1
        self._fault = None
        self._stale_since.clear()
        self._unanswered_since = None
        self._last_data = loop.time()
        # The initial frame names exactly this connection's assets: nothing left over from
        # before is expected, so nothing need be filtered.
        self.leaving.clear()
        # Fail closed: nothing from before this socket is trusted.
        books = feed.books
        for asset_id in self.assets:
            book = books.get(asset_id)
            if book is not None:
                book.invalidate()
        initial = encode_subscribe(self.assets, custom_feature_enabled=feed._custom)
        # Set before the send yields: an asset added meanwhile goes out as an operation
        # frame, after the initial frame, instead of being missed by both.
        self.ws = ws
        await ws.send(initial)
        self._check_synced()
        _logger.info(
            "%s: connected to %s (socket %d), %d assets subscribed",
            self.name,
            redact_url(feed.url),
            self.connections,
            len(self.assets),
        )
        heartbeat = asyncio.create_task(self._heartbeat(ws), name=f"{self.name}-heartbeat")
        try:
            await self._read(ws)
        finally:
            self.ws = None
            heartbeat.cancel()
            await asyncio.wait((heartbeat,))

    async def _read(self, ws: _FeedConnection) -> None:
        loop = asyncio.get_running_loop()
        feed = self.feed
        decode = feed._decoder.decode
        books = feed.books
        deliver = feed._deliver
        binary = ws.binary_messages
        leaving = self.leaving
        warned = False
        while True:
            try:
                frame = await ws.recv(decode=False)
            except ConnectionClosed as exc:
                if exc.sent is not None and exc.sent.code == CloseCode.MESSAGE_TOO_BIG:
                    self.invalid += 1
                    kinds = self.invalid_by_kind
                    kinds[InvalidKind.TOO_LARGE] = kinds.get(InvalidKind.TOO_LARGE, 0) + 1
                    _logger.warning(
                        "%s: a frame over %d bytes was refused unread; reconnecting",
                        self.name,
                        feed._max_frame_bytes,
                    )
                if self._fault is not None:
                    raise self._fault from exc
                raise
            self.frames += 1
            ws.messages_read += 1
            try:
                if binary and binary[0] == ws.messages_read:
                    binary.popleft()
                    raise InvalidMessage(frame, "a binary frame", InvalidKind.BINARY)
                result = decode(frame)
            except InvalidMessage as exc:
                self.invalid += 1
                kinds = self.invalid_by_kind
                kinds[exc.kind] = kinds.get(exc.kind, 0) + 1
                # One warning per socket; a flood of bad frames must not flood the log.
                level = logging.DEBUG if warned else logging.WARNING
                warned = True
                _logger.log(level, "%s: skipping a frame: %s", self.name, exc)
                continue
            if type(result) is TextReply:
                if result is TextReply.PONG:
                    self.pongs += 1
                    ws.pongs += 1
                    if ws.pongs >= ws.pings:
                        self._unanswered_since = None
                    if leaving and ws.pongs >= self._leaving_until_pongs:
                        leaving.clear()
                else:
                    self.invalid_ops += 1
                    _logger.warning("%s: the server answered INVALID OPERATION", self.name)
                continue
            self._last_data = loop.time()
            events: list[MarketEvent] = result  # type: ignore[assignment]
            if not events:
                continue
            if leaving:
                events = [e for e in events if not _concerns(e, leaving)]
                if not events:
                    continue
            self.events += len(events)
            snapshots = books.snapshots
            stale = books.apply(events)
            if stale:
                await self._resync(ws, stale)
            if books.snapshots != snapshots:
                self._check_synced()
            blocked = deliver(events)
            if blocked:
                self.blocked = True
                try:
                    while blocked:
                        await blocked.pop(0)
                finally:
                    self.blocked = False
                    for waiting in blocked:  # cancelled on the way: never awaited
                        if inspect.iscoroutine(waiting):
                            waiting.close()

    def _check_synced(self) -> None:
        """Note a first full sync of this socket's books; tell the feed's ready waiters."""
        if self.ws is None:
            return
        if not self.synced_once:
            books = self.feed.books
            for asset_id in self.assets:
                book = books.get(asset_id)
                if book is not None and book.state is not _SYNCED:
                    return
            self.synced_once = True
            pool = self.feed.supervisor
            if self.name in pool:
                pool.reset_backoff(self.name)  # this socket was a success
        self.feed._check_ready()

    def all_synced(self) -> bool:
        """Whether a socket is open and every book of this connection is synced."""
        if self.ws is None:
            return False
        books = self.feed.books
        for asset_id in self.assets:
            book = books.get(asset_id)
            if book is not None and book.state is not _SYNCED:
                return False
        return True

    async def _resync(self, ws: _FeedConnection, asset_ids: list[str]) -> None:
        """Ask for fresh snapshots: unsubscribe and subscribe again on this socket."""
        now = asyncio.get_running_loop().time()
        for asset_id in asset_ids:
            self._stale_since.setdefault(asset_id, now)
        self.resyncs += len(asset_ids)
        custom = self.feed._custom
        await ws.send(encode_operation("unsubscribe", asset_ids, custom_feature_enabled=custom))
        await ws.send(encode_operation("subscribe", asset_ids, custom_feature_enabled=custom))

    async def _heartbeat(self, ws: _FeedConnection) -> None:
        """PING on schedule; watch PONGs, data silence and stale books; abort when dead."""
        loop = asyncio.get_running_loop()
        feed = self.feed
        limits = [feed._ping_interval, feed._pong_timeout / 3, feed._resync_timeout / 3]
        if feed._silence_timeout is not None:
            limits.append(feed._silence_timeout / 3)
        tick = min(limits)
        next_ping = loop.time() + feed._ping_interval
        try:
            while True:
                await asyncio.sleep(tick)
                now = loop.time()
                if self.blocked:
                    # The reader is waiting for a consumer, not the server: PONGs and data
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
                    next_ping = now + feed._ping_interval
                    await self.ping(ws, now)
        except ConnectionClosed:
            return  # the reader sees the same closure and reports it

    async def ping(self, ws: _FeedConnection, now: float) -> None:
        if self._unanswered_since is None:
            # The PONG timer runs from the first PING left unanswered.
            self._unanswered_since = now
        ws.pings += 1
        await ws.send(PING)

    def _check_liveness(self, now: float) -> FeedTimeout | None:
        """The watchdog that fired, if any."""
        feed = self.feed
        unanswered = self._unanswered_since
        if unanswered is not None and now - unanswered > feed._pong_timeout:
            return PongTimeout(f"no PONG for {now - unanswered:.1f} s after a PING")
        silence = feed._silence_timeout
        # With nothing subscribed, silence is what the server owes us.
        if silence is not None and self.assets and now - self._last_data > silence:
            return DataSilence(f"PONGs but no market data for {now - self._last_data:.1f} s")
        stale_since = self._stale_since
        if stale_since:
            books = feed.books
            for asset_id in list(stale_since):
                book = books.get(asset_id)
                if book is None or book.state is _SYNCED or asset_id not in self.assets:
                    del stale_since[asset_id]
                elif now - stale_since[asset_id] > feed._resync_timeout:
                    return ResyncTimeout(
                        f"the book of {asset_id} stayed stale for {feed._resync_timeout:g} s"
                    )
        return None

    # -- subscriptions -----------------------------------------------------------------------

    async def add(self, asset_ids: list[str]) -> None:
        """Carry ``asset_ids`` too: an operation frame on the open socket, if any."""
        if not asset_ids:
            return
        self.assets.update(dict.fromkeys(asset_ids))
        for asset_id in asset_ids:
            self.leaving.discard(asset_id)
        self.synced_once = self.synced_once and not asset_ids
        await self._send_operation("subscribe", asset_ids)

    async def remove(self, asset_ids: list[str], *, moving: bool) -> None:
        """Stop carrying ``asset_ids``; ``moving``: another connection takes them over."""
        if not asset_ids:
            return
        for asset_id in asset_ids:
            self.assets.pop(asset_id, None)
            self._stale_since.pop(asset_id, None)
        ws = self.ws
        if moving and ws is not None:
            self.leaving.update(asset_ids)
            # The PONG to the PING sent right after the unsubscribe proves the server saw it.
            self._leaving_until_pongs = ws.pings + 1
        await self._send_operation("unsubscribe", asset_ids)
        if moving and ws is not None and self.ws is ws:
            try:
                await self.ping(ws, asyncio.get_running_loop().time())
            except ConnectionClosed:
                pass  # the next socket subscribes exactly the assets that stayed

    async def _send_operation(
        self, operation: Literal["subscribe", "unsubscribe"], asset_ids: list[str]
    ) -> None:
        ws = self.ws
        if ws is None:
            return
        try:
            await ws.send(
                encode_operation(operation, asset_ids, custom_feature_enabled=self.feed._custom)
            )
        except ConnectionClosed:
            pass  # the next socket's initial frame covers the current set

    # -- reporting ---------------------------------------------------------------------------

    def silent_for(self, now: float) -> float | None:
        return None if self.ws is None else now - self._last_data

    def stats(self) -> FeedConnectionStats:
        now = self._loop.time() if self._loop is not None else 0.0
        books = self.feed.books
        synced = 0
        for asset_id in self.assets:
            book = books.get(asset_id)
            if book is not None and book.state is _SYNCED:
                synced += 1
        unanswered = self._unanswered_since
        return FeedConnectionStats(
            number=self.number,
            name=self.name,
            connected=self.ws is not None,
            assets=len(self.assets),
            synced=synced,
            frames=self.frames,
            events=self.events,
            invalid_frames=self.invalid,
            pongs=self.pongs,
            connections=self.connections,
            reconnects=max(self.attempts - 1, 0),
            resyncs=self.resyncs,
            silent_for=self.silent_for(now),
            unanswered_for=None if unanswered is None or self.ws is None else now - unanswered,
            last_error=self.last_error,
            failed=self.failed,
        )


def _concerns(event: MarketEvent, assets: set[str]) -> bool:
    """Whether ``event`` is about one of ``assets`` (a price change: its first entry's)."""
    asset_id: str = getattr(event, "asset_id", "")
    if asset_id:
        return asset_id in assets
    changes: tuple[PriceLevelChange, ...] = getattr(event, "price_changes", ())
    return bool(changes) and changes[0].asset_id in assets


def connection_policy(policy: RestartPolicy) -> RestartPolicy:
    """What a connection's sockets are restarted by: ``policy``, with the feed's knowledge
    of websockets' errors (unless it classifies errors itself) and no reset by time: the
    count of failures starts again when a socket synced its books instead."""
    classify = policy.classify or functools.partial(_classify, policy)
    return dataclasses.replace(policy, classify=classify, reset_after=math.inf)


def _classify(policy: RestartPolicy, exc: BaseException) -> ErrorClass:
    """The policy's class of ``exc``, with the feed's own knowledge of websockets first.

    The core classifies the standard library's errors only; websockets' are the feed's to
    tell. A dropped socket (``ConnectionClosed``) is recoverable. A refused handshake (a 404
    for a wrong path, a 401 or 403) will not heal by itself, but a proxy's 502 or 503 will,
    and a 429 asks to come back later, so handshake errors are told apart by status rather
    than all called transient. A malformed URL stays malformed.
    """
    if policy.classify is None:
        if isinstance(exc, InvalidHandshake):
            status = _status(exc)
            if status is not None and 400 <= status < 500 and status not in (408, 429):
                return ErrorClass.FATAL
            return ErrorClass.RECOVERABLE
        if isinstance(exc, ConnectionClosed):
            return ErrorClass.RECOVERABLE
        if isinstance(exc, InvalidURI):
            return ErrorClass.FATAL
    return policy.classify_error(exc)


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a refused handshake (websockets' ``InvalidStatus``), if any."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def retry_after_header(exc: BaseException | None, now: float | None = None) -> float:
    """Seconds a refused handshake's ``Retry-After`` header asks to wait (0 if none).

    The header holds seconds or an HTTP date (RFC 9110 section 10.2.3); a date in the past,
    or anything unreadable, asks for nothing.

    Args:
        exc: What the connection attempt raised.
        now: The wall clock for a date, ``time.time()`` if None.
    """
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("Retry-After") if headers is not None else None
    if not isinstance(value, str):
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def group_assets(
    markets: Mapping[str, tuple[str, ...]], asset_ids: Iterable[str]
) -> list[tuple[str, ...]]:
    """Placement units: a market's tokens stay together (a price change covers both)."""
    groups: list[tuple[str, ...]] = list(markets.values())
    grouped = {a for group in groups for a in group}
    groups.extend((a,) for a in asset_ids if a not in grouped)
    return groups


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
        self.pings = 0
        self.pongs = 0

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame):
            opcode = event.opcode
            if opcode is Opcode.TEXT:
                self.messages_received += 1
            elif opcode is Opcode.BINARY:
                self.messages_received += 1
                self.binary_messages.append(self.messages_received)
        super().process_event(event)
