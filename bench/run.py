"""Run every benchmark in bench/ in turn: ``make bench``.

Each script measures its own baseline in the same run and prints ratios against it; see the
docstring at the top of each script for what it measures. Every measurement runs in a child
process under a timeout (``BENCH_CHILD_TIMEOUT``, 300 s); a child that overruns is killed,
named and skipped. Each whole script also runs under ``BENCH_SCRIPT_TIMEOUT`` (3,600 s), so
``make bench`` always finishes, and the last lines say which script failed or timed out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

# In order; a script missing here (or from the folder) is not run.
SCRIPTS = (
    "core.py",
    "feed.py",
    "agents.py",
    "service.py",
    "universe.py",
    "storage.py",
    "backtest.py",
)
SCRIPT_TIMEOUT = float(os.environ.get("BENCH_SCRIPT_TIMEOUT", "3600"))


def _run(script: Path, args: list[str]) -> str | None:
    """Run one script; return None if it succeeded, else what went wrong."""
    process = subprocess.Popen([sys.executable, str(script), *args], start_new_session=True)
    try:
        code = process.wait(timeout=SCRIPT_TIMEOUT)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        return f"timed out after {SCRIPT_TIMEOUT:.0f} s"
    return None if code == 0 else f"exit code {code}"


def main() -> int:
    """Run each script that exists with the same interpreter; 1 if any failed, else 0."""
    here = Path(__file__).parent
    failed: list[str] = []
    for name in SCRIPTS:
        script = here / name
        if not script.exists():
            continue
        print(f"\n=== bench/{name} ===", flush=True)
        problem = _run(script, sys.argv[1:])
        if problem is not None:
            print(f"bench/{name}: {problem}", flush=True)
            failed.append(f"bench/{name} ({problem})")
    if failed:
        print(f"\n{len(failed)} benchmark script(s) did not finish cleanly: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
