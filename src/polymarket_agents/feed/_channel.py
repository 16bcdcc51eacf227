"""A bounded single-consumer channel of event batches, with backpressure and a close.

``asyncio.Queue`` cannot be closed, and putting a "stop" sentinel into a full bounded queue
would block the very task that is stopping; this small channel can do both.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

__all__ = ["Channel"]

T = TypeVar("T")


class Channel(Generic[T]):
    """Items from one producer to one consumer; ``put`` waits while ``maxsize`` are queued.

    Args:
        maxsize: How many items may wait before ``put`` blocks.
    """

    __slots__ = ("_closed", "_error", "_items", "_maxsize", "_not_empty", "_not_full", "blocked")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque()
        self._maxsize = maxsize
        self._not_empty = asyncio.Event()
        self._not_full = asyncio.Event()
        self._not_full.set()
        self._closed = False
        self._error: BaseException | None = None
        self.blocked = False
        """Whether the producer is waiting for room (the consumer is behind)."""

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T) -> None:
        """Queue ``item``, waiting while the channel is full; dropped once closed."""
        while len(self._items) >= self._maxsize and not self._closed:
            self._not_full.clear()
            self.blocked = True
            try:
                await self._not_full.wait()
            finally:
                self.blocked = False
        if self._closed:
            return
        self._items.append(item)
        self._not_empty.set()

    def put_nowait(self, item: T) -> bool:
        """Queue ``item`` if there is room (dropped once closed); False if the channel is full."""
        if self._closed:
            return True
        if len(self._items) >= self._maxsize:
            return False
        self._items.append(item)
        self._not_empty.set()
        return True

    def get_nowait(self) -> T | None:
        """The next item if one is queued, else None (never the close error)."""
        if not self._items:
            return None
        item = self._items.popleft()
        if len(self._items) < self._maxsize:
            self._not_full.set()
        return item

    async def get(self) -> T:
        """The next item, waiting for one.

        Raises:
            EOFError: Once the channel is closed and drained (cleanly).
            BaseException: The error it was closed with, once drained.
        """
        while not self._items:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise EOFError
            self._not_empty.clear()
            await self._not_empty.wait()
        item = self._items.popleft()
        if len(self._items) < self._maxsize:
            self._not_full.set()
        return item

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self, error: BaseException | None = None) -> None:
        """No more items: the consumer drains what is queued, then sees the end (or ``error``)."""
        if not self._closed:
            self._closed = True
            self._error = error
        self._not_empty.set()
        self._not_full.set()
