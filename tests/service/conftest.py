"""Helpers for the service tests: the command line as a real subprocess, HTTP as a user asks."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

START_TIMEOUT = 20.0
"""Seconds a subprocess may take to start and become ready; generous for a loaded CI box."""

POLL = 0.05


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """GET ``url``: (status, body), with error statuses returned rather than raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 50 ms until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)


def _pump(source: IO[bytes], path: Path) -> None:
    """Copy a pipe into a file as it comes, until the pipe closes."""
    with source, path.open("ab") as sink:
        for chunk in iter(lambda: os.read(source.fileno(), 65536), b""):
            sink.write(chunk)
            sink.flush()


@contextlib.contextmanager
def disk_full(pid: int) -> Iterator[None]:
    """Make every write of process ``pid`` to a regular file fail for the block, as a full
    disk would (``RLIMIT_FSIZE`` of 0: EFBIG), then let it write again.

    Writes to pipes (its logs, see :class:`ServiceProcess`) are not affected.
    """
    prlimit = getattr(resource, "prlimit", None)
    if prlimit is None:
        pytest.skip("resource.prlimit (Linux) is needed to fill the disk of a process")
    _, hard = prlimit(pid, resource.RLIMIT_FSIZE)
    prlimit(pid, resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))


class ServiceProcess:
    """``python -m polymarket_agents ...`` in a subprocess, logs in files under ``directory``.

    The process writes to pipes that this process copies into the files, so that a limit
    put on the service's own file writes (``RLIMIT_FSIZE``, as a full disk) leaves its
    logs alone.

    Args:
        args: Command-line arguments after the program name.
        directory: Where stdout and stderr are written.
        env: Extra environment variables.
        launcher: What runs the program (``python -m polymarket_agents``); another
            launcher must end up exec'ing it in the same process.
        **options: More keyword arguments for :class:`subprocess.Popen` (``user=`` ...).
    """

    def __init__(
        self,
        args: Sequence[str],
        directory: Path,
        env: dict[str, str] | None = None,
        launcher: Sequence[str] = (sys.executable, "-m", "polymarket_agents"),
        **options: Any,
    ):
        self.directory = directory
        self.stdout_path = directory / "stdout.txt"
        self.stderr_path = directory / "stderr.txt"
        environ = {k: v for k, v in os.environ.items() if not k.startswith("POLYMARKET_AGENTS_")}
        environ.pop("LOG_LEVEL", None)
        environ.update(env or {})
        self.process = subprocess.Popen(
            [*launcher, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=environ,
            cwd=directory,
            **options,
        )
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        self._pumps = [
            threading.Thread(target=_pump, args=(pipe, path), daemon=True)
            for pipe, path in (
                (self.process.stdout, self.stdout_path),
                (self.process.stderr, self.stderr_path),
            )
        ]
        for pump in self._pumps:
            pump.start()
        self.url: str | None = None

    def __repr__(self) -> str:
        return f"<ServiceProcess pid={self.process.pid} url={self.url}>"

    @property
    def pid(self) -> int:
        """The service's process id."""
        return self.process.pid

    def _flushed(self) -> None:
        # Once the process is gone, wait until its last words are in the files.
        if self.process.poll() is not None:
            for pump in self._pumps:
                pump.join(10)

    @property
    def stdout(self) -> str:
        """Everything written to stdout so far."""
        self._flushed()
        return self.stdout_path.read_text() if self.stdout_path.exists() else ""

    @property
    def stderr(self) -> str:
        """Everything written to stderr so far."""
        self._flushed()
        return self.stderr_path.read_text() if self.stderr_path.exists() else ""

    def log_entries(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr (with ``--log-format json``)."""
        entries = []
        for line in self.stderr.splitlines():
            if line.startswith("{"):
                entries.append(json.loads(line))
        return entries

    def _exited_early(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(
                f"exited with {self.process.returncode}\nstdout:\n{self.stdout}\n"
                f"stderr:\n{self.stderr[-4000:]}"
            )

    def wait_url(self) -> str:
        """The health server's URL, read from the JSON log line announcing it."""

        def announced() -> str | None:
            self._exited_early()
            for entry in self.log_entries():
                if "url" in entry and entry["message"].startswith("serving health"):
                    return str(entry["url"])
            return None

        self.url = wait_for(announced, START_TIMEOUT, "the HTTP server")
        return self.url

    def wait_ready(self) -> float:
        """Poll ``/readyz`` until 200; returns seconds from now until ready."""
        start = time.monotonic()
        url = self.url or self.wait_url()

        def ready() -> bool:
            self._exited_early()
            return http_get(f"{url}/readyz")[0] == 200

        wait_for(ready, START_TIMEOUT, "/readyz to answer 200")
        return time.monotonic() - start

    def get_json(self, path: str) -> tuple[int, Any]:
        """GET a path of the service and decode its JSON body."""
        assert self.url is not None
        status, body = http_get(f"{self.url}{path}")
        return status, json.loads(body)

    def terminate(self, signum: int = signal.SIGTERM) -> None:
        """Send a signal, as ``kill`` or ``docker stop`` would."""
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        """Wait for the exit code; fail if it takes longer than ``timeout``."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {timeout} s later\nstderr:\n{self.stderr[-4000:]}"
            ) from None

    def kill(self) -> None:
        """Make sure the process is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._flushed()


class SimulatorProcess:
    """``python -m polymarket_agents simulate --port 0 ...`` in a subprocess: a feed the
    service reaches over the network, which a test can stop (SIGSTOP) or kill.

    Args:
        args: Simulator options after ``simulate``.
        directory: Where its stdout and stderr are written.
    """

    def __init__(self, args: Sequence[str], directory: Path) -> None:
        self.stdout_path = directory / "simulator-stdout.txt"
        self.stderr_path = directory / "simulator-stderr.txt"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "polymarket_agents", "simulate", "--port", "0", *args],
                stdout=out,
                stderr=err,
                cwd=directory,
            )

        def announced() -> tuple[str, str] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"simulator exited: {self.stderr_path.read_text()}")
            lines = self.stdout_path.read_text().splitlines()
            ws = [line.split(": ", 1)[1] for line in lines if line.startswith("market channel")]
            gamma = [line.split(":", 1)[1].strip() for line in lines if line.startswith("gamma")]
            return (ws[0], gamma[0].removesuffix("/markets")) if ws and gamma else None

        self.ws_url, self.http_url = wait_for(announced, START_TIMEOUT, "the simulator")

    def __repr__(self) -> str:
        return f"<SimulatorProcess pid={self.process.pid} {self.ws_url}>"

    def signal(self, signum: int) -> None:
        """Send it a signal (SIGSTOP freezes it, SIGCONT thaws it)."""
        self.process.send_signal(signum)

    def kill(self) -> None:
        """Make sure the process is gone (thawed first, so it can die)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def start_simulator(tmp_path: Path) -> Iterator[Callable[..., SimulatorProcess]]:
    """Start simulator subprocesses in ``tmp_path``; every one is killed at teardown."""
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        simulator = SimulatorProcess(args, tmp_path)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.kill()


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start service subprocesses in ``tmp_path``; any still running at teardown is killed."""
    started: list[ServiceProcess] = []

    def start(*args: str, env: dict[str, str] | None = None, **options: Any) -> ServiceProcess:
        directory = tmp_path / f"run{len(started)}"
        directory.mkdir()
        process = ServiceProcess(args, directory, env, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()
