"""``managed_resource``: acquire, use, release exactly once, whatever happens."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Generic, TypeVar

from ._robust import LOGGER_NAME
from ._shield import shielded

__all__ = ["managed_resource"]

R = TypeVar("R")

_logger = logging.getLogger(LOGGER_NAME)


class managed_resource(Generic[R]):
    """Async context manager that acquires a resource and always releases it, exactly once.

    ::

        async with managed_resource(lambda: connect(url), lambda ws: ws.close()) as ws:
            async for message in ws:
                ...

    * ``acquire()`` is awaited on entry; if it raises, ``release`` is not called.
    * ``release(resource)`` runs exactly once on normal exit, on error and on cancellation.
      It is shielded: a second cancellation while it runs does not interrupt it; the
      cancellation is re-raised once it is done.
    * An error in ``release`` never hides the body's error: the body's exception propagates
      unchanged (not wrapped in a group) and the release error is logged. Without a body
      error, the release error propagates.

    Args:
        acquire: Zero-argument callable returning an awaitable of the resource.
        release: Called with the resource; may return an awaitable, which is awaited.
        logger: Where release errors are logged.
    """

    __slots__ = ("_acquire", "_logger", "_release", "_resource")

    def __init__(
        self,
        acquire: Callable[[], Awaitable[R]],
        release: Callable[[R], Awaitable[object] | object],
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self._acquire = acquire
        self._release = release
        self._logger = logger or _logger
        self._resource: R | None = None

    async def __aenter__(self) -> R:
        resource = await self._acquire()
        self._resource = resource
        return resource

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        resource, self._resource = self._resource, None
        release_error: BaseException | None = None
        cancelled_during_release = False
        try:
            result = self._release(resource)  # type: ignore[arg-type]
            if inspect.isawaitable(result):
                await shielded(result)
        except asyncio.CancelledError as cancelled:
            # A cancellation arrived while release ran: it is re-raised below, whatever
            # the release's own outcome (its error, if any, is the cause).
            cancelled_during_release = True
            if isinstance(cancelled.__cause__, Exception):
                release_error = cancelled.__cause__
        except Exception as err:
            release_error = err
        if release_error is not None:
            if exc is None and not cancelled_during_release:
                raise release_error
            self._logger.error(
                "release of %r failed while %s propagates",
                resource,
                "another error" if exc is not None else "a cancellation",
                exc_info=release_error,
            )
            if exc is None:  # a cancellation arrived during release: it must not be lost
                raise asyncio.CancelledError() from release_error
            return None  # the body's exception propagates unchanged
        if cancelled_during_release and exc is None:
            raise asyncio.CancelledError()
        return None
