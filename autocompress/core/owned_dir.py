"""A destination folder autocompress writes its own files into, and never anything else.

An :class:`OwnedDirectory` of a *kind* (``export`` …) accepts a target folder only when

- it does not exist (it is created), or
- it is empty, or
- it holds nothing but a previous output of the same kind: the files listed in
  its manifest ``.autocompress-<kind>.json`` (written with every output), each
  unchanged since (same sha256).

Anything else is refused with an :class:`~autocompress.core.errors.OutputDirError`
that says what is there, before a byte is written. New files are written into a
staging folder inside the target and then moved over the old ones one by one
(``os.replace``: each file is the old or the new one, never half); files of the
previous output that the new one does not have are removed. Nothing that is not
in the previous manifest is ever deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from autocompress.core.errors import OutputDirError
from autocompress.core.file_hash import file_sha256
from autocompress.core.file_writes import CreatedPaths, writing

STAGING_PREFIX = ".autocompress-staging-"


def manifest_name(kind: str) -> str:
    return f".autocompress-{kind}.json"


def _listing(paths: Iterable[str], n: int = 5) -> str:
    items = sorted(paths)
    shown = ", ".join(items[:n])
    return shown + (f", … ({len(items) - n} more)" if len(items) > n else "")


class OwnedDirectory:
    """Writes one output of ``kind`` into ``target`` (see the module docstring).

    Args:
        target: the destination folder.
        kind: what is written (names the manifest), e.g. ``"export"``.
        protected: folders that must never be the target nor lie inside it
            (e.g. the run directory an export reads).
        legacy_files: for outputs written before manifests existed: given the
            folder, the file names a previous output of this kind holds there
            (None when it is not one).
        how_to_choose: the sentence telling the user how to pick another folder.
        alongside: names of entries other autocompress commands keep in the same
            folder (e.g. ``finetune``'s ``recovered.pt`` beside an export); they may be
            present and are never touched.
    """

    def __init__(
        self,
        target: str | os.PathLike[str],
        *,
        kind: str,
        protected: Sequence[Path] = (),
        legacy_files: Callable[[Path], set[str] | None] | None = None,
        how_to_choose: str = "Choose another folder.",
        alongside: Iterable[str] = (),
    ) -> None:
        self.target = Path(target)
        self.kind = kind
        self.protected = [Path(p) for p in protected]
        self.legacy_files = legacy_files
        self.how_to_choose = how_to_choose
        self.alongside = frozenset(alongside)
        self._created = CreatedPaths()
        self._staging: Path | None = None
        self._previous: set[str] = set()

    @property
    def manifest(self) -> Path:
        return self.target / manifest_name(self.kind)

    def _refuse(self, what: str) -> OutputDirError:
        return OutputDirError(
            f"will not write the {self.kind} into {str(self.target)!r}: {what}; "
            "nothing was written",
            hint=self.how_to_choose,
        )

    def previous_files(self) -> set[str] | None:
        """Relative paths of the previous output in the target (None: not one of ours).

        With a manifest, a listed file counts only while its sha256 is the one written
        (a file edited since is the user's now); paths leaving the folder are ignored.
        """
        if self.manifest.is_file():
            try:
                data = json.loads(self.manifest.read_text(encoding="utf-8"))
                files = data["files"]
                if data.get("kind") != self.kind or not isinstance(files, dict):
                    return None
            except (OSError, ValueError, KeyError, TypeError):
                return None
            root = self.target.resolve()
            out = set()
            for relative, digest in files.items():
                path = self.target / str(relative)
                if Path(str(relative)).is_absolute() or root not in path.resolve().parents:
                    continue
                if path.is_file() and file_sha256(path) != digest:
                    continue  # changed since it was written: not ours to replace
                out.add(str(relative))
            return out
        if self.legacy_files is not None:
            return self.legacy_files(self.target)
        return None

    def check(self) -> None:
        """Raise :class:`OutputDirError` unless the target may receive this output."""
        resolved = self.target.resolve()
        for folder in self.protected:
            folder = folder.resolve()
            if resolved == folder:
                raise self._refuse(f"it is the run directory {str(folder)!r} itself")
            if resolved in folder.parents:
                raise self._refuse(f"it contains the run directory {str(folder)!r}")
        if not self.target.exists():
            return
        if not self.target.is_dir():
            raise self._refuse("it is a file, not a folder")
        entries = {p.name for p in self.target.iterdir() if not p.name.startswith(STAGING_PREFIX)}
        entries.discard(self.manifest.name)
        entries -= self.alongside
        if not entries:
            return
        previous = self.previous_files()
        if previous is None:
            raise self._refuse(
                f"it holds {len(entries)} entries that are not a previous {self.kind} "
                f"({_listing(entries)})"
            )
        tops = {Path(p).parts[0] for p in previous if Path(p).parts}
        foreign = entries - tops
        if foreign:
            raise self._refuse(
                f"besides a previous {self.kind} it holds {len(foreign)} other "
                f"{'entry' if len(foreign) == 1 else 'entries'} ({_listing(foreign)})"
            )
        self._previous = previous

    def stage(self) -> Path:
        """Check, then create and return an empty staging folder inside the target."""
        self.check()
        self._created.folder(self.target)
        with writing(f"the {self.kind}", self.target):
            self._staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.target))
        return self._staging

    def commit(self) -> list[Path]:
        """Move every staged file into the target; drop old files the new output lacks."""
        assert self._staging is not None, "stage() first"
        staging = self._staging
        new = sorted(
            str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file() or p.is_symlink()
        )
        with writing(f"the {self.kind}", self.target):
            self.check()  # nothing foreign appeared meanwhile
            clash = [r for r in new if (self.target / r).exists() and r not in self._previous]
            if clash:
                raise self._refuse(f"it already holds {_listing(clash)}, not written by it")
            for relative in new:
                destination = self.target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, destination)
            for relative in sorted(self._previous - set(new)):
                old = self.target / relative
                if old.is_file() or old.is_symlink():
                    old.unlink()
            manifest = {
                "kind": self.kind,
                "files": {r: file_sha256(self.target / r) for r in new},
            }
            tmp = self.target / f"{STAGING_PREFIX}manifest.tmp"
            tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.manifest)
        shutil.rmtree(staging, ignore_errors=True)
        self._staging = None
        return [self.target / r for r in new]

    def abort(self) -> None:
        """Remove the staging folder and any folder this output created (if left empty)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)  # created by stage() in this call
            self._staging = None
        with contextlib.suppress(OSError):
            (self.target / f"{STAGING_PREFIX}manifest.tmp").unlink(missing_ok=True)
        self._created.remove()
