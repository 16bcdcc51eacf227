"""A local Polymarket market channel: the feed's embedded default and its test double.

A real websockets server on loopback that speaks the CLOB market-channel protocol (subscribe,
``book`` snapshots, ``price_change``, trades, tick size changes, PING/PONG, ``INVALID
OPERATION``) over a seeded universe of binary markets, serves the same universe as Gamma-style
``GET /markets`` JSON, and injects faults on demand (:class:`FaultPlan`)::

    from polymarket_agents.feed import MarketFeed
    from polymarket_agents.feed.simulator import FaultPlan, running_simulator

    async with running_simulator(faults=FaultPlan(drop_every=5.0)) as sim:
        async with MarketFeed(sim.ws_url, markets=sim.markets()) as feed:
            ...

From a shell: ``python -m polymarket_agents.feed.simulator --port 8765``.
"""

from ._cli import add_simulator_arguments, announce, simulator_options
from ._faults import FaultPlan, MalformedKind
from ._server import ConnectionStats, MarketSimulator, run_simulator, running_simulator
from ._universe import SimMarket, Universe

__all__ = [
    "ConnectionStats",
    "FaultPlan",
    "MalformedKind",
    "MarketSimulator",
    "SimMarket",
    "Universe",
    "add_simulator_arguments",
    "announce",
    "run_simulator",
    "running_simulator",
    "simulator_options",
]
