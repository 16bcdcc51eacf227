"""check_agents(): True only when a real HTTP server on loopback answers 200."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from polymarket_agents.core.async_utils import HEALTH_URL_ENV, ConfigurationError, check_agents


async def _serve(status: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def healthy() -> AsyncIterator[int]:
    server, port = await _serve(b"200 OK")
    async with server:
        yield port


async def test_healthy_service_gives_true(healthy: int) -> None:
    """A 200 from /healthz means healthy."""
    assert await check_agents(f"http://127.0.0.1:{healthy}/healthz") is True


async def test_url_comes_from_the_environment(
    healthy: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no argument, the URL is read from POLYMARKET_AGENTS_HEALTH_URL."""
    monkeypatch.setenv(HEALTH_URL_ENV, f"http://127.0.0.1:{healthy}/healthz")
    assert await check_agents() is True


async def test_non_200_gives_false() -> None:
    """A 503 is unhealthy."""
    server, port = await _serve(b"503 Service Unavailable")
    async with server:
        assert await check_agents(f"http://127.0.0.1:{port}/healthz") is False


async def test_nothing_listening_gives_false() -> None:
    """A refused connection is unhealthy, not an exception."""
    server, port = await _serve(b"200 OK")
    server.close()
    await server.wait_closed()
    assert await check_agents(f"http://127.0.0.1:{port}/healthz", timeout=2) is False


async def test_silent_server_times_out_as_false() -> None:
    """A server that never answers is unhealthy after the timeout."""

    release = asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    server = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await check_agents(f"http://127.0.0.1:{port}/", timeout=0.1) is False
        release.set()
        await asyncio.sleep(0)


async def test_bad_url_is_a_value_error() -> None:
    """Only http:// URLs are accepted."""
    with pytest.raises(ValueError, match="health URL must be"):
        await check_agents("ftp://x/")


async def test_without_a_url_anywhere_it_asks_for_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core knows no service: with neither a URL nor the environment, it says so."""
    monkeypatch.delenv(HEALTH_URL_ENV, raising=False)
    with pytest.raises(ConfigurationError, match="no health URL"):
        await check_agents()
