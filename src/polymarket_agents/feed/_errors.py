"""Exceptions raised by :mod:`polymarket_agents.feed`.

The tree::

    AgentError (core)
    └── FeedError                  base of every error the feed raises on purpose
        ├── InvalidMessage         a frame failed to decode or validate; count it and skip it
        ├── FeedStopped            the feed's connection task ended for good
        └── FeedTimeout            also a TimeoutError, so the core restarts the connection
            ├── PongTimeout        no PONG within the heartbeat timeout
            ├── DataSilence        PONGs keep coming but no market data (the "silent freeze")
            └── ResyncTimeout      a stale book got no fresh snapshot in time
"""

from __future__ import annotations

import enum

from polymarket_agents.core.async_utils import AgentError

__all__ = [
    "DataSilence",
    "FeedError",
    "FeedStopped",
    "FeedTimeout",
    "InvalidKind",
    "InvalidMessage",
    "PongTimeout",
    "ResyncTimeout",
]


class InvalidKind(enum.StrEnum):
    """Why a frame was refused, in a few stable words: the ``reason`` label of the
    invalid-frames counter (the exception's ``reason`` text has the details)."""

    TOO_LARGE = "too_large"
    """Longer than the decoder's ``max_frame_bytes``."""
    BINARY = "binary"
    """A binary websocket frame: the market channel sends text only."""
    NOT_JSON = "not_json"
    """Neither JSON nor one of the server's text replies (invalid UTF-8 included)."""
    TOO_DEEP = "too_deep"
    """JSON nested deeper than the decoder follows."""
    EMPTY = "empty"
    """An empty array: no event at all."""
    NOT_AN_EVENT = "not_an_event"
    """JSON, but not an event object or an array of them (no ``event_type``)."""
    INVALID_EVENT = "invalid_event"
    """An event of a known type with a missing, mistyped or out-of-range field."""
    INVALID = "invalid"
    """Anything else that is not valid (client frames, Gamma listings)."""


class FeedError(AgentError):
    """Base class of every exception the feed raises on purpose."""


class InvalidMessage(FeedError):
    """A frame that is not valid market-channel data.

    Bad JSON, wrong types, missing fields, out-of-range prices, unknown text and oversized
    frames all raise this one type; callers count it and skip the frame.

    Args:
        raw: The frame as received.
        reason: What is wrong with it, in words.
        kind: The class of the problem, for counting.

    Attributes:
        raw: The frame as received (truncated to 200 characters in ``str()``).
        reason: What is wrong with it, in words.
        kind: The class of the problem (:class:`InvalidKind`), for counting.
    """

    def __init__(
        self, raw: bytes | str, reason: str, kind: InvalidKind = InvalidKind.INVALID
    ) -> None:
        self.raw = raw
        self.reason = reason
        self.kind = kind
        super().__init__(raw, reason)

    def __str__(self) -> str:
        raw = self.raw
        preview = raw[:200] if isinstance(raw, str) else raw[:200].decode("utf-8", "replace")
        more = "..." if len(raw) > 200 else ""
        return f"invalid market message ({self.reason}): {preview!r}{more}"


class FeedStopped(FeedError):
    """The feed's connection task ended for good (a fatal error or a spent restart budget).

    Raised by the event iterator of a feed whose connection will not be restarted; the
    cause, when known, is chained as ``__cause__``.
    """


class FeedTimeout(FeedError, TimeoutError):
    """A liveness watchdog fired; the connection is closed and opened again.

    A ``TimeoutError``, hence recoverable under the core's default error classes.
    """


class PongTimeout(FeedTimeout):
    """No ``PONG`` arrived within the heartbeat timeout: the connection is dead."""


class DataSilence(FeedTimeout):
    """``PONG`` keeps coming but no market data arrived within the silence timeout."""


class ResyncTimeout(FeedTimeout):
    """A stale book got no fresh snapshot in time; a new connection brings a full dump."""
