"""``shielded``: finish this despite cancellation, then let the cancellation through."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["shielded"]

T = TypeVar("T")


async def shielded(aw: Awaitable[T], timeout: float | None = None) -> T:
    """Await ``aw`` to completion even if the caller is cancelled meanwhile.

    Cleanup that must not be cut short (a release, a rollback, closing a socket, draining a
    queue, handing over the item in hand) runs under it::

        finally:
            await shielded(connection.close(), timeout=5.0)

    Unlike :func:`asyncio.shield`, which lets the caller go at once and leaves ``aw`` running
    unwatched, the caller stays until ``aw`` has finished; a cancellation that arrived
    meanwhile (one or several) is raised then, so ``asyncio.timeout()`` and ``TaskGroup``
    around the caller work as usual. It wins over the outcome of ``aw``: that outcome is
    the ``CancelledError``'s ``__cause__`` if it is an error, and is lost if it is a result.

    With ``timeout``, ``aw`` that has not finished within that many seconds of the call is
    cancelled and awaited (an ``aw`` that swallows its cancellation is waited for).

    Args:
        aw: A coroutine, task or other awaitable; a coroutine runs in a task of its own.
        timeout: Seconds ``aw`` may take, or None to wait for as long as it takes.

    Returns:
        What ``aw`` returned.

    Raises:
        asyncio.CancelledError: If the caller was cancelled while ``aw`` ran (raised after
            ``aw`` finished), or if ``aw`` itself was cancelled by someone else.
        TimeoutError: If ``aw`` had not finished within ``timeout``.
        Exception: Whatever ``aw`` raised.
    """
    inner = asyncio.ensure_future(aw)
    cancelled = False
    timed_out = False
    if not inner.done():
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not inner.done():
            remaining = None
            if deadline is not None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    timed_out = True
                    deadline = None
                    inner.cancel()
                    continue
            try:
                # asyncio.wait never cancels what it waits for, unlike a plain await.
                await asyncio.wait((inner,), timeout=remaining)
            except asyncio.CancelledError:
                cancelled = True
    error = None if inner.cancelled() else inner.exception()  # retrieved: never "lost"
    if cancelled:
        raise asyncio.CancelledError() from error
    if timed_out:
        raise TimeoutError(f"did not finish within {timeout:g} s") from error
    return inner.result()
