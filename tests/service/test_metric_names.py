"""/metrics follows Prometheus' conventions: units in names, fills named as fills, orders
by result, markets' slugs in one info family."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp

from polymarket_agents.service import Service, ServiceConfig


async def test_the_paper_account_and_markets_on_metrics(tmp_path: Path) -> None:
    """A trading run shows paper_fills_total, paper_orders_total by result (a bounded set),
    cash and P&L in USDC, latency in seconds, and market_info naming each market's slug;
    the old ambiguous names are gone."""
    config = ServiceConfig(
        http_port=0,
        db_path=tmp_path / "metrics.sqlite",
        market_count=2,
        sim_rate=60,
        sim_dislocation_rate=0.3,
    )
    service = Service(config, install_signal_handlers=False)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(30):
            while True:
                assert not task.done()
                runtime = service.state.runtime
                if runtime is not None and runtime.stats().trades > 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.1)  # past the age of the metrics snapshot
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"{service.state.http_url}/metrics") as response,
            ):
                text = await response.text()
    finally:
        service.supervisor.signal_shutdown()
        await task
    for name in (
        "polymarket_agents_paper_fills_total",
        "polymarket_agents_paper_fills_this_run_total",
        "polymarket_agents_paper_cash_usdc",
        "polymarket_agents_paper_pnl_usdc",
        "polymarket_agents_paper_pnl_this_run_usdc",
        "polymarket_agents_ingest_latency_seconds",
    ):
        assert re.search(rf"^{name} ", text, re.M), name
    results = set(
        re.findall(r'^polymarket_agents_paper_orders_total\{result="([^"]+)"\}', text, re.M)
    )
    assert "filled" in results
    assert results <= {"filled", "posted", "killed"} | {
        r for r in results if r.startswith("refused_")
    }
    assert all(re.fullmatch(r"[a-z_]+", r) for r in results)
    slugs = re.findall(r'^polymarket_agents_market_info\{[^}]*slug="([^"]+)"', text, re.M)
    assert len(slugs) == 2
    for old in (
        "polymarket_agents_trades_total",
        "polymarket_agents_pnl ",
        "polymarket_agents_cash ",
    ):
        assert old not in text
