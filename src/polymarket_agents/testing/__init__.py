"""Aids for testing code built on polymarket_agents, in one place.

::

    from polymarket_agents.testing import FaultPlan, instant_backoff, running_simulator

    @pytest.fixture(autouse=True)
    def no_backoff():
        with instant_backoff():      # robust_task / TaskSupervisor delays become 0
            yield

    async def test_my_agent_survives_drops():
        async with running_simulator(faults=FaultPlan(drop_every=1.0)) as sim:
            ...                      # point your code at sim.ws_url / sim.http_url

* :func:`instant_backoff` / :func:`instant_policy`: restarts without waiting, counting and
  classification unchanged (from :mod:`polymarket_agents.core.async_utils`);
* :func:`running_simulator` / :class:`MarketSimulator` / :class:`FaultPlan`: a real
  Polymarket-format market feed on 127.0.0.1 with scripted faults (from
  :mod:`polymarket_agents.feed.simulator`).
"""

from polymarket_agents.core.async_utils import instant_backoff, instant_policy
from polymarket_agents.feed.simulator import FaultPlan, MarketSimulator, running_simulator

__all__ = [
    "FaultPlan",
    "MarketSimulator",
    "instant_backoff",
    "instant_policy",
    "running_simulator",
]
