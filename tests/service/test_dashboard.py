"""The live dashboard: its stream over HTTP, and the page in a real headless Chromium."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from polymarket_agents.service import Service, ServiceConfig

from .conftest import ServiceProcess, http_get

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


async def _events(url: str, count: int, timeout: float = 20.0) -> list[tuple[str, Any]]:
    """The first ``count`` server-sent events of ``url``: (event, decoded data)."""
    events: list[tuple[str, Any]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        name = ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[len("data: ") :])))
                if len(events) >= count:
                    break
    return events


async def test_the_stream_carries_history_then_live_snapshots(tmp_path: Path) -> None:
    """/dashboard/events: the cash and P&L history, then a snapshot a second with the
    tasks (monitors labelled by slug), books, account, feed and signals; / serves the page,
    or the endpoint list to a JSON client; unknown files are 404."""
    config = ServiceConfig(
        http_port=0,
        db_path=tmp_path / "dash.sqlite",
        market_count=2,
        sim_rate=50,
        sim_dislocation_rate=0.2,
    )
    service = Service(config, install_signal_handlers=False)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(20):
            while not service.state.readiness()[0]:
                assert not task.done()
                await asyncio.sleep(0.05)
        url = service.state.http_url
        assert url is not None
        await asyncio.sleep(2.5)  # a few history points
        events = await _events(f"{url}/dashboard/events", 3)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url}/") as page:
                assert page.status == 200
                assert page.content_type == "text/html"
                assert "/dashboard/app.js" in await page.text()
            async with session.get(f"{url}/", headers={"Accept": "application/json"}) as index:
                assert "/dashboard/events" in (await index.json())["endpoints"]
            async with session.get(f"{url}/dashboard/uPlot.esm.js") as script:
                assert script.content_type == "text/javascript"
            async with session.get(f"{url}/dashboard/secret.py") as missing:
                assert missing.status == 404
            async with session.get(f"{url}/status") as status:
                tasks = (await status.json())["tasks"]
    finally:
        service.supervisor.signal_shutdown()
        summary = await task
    assert summary.exit_code == 0, summary.failure
    (first, history), (second, snapshot), (third, later) = events
    assert (first, second, third) == ("history", "snapshot", "snapshot")
    assert len(history) >= 2
    assert all(len(point) == 3 for point in history)
    assert snapshot["service"]["phase"] == "running"
    assert any("ingestion" in line for line in snapshot["tree_lines"])
    slugs = {book["slug"] for book in snapshot["books"]}
    assert len(slugs) == 2
    labels = {t["label"] for t in snapshot["tasks"] if t["name"].startswith("monitor_")}
    assert labels == {f"monitor {slug}" for slug in slugs}
    # /status names each monitor's market by slug too.
    assert {t["label"] for n, t in tasks.items() if n.startswith("monitor_")} == labels
    assert all(b["yes"]["bids"] and b["yes"]["asks"] for b in snapshot["books"])
    assert snapshot["account"]["cash"] is not None
    assert later["time_ms"] > snapshot["time_ms"]
    assert service.dashboard is not None
    assert service.dashboard.watchers == 0


def _wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.skipif(
    (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("CI"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium "
    "chromium-driver); CI installs them",
)
def test_the_page_in_a_real_browser(
    start_service: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """Headless Chromium opens /, waits for live data and finds the service's phase and
    readiness, every market's depth chart under its slug, the cash and P&L chart, paper
    trades and signals, feed health and the task tree; no console error; a screenshot is
    saved in the test's directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    assert CHROMIUM is not None, "chromium is not installed"
    assert CHROMEDRIVER is not None, "chromium-driver is not installed"
    service = start_service(
        "run", "--http-port", "0", "--log-format", "json", "--live-view", "off",
        "--market-count", "3", "--sim-rate", "50", "--sim-dislocation-rate", "0.2",
    )  # fmt: skip
    url = service.wait_url()
    service.wait_ready()
    markets = json.loads(http_get(f"{url}/status")[1])["service"]["markets"]
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1800"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(CHROMEDRIVER), options=options)
    try:
        driver.get(f"{url}/")

        def text(selector: str) -> str:
            return str(driver.find_element("css selector", selector).text)

        def rows(selector: str) -> int:
            return len(driver.find_elements("css selector", selector))

        _wait(
            lambda: (
                int(driver.find_element("id", "stream").get_attribute("data-updates") or 0) >= 3
            ),
            30,
            "three live snapshots",
        )
        _wait(lambda: rows("#fills tbody tr") and rows("#signals tbody tr"), 30, "trades")
        assert text("#phase") == "running"
        assert text("#ready") == "ready"
        shown = [
            str(e.get_attribute("data-slug"))
            for e in driver.find_elements("css selector", ".market")
        ]
        assert sorted(shown) == sorted(markets)
        assert rows(".market canvas") >= len(markets)  # a depth chart each
        assert rows("#equity canvas") >= 1
        assert all("YES" in e.text for e in driver.find_elements("css selector", ".market .top"))
        trade_markets = {
            e.text for e in driver.find_elements("css selector", "#fills tbody td:nth-child(2)")
        }
        assert trade_markets <= set(markets)
        assert rows("#tasks li[data-task^='monitor_']") == len(markets)
        assert "monitor will-" in text("#tasks")
        assert rows("#connections tbody tr") >= 1
        assert "ingestion" in text("#tree")
        assert "events" in text("#feed")
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        log: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
        errors = [e for e in log if e["level"] == "SEVERE"]
        assert errors == []
    finally:
        driver.quit()
        service.terminate()
        service.wait(15)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
