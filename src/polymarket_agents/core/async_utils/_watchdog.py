"""``LoopWatchdog``: count what holds the event loop too long, and say where it was held."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from types import TracebackType

from ._errors import ConfigurationError
from ._robust import LOGGER_NAME

__all__ = ["LoopWatchdog"]

_logger = logging.getLogger(LOGGER_NAME)


class LoopWatchdog:
    """Counts the times the event loop was held longer than ``threshold``; logs the worst.

    ::

        async with LoopWatchdog(threshold=0.1) as watchdog:
            ...
        watchdog.blocks, watchdog.worst   # how many, and the longest, in seconds

    A timer on the loop notes every ``threshold / 2`` seconds that the loop is turning, and
    measures how late it ran: lateness beyond ``threshold`` means a callback (a coroutine
    step that did not await, a blocking call) held the loop that long. A thread looks at the
    timer as often and, while the loop is held, takes the stack of the loop's thread, so the
    log names the code that blocked, not the code that noticed. The first block and each
    longer one than before are logged at WARNING with that stack; every block is counted.

    The cost is one timer callback per ``threshold / 2`` seconds and about one thread
    wake-up per threshold while the loop turns, whatever the load (see ``bench/agents.py``);
    nothing is added per callback, unlike asyncio's debug mode. A hold is measured to within
    ``threshold / 2``.

    Args:
        threshold: Seconds a hold must exceed to count.
        logger: Where blocks are logged.

    Raises:
        ConfigurationError: If ``threshold`` is not positive.
    """

    def __init__(self, threshold: float = 0.1, *, logger: logging.Logger | None = None) -> None:
        if not threshold > 0:
            raise ConfigurationError(f"threshold must be > 0, not {threshold!r}")
        self.threshold = threshold
        self.blocks = 0
        """Times the loop was held longer than the threshold."""
        self.worst = 0.0
        """The longest hold seen, in seconds."""
        self.worst_stack = ""
        """Where the loop was held during the longest hold ("" if it was not caught)."""
        self.blocked = 0.0
        """Seconds the loop spent in holds longer than the threshold, in all."""
        self._logger = logger or _logger
        self._interval = threshold / 2
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        # (due time of the late tick, stack), written by the thread while the loop is held.
        self._caught: tuple[float, str] | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0

    def __repr__(self) -> str:
        return (
            f"<LoopWatchdog threshold={self.threshold:g}s blocks={self.blocks} "
            f"worst={self.worst:.3f}s>"
        )

    def start(self) -> None:
        """Start watching the running loop.

        Raises:
            RuntimeError: If no loop runs in this thread, or it was started already.
        """
        if self._thread is not None:
            raise RuntimeError("a LoopWatchdog can be started only once")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._due = time.monotonic() + self._interval
        self._timer = self._loop.call_later(self._interval, self._tick)
        self._thread = threading.Thread(
            target=self._watch, name="polymarket-agents-loop-watchdog", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (the thread ends within ``threshold / 2`` seconds)."""
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def __aenter__(self) -> LoopWatchdog:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- on the loop ----------------------------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        late = now - self._due
        if late > self.threshold:
            self._blocked(late)
        self._due = now + self._interval
        assert self._loop is not None
        self._timer = self._loop.call_later(self._interval, self._tick)

    def _blocked(self, seconds: float) -> None:
        self.blocks += 1
        self.blocked += seconds
        caught = self._caught
        stack = caught[1] if caught is not None and caught[0] == self._due else ""
        self._caught = None
        if seconds <= self.worst:
            self._logger.debug("event loop held for %.3f s", seconds)
            return
        self.worst = seconds
        self.worst_stack = stack
        self._logger.warning(
            "event loop held for %.3f s (the longest so far; %d holds over %.3f s): %s",
            seconds,
            self.blocks,
            self.threshold,
            f"held at:\n{stack}" if stack else "too short to catch where",
            extra={"blocked": seconds, "blocks": self.blocks},
        )

    # -- on the watchdog's thread -----------------------------------------------------------

    def _watch(self) -> None:
        wait = self._interval
        while True:
            # A plain sleep: Event.wait would build a lock and a condition per wake-up.
            time.sleep(wait)
            if self._stopped.is_set():
                return
            due = self._due
            # Asleep until a hold of the timer due now could first be caught: few wake-ups
            # while the loop turns, one every quarter threshold while it is held.
            late = time.monotonic() - due
            wait = max(self.threshold - late, self._interval / 2)
            if late <= self.threshold:
                continue
            caught = self._caught
            if caught is not None and caught[0] == due:
                continue  # this hold is caught already
            frame = sys._current_frames().get(self._loop_thread)
            if frame is not None:
                # The innermost frames: the loop's own machinery is of no interest.
                self._caught = (due, "".join(traceback.format_stack(frame, limit=16)))
