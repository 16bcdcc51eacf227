"""``LoopWatchdog``: count what holds the event loop too long, and say where it was held."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback
import types
from types import TracebackType

from ._errors import ConfigurationError
from ._robust import LOGGER_NAME

__all__ = ["LoopWatchdog"]

_logger = logging.getLogger(LOGGER_NAME)


def _innermost(stack: str) -> str:
    """The innermost frame of a formatted stack, in one line: ``file.py:12 in name``."""
    for line in reversed(stack.splitlines()):
        line = line.strip()
        if line.startswith('File "'):
            path, _, rest = line[len('File "') :].partition('", line ')
            number, _, function = rest.partition(", in ")
            return f"{os.path.basename(path)}:{number} in {function}"
    return "an unknown place"


def _code_of(cls: type, name: str) -> types.CodeType | None:
    function = getattr(cls, name, None)
    return function.__code__ if isinstance(function, types.FunctionType) else None


class LoopWatchdog:
    """Counts the times the event loop was held longer than ``threshold``; logs the worst.

    ::

        async with LoopWatchdog(threshold=0.1) as watchdog:
            ...
        watchdog.blocks, watchdog.worst   # how many, and the longest, in seconds

    A thread looks at the loop's thread every ``threshold / 2`` seconds. On asyncio's own
    loops it needs nothing from the loop: it sees from the loop thread's stack whether the
    loop waits for I/O (idle) or runs an iteration, and an iteration still running after
    ``threshold`` is a hold — a callback (a coroutine step that did not await, a blocking
    call) keeping the loop. Its stack is taken then, so the log names the code that blocked,
    not the code that noticed. On other loops (uvloop) a loop timer every ``threshold / 2``
    measures its own lateness instead. Every hold is counted; the first and each longer one
    than before are logged at WARNING with that stack.

    Nothing is added per callback, unlike asyncio's debug mode, and an idle loop is never
    woken. A hold is measured to within ``threshold / 2``; a process that the system does
    not schedule for that long looks like a hold too.

    Args:
        threshold: Seconds a hold must exceed to count.
        logger: Where holds are logged.

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
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop_thread = 0
        # Sampling (asyncio's loops): the code objects that tell an iteration from waiting.
        self._run_once: types.CodeType | None = None
        self._select: types.CodeType | None = None
        # The iteration being watched: its frame, when first seen, the stack once caught.
        self._held: types.FrameType | None = None
        self._held_since = 0.0
        self._held_stack = ""
        # Timing (other loops): the timer, its due time, the stack caught for that due time.
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._caught: tuple[float, str] | None = None

    def __repr__(self) -> str:
        return (
            f"<LoopWatchdog threshold={self.threshold:g}s blocks={self.blocks} "
            f"worst={self.worst:.3f}s>"
        )

    @property
    def worst_at(self) -> str:
        """Where the longest hold held the loop, in one line: its innermost frame,
        ``"file.py:12 in name"`` ("" if it was not caught)."""
        return _innermost(self.worst_stack) if self.worst_stack else ""

    def start(self) -> None:
        """Start watching the running loop.

        Raises:
            RuntimeError: If no loop runs in this thread, or it was started already.
        """
        if self._thread is not None:
            raise RuntimeError("a LoopWatchdog can be started only once")
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        selector = getattr(loop, "_selector", None)
        self._run_once = _code_of(type(loop), "_run_once")
        self._select = _code_of(type(selector), "select") if selector is not None else None
        sampling = self._run_once is not None and self._select is not None
        if not sampling:
            self._due = time.monotonic() + self._interval
            self._timer = loop.call_later(self._interval, self._tick)
        self._thread = threading.Thread(
            target=self._sample if sampling else self._watch,
            name="polymarket-agents-loop-watchdog",
            daemon=True,
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

    def _blocked(self, seconds: float, stack: str) -> None:
        self.blocks += 1
        self.blocked += seconds
        if seconds <= self.worst:
            self._logger.debug(
                "event loop held for %.3f s (not the longest) at %s",
                seconds,
                _innermost(stack),
                extra={"blocked": seconds, "blocks": self.blocks},
            )
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

    # -- sampling the loop thread's stack (asyncio's loops) ---------------------------------

    def _sample(self) -> None:
        while True:
            # A plain sleep: Event.wait would build a lock and a condition per wake-up.
            time.sleep(self._interval)
            if self._stopped.is_set():
                return
            try:
                self._look()
            except Exception:  # a watchdog must never die of what it watches
                self._logger.exception("the loop watchdog failed to look at the loop")

    def _look(self) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        now = time.monotonic()
        iteration = frame
        while iteration is not None and iteration.f_code is not self._run_once:
            iteration = iteration.f_back
        if frame is None or iteration is None or frame.f_code is self._select:
            self._end_hold(now)  # waiting for I/O, or not running: not held
            return
        if iteration is not self._held:
            self._end_hold(now)
            self._held, self._held_since = iteration, now
            return
        if not self._held_stack and now - self._held_since >= self.threshold - self._interval:
            # The innermost frames: the loop's own machinery is of no interest.
            self._held_stack = "".join(traceback.format_stack(frame, limit=16))

    def _end_hold(self, now: float) -> None:
        held, stack = self._held, self._held_stack
        self._held, self._held_stack = None, ""
        # First seen up to one interval after it began, its end seen up to one interval
        # after it ended: the hold's length to within an interval.
        seconds = now - self._held_since
        if held is not None and stack and seconds > self.threshold:
            self._blocked(seconds, stack)

    # -- timing a loop timer (other loops) --------------------------------------------------

    def _tick(self) -> None:
        now = time.monotonic()
        late = now - self._due
        if late > self.threshold:
            caught = self._caught
            stack = caught[1] if caught is not None and caught[0] == self._due else ""
            self._caught = None
            self._blocked(late, stack)
        self._due = now + self._interval
        assert self._loop is not None
        self._timer = self._loop.call_later(self._interval, self._tick)

    def _watch(self) -> None:
        wait = self._interval
        while True:
            time.sleep(wait)
            if self._stopped.is_set():
                return
            due = self._due
            # Asleep until a hold of the timer due now could first be caught.
            late = time.monotonic() - due
            wait = max(self.threshold - late, self._interval / 2)
            if late <= self.threshold:
                continue
            caught = self._caught
            if caught is not None and caught[0] == due:
                continue  # this hold is caught already
            frame = sys._current_frames().get(self._loop_thread)
            if frame is not None:
                self._caught = (due, "".join(traceback.format_stack(frame, limit=16)))
