"""The restart policy is pure: schedules, classification and validation, no event loop."""

from __future__ import annotations

import errno
import inspect
import random
import re
import socket
import sqlite3
from itertools import islice

import pytest

from polymarket_agents.core.async_utils import (
    DEFAULT_RECOVERABLE,
    ConfigurationError,
    ErrorClass,
    RestartPolicy,
    backoff_delays,
    classify_error,
    instant_backoff,
    instant_policy,
    retry_after,
)
from polymarket_agents.core.async_utils import _policy as policy_module


def test_default_schedule_doubles_from_five_and_caps_at_300() -> None:
    """Recoverable errors back off 5, 10, 20 … seconds, capped at 300."""
    delays = list(islice(backoff_delays(RestartPolicy(jitter=0)), 9))
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300, 300]


def test_unexpected_errors_start_at_sixty_seconds() -> None:
    """Unexpected errors start from 12 x backoff_seconds (60 s at the default 5 s)."""
    policy = RestartPolicy(jitter=0)
    delays = list(islice(backoff_delays(policy, ErrorClass.UNEXPECTED), 5))
    assert delays == [60, 120, 240, 300, 300]


def test_backoff_seconds_scales_the_schedule() -> None:
    """A different backoff_seconds moves the whole schedule."""
    policy = RestartPolicy(backoff_seconds=10, jitter=0)
    assert list(islice(backoff_delays(policy), 4)) == [10, 20, 40, 80]


def test_jitter_stays_within_its_proportion_and_under_the_cap() -> None:
    """Jitter moves each delay by at most ±10 % of itself and never above max_backoff."""
    policy = RestartPolicy()
    rng = random.Random(7)
    for failures in range(1, 12):
        exact = RestartPolicy(jitter=0).delay(failures, ErrorClass.RECOVERABLE)
        for _ in range(50):
            delay = policy.delay(failures, ErrorClass.RECOVERABLE, rng)
            assert exact * 0.9 <= delay <= min(exact * 1.1, 300)


def test_jitter_spreads_delays() -> None:
    """With jitter on, simultaneous failures do not all wait exactly as long."""
    rng = random.Random(1)
    delays = {RestartPolicy().delay(3, ErrorClass.RECOVERABLE, rng) for _ in range(20)}
    assert len(delays) > 10


def test_huge_failure_counts_do_not_overflow() -> None:
    """A task that failed a million times still gets the capped delay."""
    assert RestartPolicy(jitter=0).delay(10**6, ErrorClass.RECOVERABLE) == 300


def test_zero_backoff_stays_zero_after_thousands_of_failures() -> None:
    """A zero-delay policy never turns into the cap, however many failures it has seen."""
    assert instant_policy().delay(5000, ErrorClass.RECOVERABLE) == 0
    assert RestartPolicy(backoff_seconds=0).delay(10**6, ErrorClass.UNEXPECTED) == 0


def test_instant_backoff_zeroes_delays_and_nests() -> None:
    """instant_backoff() turns every delay into 0 until the outermost block exits."""
    policy = RestartPolicy()
    with instant_backoff():
        with instant_backoff():
            assert policy.delay(3, ErrorClass.UNEXPECTED) == 0
        assert policy.delay(3, ErrorClass.RECOVERABLE) == 0
    assert policy.delay(1, ErrorClass.RECOVERABLE) > 0


def test_instant_policy_has_no_delay_and_accepts_changes() -> None:
    """instant_policy() is a zero-delay policy whose other fields can be set."""
    policy = instant_policy(max_restarts=2)
    assert policy.delay(5, ErrorClass.UNEXPECTED) == 0
    assert policy.max_restarts == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backoff_seconds": -1}, "backoff_seconds must be >= 0"),
        ({"max_backoff": -1}, "max_backoff must be >= 0"),
        ({"multiplier": 0.5}, "multiplier must be >= 1"),
        ({"unexpected_multiplier": 0}, "unexpected_multiplier must be >= 1"),
        ({"jitter": 1.0}, "jitter must be in [0, 1)"),
        ({"reset_after": -1}, "reset_after must be >= 0"),
        ({"max_restarts": -1}, "max_restarts must be >= 0 or None"),
        ({"restart_window": 0}, "restart_window must be > 0"),
        ({"backoff_seconds": float("nan")}, "backoff_seconds must be >= 0"),
    ],
)
def test_invalid_settings_raise_configuration_error(
    changes: dict[str, float], message: str
) -> None:
    """Bad settings fail at construction with a message naming the rule and the value."""
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        RestartPolicy(**changes)  # type: ignore[arg-type]


def test_configuration_error_is_fatal_value_error() -> None:
    """ConfigurationError is a ValueError, hence fatal by default."""
    assert issubclass(ConfigurationError, ValueError)
    assert classify_error(ConfigurationError("bad")) is ErrorClass.FATAL


class _Custom(Exception):
    pass


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionError("down"), ErrorClass.RECOVERABLE),
        (ConnectionResetError(), ErrorClass.RECOVERABLE),
        (TimeoutError(), ErrorClass.RECOVERABLE),
        (sqlite3.OperationalError("database is locked"), ErrorClass.UNEXPECTED),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), ErrorClass.RECOVERABLE),
        (socket.gaierror(-3, "Temporary failure in name resolution"), ErrorClass.RECOVERABLE),
        (FileNotFoundError("x"), ErrorClass.UNEXPECTED),
        (ValueError("bad"), ErrorClass.FATAL),
        (KeyError("k"), ErrorClass.FATAL),
        (RuntimeError("bug"), ErrorClass.UNEXPECTED),
        (_Custom(), ErrorClass.UNEXPECTED),
        (ExceptionGroup("g", [ConnectionError(), TimeoutError()]), ErrorClass.RECOVERABLE),
        (ExceptionGroup("g", [ConnectionError(), ValueError()]), ErrorClass.FATAL),
        (ExceptionGroup("g", [ConnectionError(), RuntimeError()]), ErrorClass.UNEXPECTED),
    ],
)
def test_classify_error_follows_the_documented_table(exc: Exception, expected: ErrorClass) -> None:
    """Each exception lands in the class the design gives it."""
    assert classify_error(exc) is expected


def test_other_libraries_errors_are_unknown_to_the_core() -> None:
    """The core names no library above it: their errors are unexpected until a layer
    turns them into ConnectionError subclasses or configures them."""
    from websockets.exceptions import ConnectionClosedError, InvalidURI

    closed = ConnectionClosedError(None, None)
    assert classify_error(closed) is ErrorClass.UNEXPECTED
    assert classify_error(InvalidURI("htp://x", "scheme isn't ws or wss")) is ErrorClass.UNEXPECTED
    configured = RestartPolicy(recoverable=(*DEFAULT_RECOVERABLE, ConnectionClosedError))
    assert configured.classify_error(closed) is ErrorClass.RECOVERABLE
    source = inspect.getsource(policy_module)
    for name in ("websockets", "sqlite", "httpx", "aiohttp", "asyncpg"):
        assert name not in source


def test_error_classes_are_configurable() -> None:
    """recoverable/fatal tuples and a classify callable replace the defaults."""
    policy = RestartPolicy(recoverable=(_Custom,), fatal=(RuntimeError,))
    assert policy.classify_error(_Custom()) is ErrorClass.RECOVERABLE
    assert policy.classify_error(RuntimeError()) is ErrorClass.FATAL
    assert policy.classify_error(ValueError()) is ErrorClass.UNEXPECTED
    always_fatal = RestartPolicy(classify=lambda exc: ErrorClass.FATAL)
    assert always_fatal.classify_error(ConnectionError()) is ErrorClass.FATAL


def test_retry_after_reads_a_positive_finite_hint() -> None:
    """An error's retry_after is its wish in seconds; anything else is no wish."""

    def error(value: object) -> ConnectionError:
        exc = ConnectionError("429")
        exc.retry_after = value  # type: ignore[attr-defined]
        return exc

    assert retry_after(error(12)) == 12.0
    assert retry_after(error(0.5)) == 0.5
    for nonsense in (0, -3, float("nan"), float("inf"), "12", True, None):
        assert retry_after(error(nonsense)) == 0.0
    assert retry_after(ConnectionError("no hint")) == 0.0


def test_a_hint_is_a_floor_on_the_delay_capped_at_an_hour() -> None:
    """at_least lifts the delay, beyond max_backoff, up to one hour; instant mode wins."""
    policy = RestartPolicy(jitter=0)
    assert policy.delay(1, ErrorClass.RECOVERABLE, at_least=42.0) == 42.0
    assert policy.delay(1, ErrorClass.RECOVERABLE, at_least=1.0) == 5.0
    assert policy.delay(1, ErrorClass.RECOVERABLE, at_least=1e9) == 3600.0
    with instant_backoff():
        assert policy.delay(1, ErrorClass.RECOVERABLE, at_least=42.0) == 0.0
