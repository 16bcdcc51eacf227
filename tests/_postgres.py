"""A real PostgreSQL server for the tests: initdb and pg_ctl in a temporary directory.

Debian's ``postgresql`` package puts its programs in ``/usr/lib/postgresql/<major>/bin``,
not on ``PATH``, so both are searched. The server refuses to run as root; as root the
cluster belongs to the package's ``postgres`` account and every program runs through
``runuser``. It listens on 127.0.0.1 at a free port with password (SCRAM) authentication,
so that tests connect the way a deployment does.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

INSTALL_HINT = "PostgreSQL server not installed: run `apt-get install -y postgresql` to run these"
"""The one line a test skips with when no server can be started here."""

SUPERUSER = "agents_admin"
PASSWORD = "s3cret-Pa55"


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None if no server is installed."""
    explicit = os.environ.get("PG_BINDIR")
    candidates = [explicit] if explicit else []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    # Newest major version first.
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True
    )
    for candidate in candidates:
        bindir = Path(candidate)
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PostgresServer:
    """A running PostgreSQL cluster in a temporary directory; :meth:`stop` removes it.

    Attributes:
        bindir: Where the server's programs are.
        directory: The cluster's directory (data, socket, log).
        port: The TCP port on 127.0.0.1.
        user: The superuser's name.
        password: The superuser's password.
    """

    bindir: Path
    directory: Path
    port: int
    user: str = SUPERUSER
    password: str = PASSWORD
    _owner: str | None = field(default=None, repr=False)
    _databases: int = field(default=0, repr=False)

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return "127.0.0.1"

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        """A ``postgresql://`` URL for ``database``, with the password unless told not to."""
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._owner is not None:
            command = ["runuser", "-u", self._owner, "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)

    @classmethod
    def start(cls, *, durable: bool = False) -> PostgresServer:
        """Create and start a cluster.

        Args:
            durable: Keep ``fsync`` on, as a production server has it (for benchmarks);
                tests turn it off, since a crash of the machine is not their subject.

        Raises:
            RuntimeError: If no server is installed or it does not start.
        """
        bindir = find_bindir()
        if bindir is None:
            raise RuntimeError(INSTALL_HINT)
        owner = None
        directory = Path(tempfile.mkdtemp(prefix="agents-pg-"))
        if os.geteuid() == 0:
            owner = "postgres"
            entry = pwd.getpwnam(owner)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        server = cls(bindir, directory, free_port(), _owner=owner)
        pwfile = directory / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if owner is not None:
            os.chown(pwfile, pwd.getpwnam(owner).pw_uid, -1)
        data = directory / "data"
        try:
            server._run(
                "initdb",
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--pwfile",
                str(pwfile),
                "--auth",
                "scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            )
            options = [
                "-c listen_addresses=127.0.0.1",
                f"-p {server.port}",
                f"-k {directory}",
                "-c max_connections=200",
            ]
            if not durable:
                options += ["-c fsync=off", "-c synchronous_commit=off"]
            options += ["-c full_page_writes=off"] if not durable else []
            server._run(
                "pg_ctl",
                "-D",
                str(data),
                "-l",
                str(directory / "server.log"),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(options),
                "start",
            )
        except subprocess.CalledProcessError as exc:
            log = directory / "server.log"
            detail = log.read_text() if log.exists() else ""
            shutil.rmtree(directory, ignore_errors=True)
            raise RuntimeError(
                f"PostgreSQL did not start: {exc.stderr or exc.stdout}\n{detail}"
            ) from exc
        return server

    def create_database(self, prefix: str = "test") -> str:
        """A new, empty database; returns its name."""
        self._databases += 1
        name = f"{prefix}_{os.getpid()}_{self._databases}"
        self.psql(f'CREATE DATABASE "{name}"')
        return name

    def create_schema(self, database: str = "postgres") -> str:
        """A new, empty schema in ``database``; returns its name.

        Much cheaper than a database (milliseconds, not a copy of a template): a URL with
        ``?search_path=<schema>`` then gives a test tables of its own.
        """
        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        self.psql(f'CREATE SCHEMA "{name}"', database)
        return name

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` through psql as the superuser; its output, unaligned."""
        env = {**os.environ, "PGPASSWORD": self.password}
        result = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-c",
                sql,
            ],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout.strip()

    def stop(self) -> None:
        """Stop the server at once and remove its directory."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.directory, ignore_errors=True)
