"""The HTTP endpoints and the metrics collector, on a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import resource
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from polymarket_agents.core.async_utils import ConfigurationError, TaskSupervisor, check_agents
from polymarket_agents.service import (
    FailureCounts,
    HttpLimits,
    HttpServer,
    Phase,
    ServiceConfig,
    ServiceState,
    Snapshots,
    create_app,
    service_registry,
)


@pytest.fixture
async def served() -> AsyncIterator[tuple[ServiceState, str]]:
    """A service state with one failed and one running task, served on a free port."""
    failures = FailureCounts()
    supervisor = TaskSupervisor(observer=failures)
    state = ServiceState(ServiceConfig(http_port=0), supervisor, failures)

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
    # Counted by the supervisor's observer as the core reported them.
    assert 'polymarket_agents_task_failures_total{class="fatal"} 1.0' in text
    assert 'polymarket_agents_task_failures_total{class="recoverable"} 0.0' in text
    assert "polymarket_agents_task_final_failures_total 1.0" in text
    assert "polymarket_agents_task_stalls_total 0.0" in text
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


# -- isolation: snapshots, pacing, limits, a server thread of its own ---------------------------


async def test_snapshots_collect_once_per_age_and_share_a_collection() -> None:
    """Requests within max_age share one collection, concurrent ones too; older ones
    collect again; encode runs on each fresh collection."""
    calls: list[int] = []

    def collect() -> int:
        calls.append(1)
        return len(calls)

    snapshots = Snapshots(60.0)
    got = await asyncio.gather(*(snapshots.get("k", collect, str) for _ in range(10)))
    assert got == ["1"] * 10
    assert await snapshots.get("k", collect, str) == "1"
    assert await snapshots.get("k", collect, str, max_age=0) == "2"
    assert len(calls) == 2


async def test_a_stuck_owner_loop_serves_the_last_snapshot() -> None:
    """Collections run on the owner loop; while it is stuck, the last rendering is served
    after `wait`, or TimeoutError raised if there is none."""
    owner = asyncio.new_event_loop()
    thread = threading.Thread(target=owner.run_forever)
    thread.start()
    try:
        snapshots = Snapshots(0.0, wait=0.1)
        snapshots.owner = owner
        threads: list[str] = []

        def collect() -> str:
            threads.append(threading.current_thread().name)
            return "fresh"

        assert await snapshots.get("k", collect) == "fresh"
        assert threads == [thread.name]
        owner.call_soon_threadsafe(time.sleep, 0.5)  # the owner loop is stuck
        assert await snapshots.get("k", lambda: "late") == "fresh"
        with pytest.raises(TimeoutError):
            await snapshots.get("other", lambda: "late")
    finally:
        owner.call_soon_threadsafe(owner.stop)
        await asyncio.to_thread(thread.join)
        owner.close()


@pytest.fixture
async def limited() -> AsyncIterator[Callable[[HttpLimits], Awaitable[tuple[ServiceState, str]]]]:
    """Serve a fresh state with the given limits (on a thread of its own); stop at teardown."""
    servers: list[HttpServer] = []
    supervisor = TaskSupervisor()

    async def serve(limits: HttpLimits) -> tuple[ServiceState, str]:
        state = ServiceState(ServiceConfig(http_port=0), supervisor)
        server = HttpServer(
            create_app(state, service_registry(state), limits=limits), "127.0.0.1", 0, limits=limits
        )
        servers.append(server)
        return state, await server.start()

    yield serve
    for server in servers:
        await server.stop()
        await server.stop()  # idempotent


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_requests_are_paced_and_probes_do_not_queue_behind_scrapes(
    limited: Callable[[HttpLimits], Awaitable[tuple[ServiceState, str]]],
) -> None:
    """At 20 requests/s, ten /status requests take at least 9 intervals; a /healthz sent
    meanwhile is answered at once, from its own pace."""
    _, url = await limited(HttpLimits(request_rate=20.0))
    async with aiohttp.ClientSession() as session:

        async def get(path: str) -> float:
            async with session.get(url + path) as response:
                assert response.status in (200, 503)
                await response.read()
            return asyncio.get_running_loop().time()

        start = asyncio.get_running_loop().time()
        scrapes = [asyncio.create_task(get("/status")) for _ in range(10)]
        await asyncio.sleep(0.05)
        probe_at = await get("/healthz")
        ends = await asyncio.gather(*scrapes)
    assert max(ends) - start >= 9 / 20
    assert probe_at < max(ends)


async def test_a_connection_over_the_limit_is_answered_503_and_closed(
    limited: Callable[[HttpLimits], Awaitable[tuple[ServiceState, str]]],
) -> None:
    """With two connections open, a third gets 503 at once; once one closes, the next is served."""
    _, url = await limited(HttpLimits(max_connections=2))
    port = _port(url)
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b"too many connections" in answer
    held[0][1].close()
    await held[0][1].wait_closed()
    await asyncio.sleep(0.1)
    assert (await check_agents(f"{url}/healthz")) is True
    held[1][1].close()


async def test_a_burst_of_connections_under_the_limit_is_served_whole(
    limited: Callable[[HttpLimits], Awaitable[tuple[ServiceState, str]]],
) -> None:
    """Connections opened all at once, fewer than the limit, are all served: one being
    admitted is counted once, not again once it is open (which refused some of a burst)."""
    _, url = await limited(HttpLimits(max_connections=200, request_rate=1e4, probe_rate=1e4))
    port = _port(url)

    async def probe() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return await reader.read()
        finally:
            writer.close()

    async with asyncio.timeout(30):
        for _ in range(3):
            answers = await asyncio.gather(*(probe() for _ in range(190)))
            # Answered by /healthz (200, or 503 while the state is not running), never
            # refused as a connection too many.
            refused = [a for a in answers if b"too many" in a or not a.startswith(b"HTTP/1.1 ")]
            assert not refused, refused[0]


async def test_a_request_sent_too_slowly_is_closed(
    limited: Callable[[HttpLimits], Awaitable[tuple[ServiceState, str]]],
) -> None:
    """A request whose head never completes is closed after the idle timeout: it holds no
    descriptor for long."""
    _, url = await limited(HttpLimits(idle_timeout=0.3))
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(url))
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never complete
    start = asyncio.get_running_loop().time()
    async with asyncio.timeout(10):
        assert await reader.read() == b""
    assert asyncio.get_running_loop().time() - start >= 0.25
    writer.close()


async def test_probes_answer_while_the_service_loop_is_stuck(
    limited: Callable[[HttpLimits], Awaitable[tuple[ServiceState, str]]],
) -> None:
    """Served from its own thread, /healthz answers 503 with the heartbeat's age and /readyz
    503 saying the loop does not answer, while the service's loop is blocked."""
    state, url = await limited(HttpLimits(collect_timeout=0.2))
    state.last_beat -= 60
    answers: dict[str, tuple[int, str]] = {}

    def probe() -> None:
        for path in ("/healthz", "/readyz"):
            try:
                urllib.request.urlopen(url + path, timeout=5)
            except urllib.error.HTTPError as error:
                answers[path] = (error.code, error.read().decode())

    thread = threading.Thread(target=probe)
    thread.start()
    time.sleep(1.0)  # noqa: ASYNC251  (blocking the service's loop is the point)
    done_while_blocked = not thread.is_alive()
    await asyncio.to_thread(thread.join)
    assert done_while_blocked
    assert answers["/healthz"][0] == 503
    assert "event loop heartbeat 6" in json.loads(answers["/healthz"][1])["reasons"][0]
    assert json.loads(answers["/readyz"][1]) == {
        "ready": False,
        "reasons": ["the service's event loop does not answer"],
    }


async def test_metrics_are_negotiated_and_compressed_once(
    served: tuple[ServiceState, str],
) -> None:
    """OpenMetrics when asked, gzip when accepted; repeated scrapes share one collection."""
    state, url = served
    headers = {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"}
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.get(f"{url}/metrics", headers=headers) as response:
                assert response.headers["Content-Type"].startswith("application/openmetrics-text")
                assert response.headers["Content-Encoding"] == "gzip"
                text = await response.text()
                assert text.rstrip().endswith("# EOF")
    assert state.scrapes == 1


def test_limits_are_checked() -> None:
    """Zero or negative limits are configuration errors; the default connection limit
    leaves most descriptors to the rest of the service."""
    with pytest.raises(ConfigurationError, match="max_connections must be > 0"):
        HttpLimits(max_connections=0)
    with pytest.raises(ConfigurationError, match="snapshot_age must be >= 0"):
        HttpLimits(snapshot_age=-1)
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert HttpLimits().max_connections <= max(8, soft // 4)
