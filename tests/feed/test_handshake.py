"""Refused handshakes and dropped sockets: the feed classifies websockets' errors itself.

401, 403 and 404 are final; 429 and 5xx are retried, after at least the server's
Retry-After; a dropped socket is a recoverable error, waited for with the normal backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from itertools import pairwise

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from polymarket_agents.core.async_utils import RestartPolicy
from polymarket_agents.feed import FeedStopped, MarketFeed
from polymarket_agents.feed._connection import retry_after_header

from .conftest import MakeSimulator, fast_options

pytestmark = pytest.mark.looptime

Refuser = Callable[..., Awaitable[tuple[str, list[float]]]]


@pytest.fixture
async def refusing_server() -> AsyncIterator[Refuser]:
    """A websocket server on loopback that refuses every handshake with a given status;
    it returns its URL and the loop time of every attempt."""
    servers = []

    async def start(status: int, headers: dict[str, str] | None = None) -> tuple[str, list[float]]:
        attempts: list[float] = []
        loop = asyncio.get_running_loop()

        def refuse(connection: ServerConnection, request: Request) -> Response:
            attempts.append(loop.time())
            response = connection.respond(HTTPStatus(status), "refused\n")
            for name, value in (headers or {}).items():
                response.headers[name] = value
            return response

        async def never(connection: ServerConnection) -> None:
            raise AssertionError("no handshake is accepted")

        server = await serve(never, "127.0.0.1", 0, process_request=refuse)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/ws/market", attempts

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _fails_for_good(url: str) -> FeedStopped:
    options = fast_options(policy=RestartPolicy(backoff_seconds=1.0, jitter=0.0))
    async with MarketFeed(url, ["1"], **options) as feed:
        with pytest.raises(FeedStopped, match="failed for good") as caught:
            async for _ in feed:
                pass
    return caught.value


@pytest.mark.parametrize("status", [401, 403, 404])
async def test_an_unauthorised_forbidden_or_missing_endpoint_is_final(
    refusing_server: Refuser, status: int
) -> None:
    """No retry can fix credentials or a path: one attempt, then FeedStopped."""
    url, attempts = await refusing_server(status)
    stopped = await _fails_for_good(url)
    assert len(attempts) == 1
    assert str(status) in str(stopped)


@pytest.mark.parametrize("status", [429, 503])
async def test_too_many_requests_and_unavailable_wait_for_retry_after(
    refusing_server: Refuser, status: int
) -> None:
    """A refusal with Retry-After: 30 is retried 30 s later, not after the 1 s backoff."""
    url, attempts = await refusing_server(status, {"Retry-After": "30"})
    options = fast_options(policy=RestartPolicy(backoff_seconds=1.0, jitter=0.0))
    async with MarketFeed(url, ["1"], **options):
        while len(attempts) < 3:
            await asyncio.sleep(1)
    assert [round(b - a) for a, b in pairwise(attempts)] == [30, 30]


async def test_a_server_error_without_retry_after_backs_off_as_usual(
    refusing_server: Refuser,
) -> None:
    """A 502 is transient: retried after 1, 2, 4 s."""
    url, attempts = await refusing_server(502)
    options = fast_options(policy=RestartPolicy(backoff_seconds=1.0, jitter=0.0))
    async with MarketFeed(url, ["1"], **options):
        while len(attempts) < 4:
            await asyncio.sleep(0.25)
    assert [round(b - a) for a, b in pairwise(attempts)] == [1, 2, 4]


async def test_a_dropped_socket_is_recoverable_with_the_normal_backoff(
    make_simulator: MakeSimulator,
) -> None:
    """The reconnection after a drop waits the recoverable delay (1 s), not the longer
    delay of an unexpected error (12 s)."""
    sim = await make_simulator(markets=1)
    options = fast_options(policy=RestartPolicy(backoff_seconds=1.0, jitter=0.0))
    async with MarketFeed(sim.ws_url, markets=sim.markets(), **options) as feed:
        await feed.wait_ready()
        loop = asyncio.get_running_loop()
        sim.drop_connections()
        dropped = loop.time()
        while feed.stats.connections < 2:
            await asyncio.sleep(0.1)
        assert 0.9 <= loop.time() - dropped < 3
        # The connection is a task of the feed's supervisor, each socket one attempt.
        metrics = feed.supervisor.get_metrics()
        assert list(metrics) == ["market-feed-1"]
        assert (metrics["market-feed-1"]["restarts"], metrics["market-feed-1"]["errors"]) == (1, 1)
        assert metrics["market-feed-1"]["last_error"].startswith("ConnectionClosed")  # type: ignore[union-attr]
    assert len(feed.supervisor) == 0  # closed connections leave it


def test_retry_after_header_reads_seconds_and_dates() -> None:
    """Seconds or an HTTP date; a past date or nonsense asks for nothing."""

    class Refused(Exception):
        def __init__(self, value: str) -> None:
            self.response = Response(429, "Too Many Requests", Headers({"Retry-After": value}))

    now = 1_700_000_000.0
    assert retry_after_header(Refused("120"), now) == 120.0
    assert retry_after_header(Refused(formatdate(now + 60, usegmt=True)), now) == 60.0
    assert retry_after_header(Refused(formatdate(now - 60, usegmt=True)), now) == 0.0
    assert retry_after_header(Refused("soon"), now) == 0.0
    assert retry_after_header(ValueError("no response"), now) == 0.0
    assert retry_after_header(None, now) == 0.0
