"""The HTTP endpoints and the metrics collector, on a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from polymarket_agents.core.async_utils import TaskSupervisor, check_agents
from polymarket_agents.service import (
    HttpServer,
    Phase,
    ServiceConfig,
    ServiceState,
    create_app,
    service_registry,
)


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServiceState, str]]:
    """A service state with one failed and one running task, served on a free port."""
    supervisor = TaskSupervisor()
    state = ServiceState(ServiceConfig(http_port=0), supervisor)

    async def broken() -> None:
        raise ValueError("missing API key")

    await supervisor.start_task("broken", broken, restart_on_failure=False)
    await supervisor.start_task("beat", state.heartbeat)
    await supervisor.join("broken")
    server = HttpServer(create_app(state, service_registry(state)), "127.0.0.1", 0)
    url = await server.start()
    try:
        yield state, url
    finally:
        await server.stop()
        await supervisor.stop_all()


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_healthz_is_200_while_alive_and_503_once_failed(
    served: tuple[ServiceState, str],
) -> None:
    """Liveness answers 200 while the loop turns, 503 with the reason once the service failed."""
    state, url = served
    status, body = await _get(f"{url}/healthz")
    assert status == 200
    assert json.loads(body)["alive"] is True
    assert await check_agents(f"{url}/healthz")
    state.phase, state.failure = Phase.FAILED, "database unreachable"
    status, body = await _get(f"{url}/healthz")
    assert status == 503
    assert json.loads(body)["reasons"] == ["service failed: database unreachable"]
    assert not await check_agents(f"{url}/healthz")


async def test_readyz_is_503_with_reasons_before_the_agents_run(
    served: tuple[ServiceState, str],
) -> None:
    """Readiness answers 503 and says why while the service is not running yet."""
    _, url = served
    status, body = await _get(f"{url}/readyz")
    assert status == 503
    assert json.loads(body) == {"ready": False, "reasons": ["service is starting"]}


async def test_metrics_expose_task_and_service_families(served: tuple[ServiceState, str]) -> None:
    """/metrics is Prometheus text with per-task restarts, errors, status and service gauges."""
    state, url = served
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert 'polymarket_agents_task_errors_total{task="broken"} 1.0' in text
    assert 'polymarket_agents_task_restarts_total{task="beat"} 0.0' in text
    assert 'polymarket_agents_task_status{status="stopped",task="broken"} 1.0' in text
    assert 'polymarket_agents_task_status{status="running",task="beat"} 1.0' in text
    assert "polymarket_agents_up 1.0" in text
    assert "polymarket_agents_ready 0.0" in text
    assert 'polymarket_agents_phase{phase="starting"} 1.0' in text
    assert "process_resident_memory_bytes" in text
    assert state.scrapes == 1


async def test_status_is_the_supervisor_metrics_and_service_counters(
    served: tuple[ServiceState, str],
) -> None:
    """/status returns get_metrics() (datetimes as text) beside the service's own counters."""
    state, url = served
    status, body = await _get(f"{url}/status")
    assert status == 200
    data = json.loads(body)
    broken = data["tasks"]["broken"]
    assert broken["status"] == "stopped"
    assert broken["errors"] == 1
    assert broken["last_error"] == "ValueError: missing API key"
    assert isinstance(broken["last_error_time"], str)
    assert data["service"]["phase"] == "starting"
    assert data["tree"][0].startswith("tasks  one_for_one  running")
    assert any("broken  stopped  (failed)" in line for line in data["tree"])
    assert data["service"]["http_requests"] == state.http_requests
    assert data["ready"] is False
    assert data["runtime"] == {}


async def test_a_busy_port_is_an_os_error() -> None:
    """Starting on a port in use raises OSError and leaves nothing half-open."""
    state = ServiceState(ServiceConfig(), TaskSupervisor())
    first = HttpServer(create_app(state, service_registry(state)), "127.0.0.1", 0)
    url = await first.start()
    port = int(url.rsplit(":", 1)[1])
    second = HttpServer(create_app(state, service_registry(state)), "127.0.0.1", port)
    try:
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        with pytest.raises(RuntimeError, match="has not started"):
            _ = second.url
    finally:
        await first.stop()


def test_liveness_fails_when_the_heartbeat_stalls() -> None:
    """A heartbeat older than the stall limit makes the service not alive."""
    state = ServiceState(ServiceConfig(), TaskSupervisor())
    assert state.liveness() == (True, [])
    state.last_beat -= 60
    alive, reasons = state.liveness()
    assert not alive
    assert reasons[0].startswith("event loop heartbeat")


async def test_the_service_layer_check_agents_finds_the_service_by_its_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """service.check_agents() builds the URL from the HTTP host and port settings."""
    from polymarket_agents.service import check_agents as service_check_agents

    server = await asyncio.start_server(_answer_200, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        environ = {
            "POLYMARKET_AGENTS_HTTP_HOST": "0.0.0.0",
            "POLYMARKET_AGENTS_HTTP_PORT": str(port),
        }
        assert await service_check_agents(environ=environ) is True


async def _answer_200(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()
    writer.close()
