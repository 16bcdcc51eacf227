"""``python -m polymarket_agents.feed.simulator``: serve the simulator from a shell.

A launcher, outside the library's import graph: it parses flags, prints the URLs and runs
:func:`run_simulator` until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._faults import FaultPlan
from ._server import MarketSimulator, run_simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m polymarket_agents.feed.simulator",
        description="A local Polymarket market channel (ws://HOST:PORT/ws/market) and Gamma "
        "listing (http://HOST:PORT/markets).",
    )
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator until interrupted.

    Args:
        argv: Command-line arguments; ``sys.argv[1:]`` if None.

    Returns:
        The exit status: 0 after Ctrl-C, 2 for invalid arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
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
    except ValueError as exc:
        parser.error(str(exc))

    def ready(simulator: MarketSimulator) -> None:
        print(f"market channel: {simulator.ws_url}", flush=True)
        print(f"gamma listing:  {simulator.http_url}/markets", flush=True)

    try:
        asyncio.run(
            run_simulator(
                args.host,
                args.port,
                ready=ready,
                seed=args.seed,
                markets=args.markets,
                event_rate=args.rate or None,
                batch_probability=args.batch_probability,
                dislocation_rate=args.dislocation_rate,
                faults=faults,
            )
        )
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
