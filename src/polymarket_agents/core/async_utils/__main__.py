"""``python -m polymarket_agents.core.async_utils``: the seed's Docker command.

The same as ``python -m polymarket_agents``.

A launcher only: it sits outside the library's import graph, so it may import the CLI.
"""

import sys

from polymarket_agents.cli import main

if __name__ == "__main__":
    sys.exit(main())
