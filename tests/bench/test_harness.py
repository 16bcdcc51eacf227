"""bench/_harness.py: a hung benchmark child is killed with what it started, named, skipped."""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest

HARNESS = Path(__file__).resolve().parents[2] / "bench" / "_harness.py"


@pytest.fixture
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_harness_under_test", HARNESS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, subprocess, sys, time
            what = sys.argv[2]
            if what == "hang":
                # A grandchild, like a simulator subprocess, that must not outlive the child.
                sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
                grandchild = subprocess.Popen(sleeper)
                open(sys.argv[3], "w").write(str(grandchild.pid))
                time.sleep(600)
            print("noise")
            print(json.dumps({"value": float(sys.argv[3])}))
            """
        )
    )
    return script


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of a reaped parent may linger as a zombie until init collects it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_a_finished_child_gives_its_last_json_line(harness: ModuleType, tmp_path: Path) -> None:
    script = str(_script(tmp_path))
    assert harness.run_child(script, ["ok", "2.5"]) == {"value": 2.5}
    medians = harness.median_of_runs(script, ["ok", "3"], runs=3)
    assert medians == {"value": 3.0}


def test_a_hung_child_is_killed_named_and_skipped(
    harness: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = str(_script(tmp_path))
    pid_file = tmp_path / "grandchild.pid"
    started = time.monotonic()
    result = harness.median_of_runs(script, ["hang", str(pid_file)], runs=2, timeout=1.0)
    assert time.monotonic() - started < 30
    assert isinstance(result, harness.Skipped)
    assert math.isnan(result["events_per_s"])
    name = f"child.py --child hang {pid_file}"
    timed_out: list[str] = harness.TIMED_OUT
    assert timed_out == [name, name]
    assert f"TIMED OUT after 1 s, skipped: {name}" in capsys.readouterr().err
    harness.TIMED_OUT.clear()  # this module's exit summary has nothing left to say
    grandchild = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(grandchild)


def test_a_failing_child_raises_with_its_error(harness: ModuleType, tmp_path: Path) -> None:
    script = tmp_path / "bad.py"
    script.write_text("import sys; sys.exit('broken on purpose')\n")
    with pytest.raises(subprocess.CalledProcessError, match="returned non-zero exit status 1"):
        harness.run_child(str(script), [])
