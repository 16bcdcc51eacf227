"""``polymarket-agents simulate``: the simulator alone, as a user starts and stops it."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable

import pytest

from .conftest import START_TIMEOUT, ServiceProcess, http_get, wait_for

pytestmark = pytest.mark.slow


def test_simulate_serves_the_listing_and_stops_on_sigterm(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """simulate prints its URLs, lists its markets over HTTP and exits 0 on SIGTERM."""
    sim = start_service("simulate", "--port", "0", "--markets", "3", "--malformed-rate", "0.1")

    def urls() -> re.Match[str] | None:
        assert sim.process.poll() is None, sim.stderr
        return re.search(r"gamma listing:\s+(\S+)", sim.stdout)

    listing = wait_for(urls, START_TIMEOUT, "the simulator's URLs").group(1)
    assert re.search(r"market channel: ws://127\.0\.0\.1:\d+/ws/market", sim.stdout)
    status, body = http_get(listing)
    assert status == 200
    assert len(json.loads(body)) == 3
    sim.terminate(signal.SIGTERM)
    assert sim.wait(10) == 0
