"""What every benchmark script shares: medians over fresh subprocesses of itself."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys


def median_of_runs(script: str, args: list[str], runs: int) -> dict[str, float]:
    """Run ``script --child *args`` ``runs`` times, each in a fresh interpreter, and return
    the median of every figure it printed (a JSON object on its last line of output)."""
    results = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, script, "--child", *args],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    return {key: statistics.median(r[key] for r in results) for key in results[0]}
