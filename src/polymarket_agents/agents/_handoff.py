"""Handing rows to the ingestion queue: wait for room, never drop, finish the hand-off on stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from polymarket_agents.core.async_utils import shielded

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
        True: the item was queued (otherwise the call ends with the cancellation).

    Raises:
        asyncio.CancelledError: After the hand-off, if the caller was cancelled meanwhile;
            an item abandoned at the timeout is logged at ERROR and given to ``on_lost``.
    """
    try:
        # Backpressure: wait for room for as long as it takes. Awaited in place, not in a
        # task of its own: under load every event may wait here, and a task per event
        # cost more than storing the event.
        await queue.put(item)
        return True
    except asyncio.CancelledError:
        # A put cancelled while waiting has not queued the item (asyncio.Queue.put only
        # puts once it is sure to return): hand it over from a task of its own now.
        put = asyncio.get_running_loop().create_task(queue.put(item))
        # Stopping: the hand-off goes on for up to `timeout` seconds (the ingestion worker
        # is normally still draining), then the cancellation goes on.
        try:
            await shielded(put, timeout=timeout)
        except (TimeoutError, asyncio.CancelledError):
            pass  # the put is done or cancelled now; the first cancellation is re-raised
        if put.cancelled():
            logger.error(
                "the ingestion queue stayed full for %.1f s after a stop was requested: "
                "an item was not stored",
                timeout,
            )
            if on_lost is not None:
                on_lost(item)
        raise
