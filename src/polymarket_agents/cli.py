"""Command line: ``polymarket-agents`` / ``python -m polymarket_agents``.

The only module that configures logging.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from collections.abc import Sequence

from polymarket_agents.core.async_utils import RestartPolicy, TaskSupervisor

__all__ = ["main"]

_log = logging.getLogger("polymarket_agents.demo")


async def _demo(duration: float | None) -> None:
    """A few supervised tasks failing and recovering, until Ctrl-C/SIGTERM or ``duration``."""
    rng = random.Random()

    async def flaky_feed() -> None:
        received = 0
        while True:
            await asyncio.sleep(0.2)
            received += 1
            if rng.random() < 0.15:
                raise ConnectionError(f"feed dropped after {received} messages")

    async def worker() -> None:
        while True:
            await asyncio.sleep(0.5)
            if rng.random() < 0.1:
                raise RuntimeError("an unexpected bug")

    async def bad_config() -> None:
        await asyncio.sleep(0.3)
        raise ValueError("missing API key: a fatal error, never retried")

    policy = RestartPolicy(backoff_seconds=0.5, max_backoff=4.0)
    async with TaskSupervisor(policy=policy, stop_timeout=5.0) as supervisor:
        supervisor.add_signal_handlers()
        await supervisor.start_task("feed", flaky_feed)
        await supervisor.start_task("worker", worker, policy=RestartPolicy(backoff_seconds=0.1))
        await supervisor.start_task("config", bad_config)
        _log.info("demo running; press Ctrl-C to stop")
        try:
            async with asyncio.timeout(duration):
                while not supervisor.shutdown_requested:
                    try:
                        async with asyncio.timeout(2.0):
                            await supervisor.wait_for_shutdown()
                    except TimeoutError:
                        for name, m in supervisor.get_metrics().items():
                            _log.info(
                                "%-7s %-10s restarts=%-3d errors=%-3d last_error=%s",
                                name,
                                m["status"],
                                m["restarts"],
                                m["errors"],
                                m["last_error"],
                            )
        except TimeoutError:
            _log.info("duration reached")
    for name, m in supervisor.get_metrics().items():
        _log.info(
            "final: %s %s restarts=%d errors=%d", name, m["outcome"], m["restarts"], m["errors"]
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="polymarket-agents", description=__doc__)
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument(
        "--log-level", default=os.environ.get("LOG_LEVEL", "INFO"), help="logging level"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    asyncio.run(_demo(args.duration))
    return 0
