"""``python -m polymarket_agents.feed.simulator``: serve the simulator from a shell.

A launcher, outside the library's import graph: it parses flags, prints the URLs and runs
:func:`run_simulator` until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from ._cli import add_simulator_arguments, announce, simulator_options
from ._server import run_simulator


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m polymarket_agents.feed.simulator",
        description="A local Polymarket market channel (ws://HOST:PORT/ws/market) and Gamma "
        "listing (http://HOST:PORT/markets).",
    )
    add_simulator_arguments(parser)
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
        options = simulator_options(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(run_simulator(ready=announce, **options))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
