"""Fault injection for the simulator: the switches, and the bad frames it can send."""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import msgspec

__all__ = ["FaultPlan", "MalformedKind", "malformed_frame", "oversized_frame"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultPlan:
    """Which faults the simulator injects; every switch is off by default.

    Times count from the moment each connection opens, so a client that reconnects meets
    the same fault again: ``drop_every=2.0`` drops every connection after two seconds. With
    both ``drop_every`` and ``abort_every`` set, the earlier one ends each connection.

    Attributes:
        drop_every: Close each connection with a close frame (code ``drop_code``) after
            this many seconds.
        drop_code: The close code of those drops (1011: internal error; 1012: restart).
        abort_every: Abort each connection's TCP stream, without a close frame, after
            this many seconds.
        freeze_after: Silent freeze: after this many seconds stop sending market data on
            the connection while still answering ``PING``.
        stop_pong_after: After this many seconds stop answering ``PING`` (data goes on).
        malformed_rate: Probability, per data frame, of sending an extra malformed frame
            (bad JSON, wrong types, missing fields, out-of-range prices, stray text, JSON
            nested 100,000 deep, an empty array, a binary frame, invalid UTF-8; in turn).
        oversized_rate: Probability, per data frame, of sending an extra frame of
            ``oversized_bytes`` (an array of events of an unknown type).
        oversized_bytes: Size of those frames; the client's default limit is 8 MiB.
        legacy_price_change: Emit ``price_change`` in the legacy ``changes`` schema.
        send_delay: Slow sends: seconds to wait before writing each frame.

    Raises:
        ValueError: On a negative time, a rate outside [0, 1] or a size below 64 bytes.
    """

    drop_every: float | None = None
    drop_code: int = 1011
    abort_every: float | None = None
    freeze_after: float | None = None
    stop_pong_after: float | None = None
    malformed_rate: float = 0.0
    oversized_rate: float = 0.0
    oversized_bytes: int = 9 * 2**20
    legacy_price_change: bool = False
    send_delay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("drop_every", "abort_every", "freeze_after", "stop_pong_after"):
            value = getattr(self, name)
            if value is not None and not value >= 0:
                raise ValueError(f"{name} must be >= 0 or None, not {value!r}")
        for name in ("malformed_rate", "oversized_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], not {value!r}")
        if self.oversized_bytes < 64:
            raise ValueError(f"oversized_bytes must be >= 64, not {self.oversized_bytes!r}")
        if not self.send_delay >= 0:
            raise ValueError(f"send_delay must be >= 0, not {self.send_delay!r}")

    @property
    def active(self) -> bool:
        """Whether any fault is switched on."""
        return self != FaultPlan()


class MalformedKind(enum.StrEnum):
    """The kinds of malformed frame, sent in this order, round and round."""

    BAD_JSON = "bad_json"
    WRONG_TYPE = "wrong_type"
    MISSING_FIELD = "missing_field"
    OUT_OF_RANGE = "out_of_range"
    STRAY_TEXT = "stray_text"
    DEEP_NESTING = "deep_nesting"
    EMPTY_ARRAY = "empty_array"
    BINARY = "binary"
    """A well-formed event, sent in a binary frame (the channel sends text only)."""
    INVALID_UTF8 = "invalid_utf8"
    """A text frame whose bytes are not UTF-8."""


_KINDS = tuple(MalformedKind)


_DEPTH = 100_000


def malformed_frame(
    number: int, asset_id: str, market: str, timestamp: str
) -> tuple[str, bytes | str]:
    """The ``number``-th malformed frame: an event for a real asset, broken one way.

    A :attr:`MalformedKind.BINARY` frame is bytes, to be sent in a binary frame; an
    :attr:`MalformedKind.INVALID_UTF8` one is bytes, to be sent in a text frame.

    Args:
        number: Which one (0-based); selects the kind in turn.
        asset_id: A token the connection subscribed to.
        market: Its condition id.
        timestamp: A timestamp to put in it.

    Returns:
        The kind (a :class:`MalformedKind` value) and the frame.
    """
    kind = _KINDS[number % len(_KINDS)]
    change: dict[str, object] = {
        "asset_id": asset_id,
        "price": "0.5",
        "size": "10",
        "side": "BUY",
        "hash": "0" * 40,
        "best_bid": "0.5",
        "best_ask": "0.6",
    }
    event: dict[str, object] = {
        "event_type": "price_change",
        "market": market,
        "timestamp": timestamp,
        "price_changes": [change],
    }
    if kind is MalformedKind.BAD_JSON:
        text = msgspec.json.encode(event).decode()[:-7]
    elif kind is MalformedKind.WRONG_TYPE:
        change["size"] = {"shares": 10}
        text = msgspec.json.encode(event).decode()
    elif kind is MalformedKind.MISSING_FIELD:
        del event["market"]
        text = msgspec.json.encode(event).decode()
    elif kind is MalformedKind.OUT_OF_RANGE:
        change["price"] = "1.5"
        text = msgspec.json.encode(event).decode()
    elif kind is MalformedKind.STRAY_TEXT:
        text = "SERVER OVERLOADED, PLEASE STAND BY"
    elif kind is MalformedKind.DEEP_NESTING:
        text = "[" * _DEPTH + "]" * _DEPTH
    elif kind is MalformedKind.EMPTY_ARRAY:
        text = "[]"
    elif kind is MalformedKind.BINARY:
        return kind.value, msgspec.json.encode([event])
    else:
        return kind.value, msgspec.json.encode([event]).replace(b"BUY", b"B\xffY")
    return kind.value, text


def oversized_frame(size: int, rng: random.Random) -> str:
    """A JSON array of ``size`` characters of events of an unknown type.

    A client whose limit is larger decodes it and ignores every event in it.

    Args:
        size: The frame's length.
        rng: Source of the filler.

    Returns:
        The frame's text.
    """
    head = '[{"event_type":"padding","data":"'
    tail = '"}]'
    filler = f"{rng.getrandbits(128):x}"
    body_length = size - len(head) - len(tail)
    body = (filler * (body_length // len(filler) + 1))[:body_length]
    return head + body + tail
