"""polymarket_agents: asyncio supervision and market agents that survive the real world.

The library lives in :mod:`polymarket_agents.core.async_utils` (``robust_task``,
``TaskSupervisor``, ``managed_resource``); the agents, feed, storage and service layers are
built on it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("polymarket-agents")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
