"""The service under HTTP and readiness faults, as a user runs it: a real process, real
clients hammering it from a thread, half-open sockets, a frozen feed process, a full disk,
SIGTERM under load.

Timing here only bounds what must not hang; the figures (rows/s under load, /healthz p99)
are measured by ``bench/service.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..service.conftest import (
    START_TIMEOUT,
    ServiceProcess,
    SimulatorProcess,
    disk_full,
    http_get,
    start_service,
    start_simulator,
    wait_for,
)

__all__ = ["start_service", "start_simulator"]  # fixtures, used by name

pytestmark = pytest.mark.slow

GRACE = 5.0
FAST = (
    "run", "--http-port", "0", "--log-format", "json", "--live-view", "off",
    "--grace-period", str(GRACE), "--health-interval", "0.5",
)  # fmt: skip


class Clients:
    """``count`` keep-alive clients on a thread, GETting ``paths`` back to back until stopped."""

    def __init__(self, url: str, count: int, paths: tuple[str, ...]) -> None:
        self.answers: dict[int, int] = {}
        self.refusals: list[bytes] = []  # the first few bodies of answers other than 200
        self.errors = 0
        self._stop = threading.Event()
        # Not in debug mode: the clients must be quicker than the service they load.
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._run(url, count, paths),), kwargs={"debug": False}
        )
        self._thread.start()

    async def _run(self, url: str, count: int, paths: tuple[str, ...]) -> None:
        connector = aiohttp.TCPConnector(limit=count)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

            async def client(n: int) -> None:
                while not self._stop.is_set():
                    try:
                        async with session.get(url + paths[n % len(paths)]) as response:
                            body = await response.read()
                            self.answers[response.status] = self.answers.get(response.status, 0) + 1
                            if response.status != 200 and len(self.refusals) < 5:
                                self.refusals.append(body[:200])
                    except (aiohttp.ClientError, OSError, TimeoutError):
                        self.errors += 1
                        await asyncio.sleep(0.05)
                    n += 1

            await asyncio.gather(*(client(n) for n in range(count)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _status(service: ServiceProcess) -> dict[str, Any]:
    status, data = service.get_json("/status")
    assert status == 200
    result: dict[str, Any] = data
    return result


def _summary(service: ServiceProcess) -> dict[str, Any]:
    lines = [line for line in service.stdout.splitlines() if line.startswith('{"summary"')]
    assert len(lines) == 1, service.stdout
    summary: dict[str, Any] = json.loads(lines[0])["summary"]
    return summary


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_hammering_clients_neither_stop_ingestion_nor_probes_nor_the_shutdown(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """200 keep-alive clients hammering /metrics and /status: rows keep being stored, every
    /healthz probe answers 200 in well under a second, /readyz stays 200; SIGTERM under the
    load exits 0 within the grace period with nothing lost."""
    service = start_service(*FAST, "--market-count", "5", "--sim-rate", "200")
    service.wait_ready()
    url = service.url
    assert url is not None
    before = _status(service)["runtime"]["stored_rows"]
    clients = Clients(url, 200, ("/metrics", "/status"))
    try:
        time.sleep(0.5)
        slowest = 0.0
        for _ in range(20):
            sent = time.monotonic()
            assert http_get(f"{url}/healthz")[0] == 200
            slowest = max(slowest, time.monotonic() - sent)
            assert http_get(f"{url}/readyz")[0] == 200
            time.sleep(0.05)
        assert slowest < 1.0
        stored = wait_for(
            lambda: (n := _status(service)["runtime"]["stored_rows"]) > before + 200 and n,
            START_TIMEOUT,
            "rows stored under load",
        )
        assert stored > before
        service.terminate(signal.SIGTERM)
        sent = time.monotonic()
        code = service.wait(GRACE + 2.0)
        took = time.monotonic() - sent
    finally:
        clients.stop()
    assert code == 0, service.stderr[-3000:]
    assert took < GRACE
    summary = _summary(service)
    assert summary["lost_rows"] == 0
    assert clients.answers.get(200, 0) > 100
    assert not clients.answers.keys() - {200}, (clients.answers, clients.refusals)


def test_half_open_sockets_leave_descriptors_for_the_feed(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """With 256 descriptors, 400 connections that never finish a request: those over the
    connection limit are answered 503 at once, the others closed after the idle timeout;
    the process never runs out of descriptors, and the feed keeps reconnecting meanwhile."""

    def limit_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    service = start_service(
        *FAST,
        "--market-count", "5", "--sim-rate", "100", "--sim-faults", "drop-every=0.5",
        preexec_fn=limit_fds,
    )  # fmt: skip
    service.wait_ready()
    assert service.url is not None
    port = int(service.url.rsplit(":", 1)[1])
    reconnects = _status(service)["runtime"]["reconnects"]
    sockets: list[socket.socket] = []
    try:
        for _ in range(400):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # never finished
            sockets.append(s)
        most = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            most = max(most, _fds(service.process.pid))
            time.sleep(0.05)
        assert most < 256 - 32, most
        # Each is answered 503 at once (a reset, if the unread request arrives first) or
        # closed once the idle timeout passes: none is left open.
        answers = {"503": 0, "reset": 0, "closed": 0}
        for s in sockets:
            s.settimeout(15)
            try:
                answer = s.recv(4096)
            except ConnectionResetError:
                answers["reset"] += 1
                continue
            assert answer in (b"",) or answer.startswith(b"HTTP/1.1 503 "), answer
            answers["503" if answer else "closed"] += 1
        assert answers["503"] + answers["reset"] >= 200, answers
    finally:
        for s in sockets:
            s.close()
    status = wait_for(
        lambda: (data := _status(service))["runtime"]["reconnects"] >= reconnects + 4 and data,
        START_TIMEOUT,
        "the feed to reconnect",
    )
    assert "Too many open files" not in service.stderr
    service.wait_ready()
    assert status["service"]["phase"] == "running"


def test_a_thousand_concurrent_scrapes_leave_memory_flat(
    start_service: Callable[..., ServiceProcess],
) -> None:
    """Three rounds of 1,000 concurrent /metrics and /status requests, each on a connection
    of its own: those over the connection limit are answered 503 at once, the resident
    memory grows by a few MiB at most, and the service answers normally afterwards."""
    service = start_service(*FAST, "--market-count", "20", "--sim-rate", "100")
    service.wait_ready()
    url = service.url
    assert url is not None

    port = int(url.rsplit(":", 1)[1])

    async def burst() -> dict[int, int]:
        """1,000 requests at once, each on a connection of its own: raw streams, since a
        full client in debug mode would be slower than the service it measures."""
        counts: dict[int, int] = {}

        async def one(path: str) -> None:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                counts[0] = counts.get(0, 0) + 1
                return
            try:
                writer.write(
                    f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
                )
                answer = await reader.read()
                status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
            except OSError:
                status = 0
            finally:
                writer.close()
            counts[status] = counts.get(status, 0) + 1

        async with asyncio.timeout(60):
            await asyncio.gather(*(one(("/metrics", "/status")[i % 2]) for i in range(1000)))
        return counts

    time.sleep(1.0)
    before = _rss_kib(service.process.pid)
    for _ in range(3):
        counts = asyncio.run(burst(), debug=False)
        # Served up to the connection limit (256), the rest refused at once (503, or a
        # reset when the unread request came first): never 1,000 in progress together.
        assert counts.get(200, 0) >= 100, counts
        assert counts.get(503, 0) + counts.get(0, 0) >= 200, counts
        assert set(counts) <= {200, 503, 0}, counts
    time.sleep(1.0)
    grown = _rss_kib(service.process.pid) - before
    assert grown < 16 * 1024, f"resident memory grew by {grown} KiB"
    service.wait_ready()


def test_readiness_follows_a_frozen_feed_process(
    start_service: Callable[..., ServiceProcess],
    start_simulator: Callable[..., SimulatorProcess],
) -> None:
    """SIGSTOP of the feed's process: /readyz goes 503 past --ready-silence, /status says
    the feed is silent; SIGCONT: ready again."""
    simulator = start_simulator("--rate", "100")
    service = start_service(
        *FAST,
        "--market-count", "3", "--ready-silence", "1",
        "--feed-url", simulator.ws_url, "--gamma-url", simulator.http_url,
    )  # fmt: skip
    service.wait_ready()
    simulator.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        reasons = wait_for(
            lambda: (got := service.get_json("/readyz"))[0] == 503 and got[1]["reasons"],
            START_TIMEOUT,
            "/readyz to say the feed is silent",
        )
        assert time.monotonic() - stopped < 5.0
        assert any(r.startswith("feed silent: no market data for") for r in reasons), reasons
        assert any(r.startswith("feed silent") for r in _status(service)["reasons"])
    finally:
        simulator.signal(signal.SIGCONT)
    service.wait_ready()


def test_readiness_follows_failing_writes(start_service: Callable[..., ServiceProcess]) -> None:
    """A full disk: /readyz goes 503 within seconds, long before the queue fills, and says
    the writes fail; once there is room again, ready again."""
    service = start_service(*FAST, "--market-count", "3", "--sim-rate", "100")
    service.wait_ready()
    with disk_full(service.process.pid):
        full = time.monotonic()
        reasons = wait_for(
            lambda: (got := service.get_json("/readyz"))[0] == 503 and got[1]["reasons"],
            START_TIMEOUT,
            "/readyz to say the writes fail",
        )
        assert time.monotonic() - full < 6.0
        assert any("ingestion" in r or "database" in r for r in reasons), reasons
        runtime = _status(service)["runtime"]
        assert runtime["queue_depth"] < 0.9 * runtime["queue_size"]
    service.wait_ready()
