"""The market-channel wire protocol, Sans-I/O: frames in, events out, and the reverse.

Nothing here touches a socket or an event loop, so the client and the simulator share it
and tests drive it directly.

Server to client, a text frame is one of:

* ``PONG`` or ``INVALID OPERATION``: plain text, never JSON (:class:`TextReply`);
* one JSON event object, or a JSON array of them (the initial dump is one array of books).

Client to server: one initial subscribe frame per connection, then ``operation`` frames to
add or remove assets, and the text ``PING`` every ten seconds.
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Iterable
from typing import Literal, TypeAlias

import msgspec

from ._errors import InvalidKind, InvalidMessage
from ._messages import (
    BestBidAsk,
    Book,
    LastTradePrice,
    MarketEvent,
    MarketResolved,
    NewMarket,
    PriceChange,
    TickSizeChange,
)

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "EVENT_TYPES",
    "PING",
    "ClientFrame",
    "FrameDecoder",
    "Operation",
    "Subscribe",
    "TextReply",
    "decode_client_frame",
    "encode_events",
    "encode_operation",
    "encode_subscribe",
]

DEFAULT_MAX_FRAME_BYTES = 8 * 2**20
"""Largest frame decoded: an initial dump of 500 deep books fits with room to spare."""

PING = "PING"
"""The client's heartbeat text frame."""

EVENT_TYPES = frozenset(
    {
        "book",
        "price_change",
        "last_trade_price",
        "tick_size_change",
        "best_bid_ask",
        "new_market",
        "market_resolved",
    }
)
"""The ``event_type`` values this package decodes; any other one is ignored."""


class TextReply(enum.StrEnum):
    """The server's plain-text frames."""

    PONG = "PONG"
    """The answer to ``PING``."""
    INVALID_OPERATION = "INVALID OPERATION"
    """A client frame the server rejected (a second initial frame, non-JSON text, ...)."""


_TEXT_REPLIES = {
    b"PONG": TextReply.PONG,
    "PONG": TextReply.PONG,
    b"INVALID OPERATION": TextReply.INVALID_OPERATION,
    "INVALID OPERATION": TextReply.INVALID_OPERATION,
}

_LONGEST_REPLY = len("INVALID OPERATION")

_Event: TypeAlias = (
    Book | PriceChange | LastTradePrice | TickSizeChange | BestBidAsk | NewMarket | MarketResolved
)


class _Envelope(msgspec.Struct):
    """Just enough of an object to tell an unknown event type from a broken known one."""

    event_type: str | None = None


# msgspec.DecodeError is a ValidationError's sibling; ArithmeticError comes from comparing a
# NaN price, which the validators reach before they can raise ValueError; RecursionError from
# JSON nested deeper than the interpreter's recursion limit; UnicodeError from a str frame
# holding lone surrogates (msgspec reads text as UTF-8).
_DECODE_ERRORS = (msgspec.DecodeError, ArithmeticError, RecursionError, UnicodeError)


def _invalid(frame: bytes | str, exc: BaseException, kind: InvalidKind) -> InvalidMessage:
    """The InvalidMessage for ``exc``, its kind told by the exception where it says more."""
    if isinstance(exc, RecursionError):
        return InvalidMessage(frame, "JSON nested too deeply", InvalidKind.TOO_DEEP)
    if isinstance(exc, msgspec.ValidationError):  # a DecodeError subclass: test it first
        return InvalidMessage(frame, _reason(exc), kind)
    if isinstance(exc, msgspec.DecodeError | UnicodeError):
        return InvalidMessage(frame, _reason(exc), InvalidKind.NOT_JSON)
    if isinstance(exc, ArithmeticError):
        return InvalidMessage(frame, _reason(exc), InvalidKind.INVALID_EVENT)
    return InvalidMessage(frame, _reason(exc), kind)


class FrameDecoder:
    """Decodes server frames into events, validating them on the way.

    The fast path decodes the whole frame with one compiled decoder. Only when that fails
    does it look at the frame object by object, to skip unknown event types (which are
    legal) and to report what is wrong with the rest.

    Whatever the frame holds (any bytes, JSON of any depth), :meth:`decode` returns events
    or a reply, or raises :class:`InvalidMessage` whose ``kind`` says why.

    Args:
        max_frame_bytes: Frames longer than this are rejected unparsed (characters, for a
            ``str`` frame).

    Raises:
        ValueError: If ``max_frame_bytes`` is not positive.
    """

    __slots__ = ("_frame", "_items", "_one", "max_frame_bytes")

    def __init__(self, *, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes <= 0:
            raise ValueError(f"max_frame_bytes must be > 0, not {max_frame_bytes!r}")
        self.max_frame_bytes = max_frame_bytes
        self._frame = msgspec.json.Decoder(list[_Event] | _Event)
        self._one = msgspec.json.Decoder(_Event)
        self._items = msgspec.json.Decoder(list[msgspec.Raw])

    def decode(self, frame: bytes | str) -> list[MarketEvent] | TextReply:
        """Decode one text frame.

        Args:
            frame: The frame's payload, as bytes (faster: no text decoding) or text.

        Returns:
            The events it holds, in order (possibly none, when every event in it has an
            unknown type), or the :class:`TextReply` it is.

        Raises:
            InvalidMessage: If the frame is too long, not JSON, nested too deeply, an empty
                array, not an event or an array of events, or an event of a known type
                fails validation.
        """
        if len(frame) > self.max_frame_bytes:
            raise InvalidMessage(
                frame[:256],
                f"frame of {len(frame)} bytes exceeds {self.max_frame_bytes}",
                InvalidKind.TOO_LARGE,
            )
        if len(frame) <= _LONGEST_REPLY:
            reply = _TEXT_REPLIES.get(frame)
            if reply is not None:
                return reply
        try:
            result = self._frame.decode(frame)
        except msgspec.ValidationError:
            return self._decode_slowly(frame)
        except _DECODE_ERRORS as exc:
            raise _invalid(frame, exc, InvalidKind.NOT_JSON) from None
        # isinstance, not `type(...) is list`: mypy narrows the union only through isinstance
        # (msgspec 0.23 types the decoder as the union; 0.22 as Any).
        if isinstance(result, list):
            if not result:
                raise InvalidMessage(frame, "an empty array", InvalidKind.EMPTY)
            return result
        return [result]

    def _decode_slowly(self, frame: bytes | str) -> list[MarketEvent]:
        """Decode object by object: skip unknown event types, explain the first bad one."""
        start = frame.lstrip()[:1]
        try:
            is_array = start in (b"[", "[")
            items = self._items.decode(frame) if is_array else [msgspec.Raw(frame)]
        except msgspec.ValidationError as exc:
            raise _invalid(frame, exc, InvalidKind.NOT_AN_EVENT) from None
        except _DECODE_ERRORS as exc:
            raise _invalid(frame, exc, InvalidKind.NOT_JSON) from None
        if not items:
            raise InvalidMessage(frame, "an empty array", InvalidKind.EMPTY)
        events: list[MarketEvent] = []
        for item in items:
            try:
                envelope = msgspec.json.decode(item, type=_Envelope)
            except (msgspec.ValidationError, *_DECODE_ERRORS) as exc:
                raise _invalid(frame, exc, InvalidKind.NOT_AN_EVENT) from None
            if envelope.event_type is None:
                raise InvalidMessage(frame, "object without event_type", InvalidKind.NOT_AN_EVENT)
            if envelope.event_type in EVENT_TYPES:
                try:
                    events.append(self._one.decode(item))
                except (msgspec.ValidationError, *_DECODE_ERRORS) as exc:
                    raise _invalid(frame, exc, InvalidKind.INVALID_EVENT) from None
        return events


def _reason(exc: BaseException) -> str:
    if isinstance(exc, decimal.DecimalException):
        return "a price or size is not a finite number"
    return str(exc) or type(exc).__name__


class Subscribe(msgspec.Struct, frozen=True, kw_only=True):
    """The initial frame: sent once per connection, it names every asset to stream.

    Attributes:
        assets_ids: Token ids (the field's spelling is the protocol's).
        type: The channel; the server compares it case-insensitively.
        initial_dump: Whether the server sends a ``book`` per asset first.
        level: Book detail level (1, 2 or 3).
        custom_feature_enabled: Turns on ``best_bid_ask``, ``new_market`` and
            ``market_resolved``.
    """

    assets_ids: tuple[str, ...]
    type: str = "market"
    initial_dump: bool = True
    level: int = 2
    custom_feature_enabled: bool = False


class Operation(msgspec.Struct, frozen=True, kw_only=True):
    """A frame that adds or removes assets on a live connection.

    Attributes:
        operation: ``subscribe`` or ``unsubscribe``.
        assets_ids: Token ids.
        custom_feature_enabled: As in :class:`Subscribe`.
    """

    operation: Literal["subscribe", "unsubscribe"]
    assets_ids: tuple[str, ...]
    custom_feature_enabled: bool = False


ClientFrame: TypeAlias = Subscribe | Operation | Literal["PING"]
"""What a client may send: the initial frame, an operation, or ``PING``."""


def encode_subscribe(
    asset_ids: Iterable[str],
    *,
    initial_dump: bool = True,
    level: int = 2,
    custom_feature_enabled: bool = False,
) -> str:
    """The initial subscribe frame for ``asset_ids``.

    Args:
        asset_ids: Token ids.
        initial_dump: Whether the server should send a ``book`` per asset first.
        level: Book detail level.
        custom_feature_enabled: Ask for ``best_bid_ask``, ``new_market``, ``market_resolved``.

    Returns:
        The frame's text.
    """
    frame = Subscribe(
        assets_ids=tuple(asset_ids),
        initial_dump=initial_dump,
        level=level,
        custom_feature_enabled=custom_feature_enabled,
    )
    return msgspec.json.encode(frame).decode()


def encode_operation(
    operation: Literal["subscribe", "unsubscribe"],
    asset_ids: Iterable[str],
    *,
    custom_feature_enabled: bool = False,
) -> str:
    """An ``operation`` frame that adds or removes assets without reconnecting.

    Args:
        operation: ``subscribe`` or ``unsubscribe``.
        asset_ids: Token ids.
        custom_feature_enabled: As in the initial frame.

    Returns:
        The frame's text.
    """
    frame = Operation(
        operation=operation,
        assets_ids=tuple(asset_ids),
        custom_feature_enabled=custom_feature_enabled,
    )
    return msgspec.json.encode(frame).decode()


class _AnyClientFrame(msgspec.Struct):
    type: str | None = None
    operation: str | None = None
    assets_ids: tuple[str, ...] = ()
    initial_dump: bool = True
    level: int = 2
    custom_feature_enabled: bool = False


_client_decoder = msgspec.json.Decoder(_AnyClientFrame)


def decode_client_frame(frame: bytes | str) -> ClientFrame:
    """Decode a frame a client sent: what a market-channel server does first.

    Args:
        frame: The frame's payload.

    Returns:
        A :class:`Subscribe`, an :class:`Operation`, or ``"PING"``.

    Raises:
        InvalidMessage: For anything else (the server answers ``INVALID OPERATION``).
    """
    if frame in (PING, b"PING"):
        return "PING"
    try:
        raw = _client_decoder.decode(frame)
    except (msgspec.ValidationError, *_DECODE_ERRORS) as exc:
        raise _invalid(frame, exc, InvalidKind.INVALID) from None
    if raw.operation is not None:
        if raw.operation not in ("subscribe", "unsubscribe"):
            raise InvalidMessage(frame, f"unknown operation {raw.operation!r}")
        return Operation(
            operation=raw.operation,  # type: ignore[arg-type]
            assets_ids=raw.assets_ids,
            custom_feature_enabled=raw.custom_feature_enabled,
        )
    if raw.type is not None:
        if raw.type.lower() != "market":
            raise InvalidMessage(frame, f"unsupported channel type {raw.type!r}")
        if raw.level not in (1, 2, 3):
            raise InvalidMessage(frame, f"unsupported level {raw.level!r}")
        return Subscribe(
            assets_ids=raw.assets_ids,
            type=raw.type,
            initial_dump=raw.initial_dump,
            level=raw.level,
            custom_feature_enabled=raw.custom_feature_enabled,
        )
    raise InvalidMessage(frame, "neither an initial frame nor an operation")


def encode_events(events: list[MarketEvent] | MarketEvent) -> bytes:
    """Encode events as one frame: a single object, or an array for a list.

    Args:
        events: One event, or a list of them (an array frame, even with one element).

    Returns:
        The frame's UTF-8 text.
    """
    return msgspec.json.encode(events)
