"""Readiness: checks and held reasons from any part, gathered in one answer."""

from __future__ import annotations

import logging
import threading

import pytest

from polymarket_agents.core.async_utils import Readiness


def test_ready_until_a_check_or_a_held_reason_says_otherwise() -> None:
    """No check and no held reason: ready; each kind of reason makes it not ready."""
    readiness = Readiness()
    assert readiness.ready
    assert readiness.reasons() == []
    depth = [0]
    readiness.add_check("queue", lambda: "queue nearly full" if depth[0] > 9 else None)
    assert readiness.ready
    depth[0] = 10
    assert readiness.reasons() == ["queue nearly full"]
    readiness.set_reason("database", "database file data/x.sqlite vanished")
    assert readiness.reasons() == ["queue nearly full", "database file data/x.sqlite vanished"]
    depth[0] = 0
    readiness.clear_reason("database")
    assert readiness.ready


def test_a_check_may_give_several_reasons_or_none() -> None:
    """A check returns a string, an iterable of strings, or nothing; checks keep their order."""
    readiness = Readiness()
    readiness.add_check("a", lambda: ["first", "second"])
    readiness.add_check("b", lambda: ())
    readiness.add_check("c", lambda: "third")
    assert readiness.reasons() == ["first", "second", "third"]
    readiness.remove_check("a")
    readiness.remove_check("no such check")
    assert readiness.reasons() == ["third"]


def test_a_held_reason_is_replaced_under_its_name() -> None:
    """set_reason under one name replaces the reason held before; clearing twice is harmless."""
    readiness = Readiness()
    readiness.set_reason("writes", "writes failing for 2.0 s")
    readiness.set_reason("writes", "writes failing for 4.0 s")
    assert readiness.reasons() == ["writes failing for 4.0 s"]
    readiness.clear_reason("writes")
    readiness.clear_reason("writes")
    assert readiness.ready


def test_a_check_that_raises_is_a_reason_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    """A broken check does not break the probe: its error is the reason, logged at WARNING."""
    readiness = Readiness()

    def broken() -> None:
        raise RuntimeError("boom")

    readiness.add_check("broken", broken)
    readiness.add_check("fine", lambda: None)
    with caplog.at_level(logging.WARNING):
        assert readiness.reasons() == ["broken: readiness check failed: RuntimeError: boom"]
    assert [r.message for r in caplog.records] == ["readiness check broken failed: boom"]


def test_a_name_is_added_once() -> None:
    """Adding a second check under a taken name is refused, naming it."""
    readiness = Readiness()
    readiness.add_check("feed", lambda: None)
    with pytest.raises(ValueError, match="'feed' is already added"):
        readiness.add_check("feed", lambda: None)


def test_held_reasons_may_be_set_from_other_threads() -> None:
    """Threads setting and clearing their own reasons leave exactly what they last set."""
    readiness = Readiness()

    def worker(n: int) -> None:
        for i in range(200):
            readiness.set_reason(f"t{n}", f"{n}:{i}")
            if i % 2:
                readiness.clear_reason(f"t{n}")
        readiness.set_reason(f"t{n}", f"{n}: done")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(readiness.reasons()) == [f"{n}: done" for n in range(4)]
