"""Restart policy: error classes, the backoff schedule and the restart-intensity limit.

Everything here is pure: no event loop, no sleeping. ``robust_task`` and ``TaskSupervisor``
ask a :class:`RestartPolicy` what an exception means and how long to wait; tests check the
schedule without running a loop.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import math
import random
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from ._errors import ConfigurationError

__all__ = [
    "DEFAULT_FATAL",
    "DEFAULT_RECOVERABLE",
    "ErrorClass",
    "RestartPolicy",
    "backoff_delays",
    "classify_error",
    "instant_backoff",
    "instant_policy",
    "retry_after",
]


class ErrorClass(enum.StrEnum):
    """What an exception means for the work that raised it."""

    RECOVERABLE = "recoverable"
    """A transient fault (network, timeout, a locked database): retry after the normal backoff."""
    FATAL = "fatal"
    """A programming or configuration error: restarting cannot help, so never retry."""
    UNEXPECTED = "unexpected"
    """Anything else: retry, but after a longer backoff, and log the traceback."""


DEFAULT_RECOVERABLE: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)
"""Recoverable by default (``asyncio.TimeoutError`` is ``TimeoutError`` on 3.11+)."""

DEFAULT_FATAL: tuple[type[BaseException], ...] = (ValueError, KeyError)
"""Fatal by default; :class:`ConfigurationError` is a ``ValueError``, so it is fatal too."""

# OSErrors that are network faults although they are not ConnectionError subclasses.
_NETWORK_ERRNOS = frozenset(
    {errno.ENETDOWN, errno.ENETUNREACH, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ETIMEDOUT}
)


def _is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a network fault of the standard library beyond the configured classes.

    Only the standard library is known here: the layers above turn their libraries' transport
    errors into ``ConnectionError`` subclasses (the store's ``StoreUnavailableError``) or
    classify them themselves (the feed, those of its connection library).
    """
    if isinstance(exc, OSError) and exc.errno in _NETWORK_ERRNOS:
        return True
    # socket.gaierror: a failed DNS lookup is a network blip for a long-running service.
    return isinstance(exc, socket.gaierror)


def classify_error(
    exc: BaseException,
    *,
    recoverable: tuple[type[BaseException], ...] = DEFAULT_RECOVERABLE,
    fatal: tuple[type[BaseException], ...] = DEFAULT_FATAL,
) -> ErrorClass:
    """Say whether ``exc`` is recoverable, fatal or unexpected.

    The rules, first match wins:

    ====================================================================  ===============
    exception                                                             class
    ====================================================================  ===============
    an instance of ``recoverable`` (default ``ConnectionError``,
    ``TimeoutError``)                                                     RECOVERABLE
    ``OSError`` for an unreachable network or host, a failed DNS lookup   RECOVERABLE
    an instance of ``fatal`` (default ``ValueError``, ``KeyError``,
    hence :class:`ConfigurationError`)                                    FATAL
    any other ``Exception``                                               UNEXPECTED
    ====================================================================  ===============

    Only the standard library's errors are known. Another library's transport errors are
    recoverable once they are turned into ``ConnectionError`` subclasses, listed in
    ``recoverable``, or classified by a policy's ``classify``.

    An ``ExceptionGroup`` (say, from a ``TaskGroup`` inside the work) is fatal if any of its
    leaves is fatal, recoverable if all of them are, and unexpected otherwise.

    ``CancelledError``, ``KeyboardInterrupt`` and ``SystemExit`` are never classified: the
    callers let them propagate before asking.

    Args:
        exc: The exception the work raised.
        recoverable: Classes retried after the normal backoff.
        fatal: Classes never retried.

    Returns:
        The :class:`ErrorClass` of ``exc``.
    """
    if isinstance(exc, BaseExceptionGroup):
        classes = {
            classify_error(leaf, recoverable=recoverable, fatal=fatal) for leaf in exc.exceptions
        }
        if ErrorClass.FATAL in classes:
            return ErrorClass.FATAL
        if classes == {ErrorClass.RECOVERABLE}:
            return ErrorClass.RECOVERABLE
        return ErrorClass.UNEXPECTED
    if isinstance(exc, recoverable) or _is_transient(exc):
        return ErrorClass.RECOVERABLE
    if isinstance(exc, fatal):
        return ErrorClass.FATAL
    return ErrorClass.UNEXPECTED


# Depth of nested instant_backoff() blocks; a module global on purpose (like stamina's testing
# mode) so that it reaches tasks that were created before the block was entered.
_instant_depth = 0


@contextlib.contextmanager
def instant_backoff() -> Iterator[None]:
    """Turn every backoff delay into zero while the block runs: a testing aid.

    Restarts, error counts, classification and the restart-intensity limit behave as usual;
    only the waiting is skipped, so tests of code that uses ``robust_task`` or
    ``TaskSupervisor`` do not sleep through real backoff. Blocks nest. As a pytest fixture::

        @pytest.fixture(autouse=True)
        def _no_backoff():
            with instant_backoff():
                yield

    Yields:
        Nothing; the effect lasts until the block exits.
    """
    global _instant_depth
    _instant_depth += 1
    try:
        yield
    finally:
        _instant_depth -= 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    """How failed work is classified, delayed and eventually given up on.

    The delay before restart *n* (1-based, counted since the work last ran stably) is
    ``min(base * multiplier ** (n - 1), max_backoff)`` where ``base`` is ``backoff_seconds``
    for recoverable errors and ``backoff_seconds * unexpected_multiplier`` for unexpected
    ones; then jitter moves it by up to ``±jitter`` of itself, never above ``max_backoff``.
    With the defaults: 5, 10, 20, 40, 80, 160, 300, 300 … seconds for recoverable errors and
    60, 120, 240, 300 … for unexpected ones.

    If an attempt ran for ``reset_after`` seconds or longer before it failed, the count
    starts again at 1. If ``max_restarts`` is set, more than that many restarts within
    ``restart_window`` seconds make the failure final (Erlang/OTP's restart intensity); by
    default there is no limit and restarts go on for as long as it takes.

    Attributes:
        backoff_seconds: First delay after a recoverable error.
        max_backoff: Cap on every delay.
        multiplier: Growth of the delay per consecutive failure.
        unexpected_multiplier: Factor on ``backoff_seconds`` for the first delay after an
            unexpected error.
        jitter: Relative spread of each delay, in [0, 1); 0 turns jitter off.
        reset_after: Seconds of running after which a failure counts as the first again.
        max_restarts: Restart-intensity limit (restarts per window), or None for no limit.
        restart_window: The window of the intensity limit, in seconds.
        recoverable: Exception classes retried after the normal backoff.
        fatal: Exception classes never retried.
        classify: Replaces :func:`classify_error` entirely when given.

    Raises:
        ConfigurationError: On a negative delay, a multiplier below 1, jitter outside
            [0, 1), or a non-positive window.
    """

    backoff_seconds: float = 5.0
    max_backoff: float = 300.0
    multiplier: float = 2.0
    unexpected_multiplier: float = 12.0
    jitter: float = 0.1
    reset_after: float = 60.0
    max_restarts: int | None = None
    restart_window: float = 60.0
    recoverable: tuple[type[BaseException], ...] = DEFAULT_RECOVERABLE
    fatal: tuple[type[BaseException], ...] = DEFAULT_FATAL
    classify: Callable[[BaseException], ErrorClass] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.backoff_seconds >= 0:
            raise ConfigurationError(f"backoff_seconds must be >= 0, not {self.backoff_seconds!r}")
        if not self.max_backoff >= 0:
            raise ConfigurationError(f"max_backoff must be >= 0, not {self.max_backoff!r}")
        if not self.multiplier >= 1:
            raise ConfigurationError(f"multiplier must be >= 1, not {self.multiplier!r}")
        if not self.unexpected_multiplier >= 1:
            raise ConfigurationError(
                f"unexpected_multiplier must be >= 1, not {self.unexpected_multiplier!r}"
            )
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"jitter must be in [0, 1), not {self.jitter!r}")
        if not self.reset_after >= 0:
            raise ConfigurationError(f"reset_after must be >= 0, not {self.reset_after!r}")
        if self.max_restarts is not None and self.max_restarts < 0:
            raise ConfigurationError(
                f"max_restarts must be >= 0 or None, not {self.max_restarts!r}"
            )
        if not self.restart_window > 0:
            raise ConfigurationError(f"restart_window must be > 0, not {self.restart_window!r}")

    def classify_error(self, exc: BaseException) -> ErrorClass:
        """Classify ``exc`` with ``classify`` if set, else with :func:`classify_error`."""
        if self.classify is not None:
            return self.classify(exc)
        if isinstance(exc, self.recoverable) and not isinstance(exc, BaseExceptionGroup):
            return ErrorClass.RECOVERABLE  # the first rule of classify_error, taken quickly
        return classify_error(exc, recoverable=self.recoverable, fatal=self.fatal)

    def delay(
        self,
        failures: int,
        error_class: ErrorClass,
        rng: random.Random | None = None,
        *,
        at_least: float = 0.0,
    ) -> float:
        """Seconds to wait before restart number ``failures`` (1-based) after ``error_class``.

        Args:
            failures: Consecutive failures so far, counting this one.
            error_class: The class of this failure.
            rng: Source of jitter; the module's shared generator when None.
            at_least: A floor asked for by the failure itself (a server's ``Retry-After``,
                see :func:`retry_after`); honoured beyond ``max_backoff``, up to an hour.

        Returns:
            The delay, in [0, ``max_backoff``] unless ``at_least`` asks for more; 0 inside
            :func:`instant_backoff`.
        """
        if _instant_depth:
            return 0.0
        if at_least > 0:
            return max(min(at_least, MAX_RETRY_AFTER), self.delay(failures, error_class, rng))
        base = self.backoff_seconds
        if error_class is ErrorClass.UNEXPECTED:
            base *= self.unexpected_multiplier
        if base <= 0:
            return 0.0
        exponent = min(max(failures, 1) - 1, 1024)  # bounded so the float cannot overflow
        try:
            delay = min(base * self.multiplier**exponent, self.max_backoff)
        except OverflowError:
            delay = self.max_backoff
        if self.jitter and delay:
            delay *= 1.0 + (rng or _RNG).uniform(-self.jitter, self.jitter)
            delay = min(delay, self.max_backoff)
        return delay


_RNG = random.Random()

MAX_RETRY_AFTER = 3600.0
"""The longest wait a failure's ``retry_after`` can ask for, in seconds."""


def retry_after(exc: BaseException) -> float:
    """The seconds ``exc`` asks to wait before trying again: its ``retry_after`` attribute.

    A layer that turns a server's "try again later" into an exception (an HTTP 429 or 503
    with a ``Retry-After`` header) sets ``retry_after`` on it; :class:`RestartPolicy` then
    waits at least that long before the restart. Anything but a positive finite number
    counts as no wish (0).
    """
    value = getattr(exc, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < math.inf:
        return float(value)
    return 0.0


def instant_policy(**changes: object) -> RestartPolicy:
    """A :class:`RestartPolicy` with zero backoff and no jitter, for tests and benchmarks.

    Args:
        **changes: Other fields to set, as for :class:`RestartPolicy`.

    Returns:
        The policy.

    Raises:
        ConfigurationError: If a changed field is invalid.
    """
    return replace(RestartPolicy(backoff_seconds=0.0, jitter=0.0), **changes)  # type: ignore[arg-type]


def backoff_delays(
    policy: RestartPolicy,
    error_class: ErrorClass = ErrorClass.RECOVERABLE,
    *,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """The endless schedule of delays for consecutive failures of one class.

    ``list(islice(backoff_delays(RestartPolicy(jitter=0)), 8))`` is
    ``[5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]``.

    Args:
        policy: The policy that computes each delay.
        error_class: The class every failure is taken to have.
        rng: Source of jitter.

    Yields:
        The delay before restart 1, 2, 3, …
    """
    failures = 0
    while True:
        failures += 1
        yield policy.delay(failures, error_class, rng)
