"""The project's own guard rails: the layering contract and the lock check both bite."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
UV = ROOT / ".uv" / "bin" / "uv"


def _copy_project(tmp_path: Path, *names: str) -> Path:
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tmp_path / name)
    return tmp_path


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH puts the copy ahead of the editable install of the real tree.
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The feed reaching up into agents, storage reaching sideways into the feed, and core
        # taking a third-party dependency.
        ("feed/_book.py", "import polymarket_agents.agents", "polymarket_agents.feed._book"),
        ("storage/_rows.py", "import polymarket_agents.feed", "polymarket_agents.storage._rows"),
        ("agents/_analysis.py", "import polymarket_agents.service", "polymarket_agents.agents"),
        ("core/async_utils/_policy.py", "import websockets", "websockets"),
    ],
)
def test_the_layering_contract_rejects_an_import_against_the_layers(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    project = _copy_project(tmp_path, "src", "pyproject.toml")
    assert _lint_imports(project).returncode == 0
    path = project / "src" / "polymarket_agents" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(project)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout or "broken" in result.stdout
    assert broken in result.stdout


@pytest.mark.skipif(not UV.exists(), reason="uv is installed by `make`; run the suite through it")
def test_lock_check_fails_when_pyproject_gains_a_dependency(tmp_path: Path) -> None:
    project = _copy_project(tmp_path, "pyproject.toml", "uv.lock", "README.md")
    command = [str(UV), "lock", "--check", "--offline", "--python", sys.executable]
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    ok = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    last = '  "websockets>=14.0",\n'
    assert last in text
    pyproject.write_text(text.replace(last, last + '  "idna",\n'))
    stale = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, check=False
    )
    assert stale.returncode != 0
    # Offline, uv either sees the lock is stale at once or cannot resolve the new
    # requirement without the network: both refuse the lock.
    assert "needs to be updated" in stale.stderr or "No solution found" in stale.stderr
