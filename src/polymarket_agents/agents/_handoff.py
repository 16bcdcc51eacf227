"""Handing rows to the ingestion queue: wait for room, never drop, finish the hand-off on stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_HANDOFF_TIMEOUT", "handoff"]

DEFAULT_HANDOFF_TIMEOUT = 5.0
"""Seconds a cancelled producer still waits for room to hand over the item in its hands."""


async def handoff(
    queue: asyncio.Queue[Any],
    item: object,
    *,
    timeout: float = DEFAULT_HANDOFF_TIMEOUT,
    logger: logging.Logger,
    on_lost: Callable[[object], None] | None = None,
) -> bool:
    """Put ``item`` on ``queue``, waiting while it is full (backpressure, not loss).

    A cancellation that arrives while waiting does not abandon the item at once: the
    hand-off goes on for up to ``timeout`` seconds (the ingestion worker is normally still
    draining then), and the cancellation is re-raised afterwards.

    Args:
        queue: The bounded ingestion queue.
        item: A row or a tuple of rows.
        timeout: Seconds the hand-off goes on after a cancellation.
        logger: Where a loss is logged.
        on_lost: Called with the item if it is abandoned (before the cancellation is
            re-raised), so the caller's counts stay right.

    Returns:
        True if the item was queued; False if it had to be abandoned (logged at ERROR).

    Raises:
        asyncio.CancelledError: After the hand-off, if the caller was cancelled meanwhile.
    """
    try:
        queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        pass
    loop = asyncio.get_running_loop()
    put = loop.create_task(queue.put(item))
    cancelled = False
    deadline: float | None = None
    while not put.done():
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            break
        try:
            await asyncio.wait((put,), timeout=remaining)
        except asyncio.CancelledError:
            cancelled = True
            if deadline is None:
                deadline = loop.time() + timeout
    queued = put.done() and not put.cancelled()
    if not put.done():
        put.cancel()
        try:
            await asyncio.wait((put,))
        except asyncio.CancelledError:
            cancelled = True
        queued = not put.cancelled()
    if not queued:
        logger.error(
            "the ingestion queue stayed full for %.1f s after a stop was requested: "
            "an item was not stored",
            timeout,
        )
        if on_lost is not None:
            on_lost(item)
    if cancelled:
        raise asyncio.CancelledError
    return queued
