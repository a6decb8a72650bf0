"""Writing files safely: disk and permission errors said plainly, only our own files removed.

- :func:`writing` turns an ``OSError`` (full disk, no permission, read-only file
  system …) raised while writing into a :class:`~autocompress.core.errors.WriteError`
  that names what could not be written and where (the CLI prints it, exit 2).
- :class:`CreatedPaths` remembers the files and folders one invocation created,
  so that cleaning up after a failure removes those and nothing else.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from autocompress.core.errors import WriteError

_HINTS = {
    errno.ENOSPC: "The disk is full: free some space (or choose another folder) and run again.",
    errno.EDQUOT: "The disk quota is exceeded: free some space and run again.",
    errno.EACCES: "No permission to write there: choose a folder you can write to.",
    errno.EPERM: "No permission to write there: choose a folder you can write to.",
    errno.EROFS: "The file system is read-only: choose a writable folder.",
}


def write_error(what: str, path: str | os.PathLike[str], exc: OSError) -> WriteError:
    """The :class:`WriteError` for ``exc`` raised while writing ``what`` at ``path``."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = errno.errorcode.get(exc.errno or -1)
    detail = f"{reason} ({code})" if code else reason
    return WriteError(
        f"could not write {what} to {str(path)!r}: {detail}",
        hint=_HINTS.get(exc.errno or -1, "Check the folder and run again."),
    )


@contextlib.contextmanager
def writing(what: str, path: str | os.PathLike[str]) -> Iterator[None]:
    """Context: an ``OSError`` inside becomes a :class:`WriteError` about ``what`` at ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as exc:
        raise write_error(what, path, exc) from None


class CreatedPaths:
    """Files and folders created by this invocation, removable after a failure.

    Only what was added with :meth:`file` / :meth:`folder` (and did not exist
    before) is ever removed; folders are removed only when empty.
    """

    def __init__(self) -> None:
        self._files: list[Path] = []
        self._folders: list[Path] = []

    def folder(self, path: Path) -> Path:
        """Create ``path`` (and missing parents), remembering each folder this call made."""
        missing = []
        current = Path(path)
        while not current.exists():
            missing.append(current)
            if current.parent == current:
                break
            current = current.parent
        with writing("the folder", path):
            path.mkdir(parents=True, exist_ok=True)
        self._folders.extend(reversed(missing))
        return path

    def file(self, path: Path) -> Path:
        """Remember ``path`` as ours when it does not exist yet (call before writing it)."""
        if not path.exists():
            self._files.append(path)
        return path

    def own(self, path: Path) -> Path:
        """Remember ``path`` as created by this invocation (it made it, e.g. with O_CREAT)."""
        self._files.append(path)
        return path

    def remove(self) -> None:
        """Remove what this invocation created (files, then empty folders, deepest first)."""
        for path in reversed(self._files):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
        for folder in reversed(self._folders):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never anything we did not write
        self._files.clear()
        self._folders.clear()
