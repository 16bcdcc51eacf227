"""``python -m polymarket_agents``: the command line."""

import sys

from polymarket_agents.cli import main

if __name__ == "__main__":
    sys.exit(main())
