"""Run every benchmark in bench/ in turn: ``make bench``.

Each script measures its own baseline in the same run and prints ratios against it; see the
docstring at the top of each script for what it measures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPTS = ("core.py", "feed.py", "agents.py", "service.py")


def main() -> int:
    """Run each script that exists with the same interpreter; return the worst exit code."""
    here = Path(__file__).parent
    worst = 0
    for name in SCRIPTS:
        script = here / name
        if not script.exists():
            continue
        print(f"\n=== bench/{name} ===", flush=True)
        worst = max(worst, subprocess.run([sys.executable, str(script), *sys.argv[1:]]).returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
