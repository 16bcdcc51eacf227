"""The simulator's command-line options, shared by its launcher and the package CLI."""

from __future__ import annotations

import argparse
from typing import Any

from ._faults import FaultPlan
from ._server import MarketSimulator

__all__ = ["add_simulator_arguments", "announce", "simulator_options"]


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options (address, universe, rate, faults) to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port to bind; 0: any (8765)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--markets", type=int, default=5, help="binary markets (5)")
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="ticks per second (5); 0: as fast as the slowest subscriber reads",
    )
    parser.add_argument(
        "--batch-probability",
        type=float,
        default=0.1,
        help="probability that a tick shares the previous tick's array frame (0.1)",
    )
    parser.add_argument(
        "--dislocation-rate", type=float, default=0.0, help="complement dislocations per tick"
    )
    faults = parser.add_argument_group("faults (all off by default)")
    faults.add_argument("--drop-every", type=float, metavar="SECONDS")
    faults.add_argument("--abort-every", type=float, metavar="SECONDS")
    faults.add_argument("--freeze-after", type=float, metavar="SECONDS")
    faults.add_argument("--stop-pong-after", type=float, metavar="SECONDS")
    faults.add_argument("--malformed-rate", type=float, default=0.0, metavar="P")
    faults.add_argument("--oversized-rate", type=float, default=0.0, metavar="P")
    faults.add_argument("--legacy-price-change", action="store_true")
    faults.add_argument("--send-delay", type=float, default=0.0, metavar="SECONDS")


def simulator_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`run_simulator` that ``args`` asks for.

    Args:
        args: Parsed by a parser given :func:`add_simulator_arguments`.

    Returns:
        ``host``, ``port`` and the :class:`MarketSimulator` options, faults included.

    Raises:
        ValueError: If a fault setting is out of range.
    """
    faults = FaultPlan(
        drop_every=args.drop_every,
        abort_every=args.abort_every,
        freeze_after=args.freeze_after,
        stop_pong_after=args.stop_pong_after,
        malformed_rate=args.malformed_rate,
        oversized_rate=args.oversized_rate,
        legacy_price_change=args.legacy_price_change,
        send_delay=args.send_delay,
    )
    return {
        "host": args.host,
        "port": args.port,
        "seed": args.seed,
        "markets": args.markets,
        "event_rate": args.rate or None,
        "batch_probability": args.batch_probability,
        "dislocation_rate": args.dislocation_rate,
        "faults": faults,
    }


def announce(simulator: MarketSimulator) -> None:
    """Print where a started simulator serves (the ``ready`` callback of the launchers)."""
    print(f"market channel: {simulator.ws_url}", flush=True)
    print(f"gamma listing:  {simulator.http_url}/markets", flush=True)
