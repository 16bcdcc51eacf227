"""Locks around one SQLite file: who owns it, and who goes first on its connection.

* :class:`OwnerLock` is an advisory ``flock`` on ``<database>.lock`` holding the owner's
  pid, so that a second process refuses to start on a database another one writes, and
  says which process that is. The kernel drops the lock when its holder dies, even by
  ``kill -9``: a stale file never blocks anyone.
* :class:`PriorityLock` serialises calls on the store's one connection, letting urgent
  callers (paper trades) go before the market-data batches waiting for it.
* :func:`lock_holder` names the process holding SQLite's own lock on a file, from
  ``/proc/locks`` (Linux), for the message when the file is locked by something else.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the SQLite lock alone guards the file
    fcntl = None  # type: ignore[assignment]

from ._errors import StoreInUseError

__all__ = ["OwnerLock", "PriorityLock", "lock_holder"]


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class OwnerLock:
    """An exclusive advisory lock on ``<database>.lock``, which holds the owner's pid.

    The file is left in place on release: removing it could let two processes lock two
    different files of the same name.

    Args:
        database: The database file the lock guards.
    """

    __slots__ = ("_fd", "database", "path")

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<OwnerLock {str(self.path)!r} {'held' if self._fd is not None else 'free'}>"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting and write this process's pid into the file.

        Blocking (file I/O): call it in a thread from async code. A no-op if held.

        Raises:
            StoreInUseError: If another process (or another store of this one) holds it.
            OSError: If the lock file cannot be created.
        """
        if self._fd is not None or fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise StoreInUseError(str(self.database), holder, str(self.path)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the lock go (closing the file releases it); idempotent."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def lock_holder(path: Path) -> int | None:
    """The pid of another process holding a POSIX lock on ``path``, per ``/proc/locks``.

    Blocking (file I/O). Returns None where ``/proc/locks`` does not exist or lists no
    other holder.
    """
    try:
        stat = os.stat(path)
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            lines = locks.read().splitlines()
    except OSError:
        return None
    # "1: POSIX  ADVISORY  WRITE 19881 fe:00:2153191 1073741824 1073742335": the device
    # is major:minor in hex, then the inode.
    wanted = f"{os.major(stat.st_dev):02x}:{os.minor(stat.st_dev):02x}:{stat.st_ino}"
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "POSIX" and fields[5] == wanted:
            pid = int(fields[4]) if fields[4].isdigit() else None
            if pid is not None and pid != os.getpid():
                return pid
    return None


class PriorityLock:
    """An asyncio lock whose urgent waiters go before the others, each class in FIFO order.

    ::

        async with lock.hold(urgent=True):
            ...

    Not thread-safe, like every asyncio primitive.
    """

    __slots__ = ("_locked", "_normal", "_urgent")

    def __init__(self) -> None:
        self._locked = False
        self._urgent: deque[asyncio.Future[None]] = deque()
        self._normal: deque[asyncio.Future[None]] = deque()

    def __repr__(self) -> str:
        return (
            f"<PriorityLock {'locked' if self._locked else 'unlocked'} "
            f"urgent={len(self._urgent)} normal={len(self._normal)}>"
        )

    def locked(self) -> bool:
        """Whether someone holds the lock."""
        return self._locked

    def hold(self, *, urgent: bool = False) -> _Held:
        """An async context manager that holds the lock for its body."""
        return _Held(self, urgent)

    async def acquire(self, *, urgent: bool = False) -> None:
        """Wait for the lock; urgent callers are served before normal ones."""
        if not self._locked:
            self._locked = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._urgent if urgent else self._normal
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                # Handed the lock just as we were cancelled: pass it on.
                self.release()
            else:
                queue.remove(waiter)
            raise

    def release(self) -> None:
        """Hand the lock to the next waiter (urgent first), or free it.

        Raises:
            RuntimeError: If the lock is not held.
        """
        if not self._locked:
            raise RuntimeError("PriorityLock.release() called on an unlocked lock")
        for queue in (self._urgent, self._normal):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # the lock stays locked, now theirs
                    return
        self._locked = False


class _Held:
    __slots__ = ("_lock", "_urgent")

    def __init__(self, lock: PriorityLock, urgent: bool) -> None:
        self._lock = lock
        self._urgent = urgent

    async def __aenter__(self) -> None:
        await self._lock.acquire(urgent=self._urgent)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()
