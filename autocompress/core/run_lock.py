"""One search at a time per run directory: ``RUN/.lock``.

The search driver holds an exclusive ``flock`` on ``RUN/.lock`` (which names its
pid) for as long as it runs; worker processes it starts (``--workers N``)
run under its lock and take none. A second search on the same run sees the lock
and stops at once, touching nothing. The operating system drops a ``flock``
when its process dies, so a lock left by a killed search (its pid no longer
alive) is stale: the next search takes it over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from autocompress.core.errors import RunInUseError
from autocompress.core.file_writes import writing

LOCK_NAME = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock_owner(path: Path) -> dict[str, Any]:
    """What a lock file says about its holder ({} when unreadable)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunLock:
    """The exclusive lock of a run directory (a context manager)."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None
        self.created_file = False
        self.reclaimed_from: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunInUseError` naming the holder's pid."""
        if self._fd is not None:
            return self
        existed = self.path.exists()
        with writing("the run lock", self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise self._in_use() from None
        previous = read_lock_owner(self.path) if existed else {}
        old_pid = previous.get("pid")
        if isinstance(old_pid, int) and old_pid != os.getpid() and not _pid_alive(old_pid):
            self.reclaimed_from = old_pid  # a killed search's lock: stale, taken over
        self.created_file = not existed
        text = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        try:
            with writing("the run lock", self.path):
                os.ftruncate(fd, 0)
                os.pwrite(fd, text, 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def check_free(self) -> None:
        """Raise :class:`RunInUseError` when a live process holds the lock; writes nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return  # no lock file (or unreadable): nobody can hold it through this file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise self._in_use() from None
        finally:
            os.close(fd)  # closing drops a lock we may just have taken

    def _in_use(self) -> RunInUseError:
        owner = read_lock_owner(self.path)
        pid = owner.get("pid", "?")
        return RunInUseError(
            f"run {str(self.run_dir)!r} is in use by process {pid}"
            + (f" on {owner['host']}" if owner.get("host") else ""),
            hint="Wait for that search to finish (or stop it), or use another --out.",
        )

    def release(self) -> None:
        """Drop the lock (the file stays: removing it would race with a new holder)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
