"""When autocompress may import a user's model file (``path/to/file.py:function``).

A model name of the form ``file.py:function`` means *run this Python file*.
Naming it yourself (``--model file.py:fn``, ``build_model(...)``) is consent;
a name read from a file someone else may have written (a run directory's
checkpoints) is not. Commands that read names from files run inside
:func:`model_code_policy`:

- ``report`` allows no model file at all (it reads records only);
- ``export`` and ``search --resume`` allow the file the run recorded when it
  was created (same resolved path, same sha256 — see :func:`model_file_identity`),
  or any file with ``--trust-model-code``.

Anything else raises :class:`~autocompress.core.errors.UntrustedModelCodeError`
naming the file and the flag; the file is never imported.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from autocompress.core.errors import UntrustedModelCodeError
from autocompress.core.file_hash import file_sha256

TRUST_FLAG = "--trust-model-code"


def model_file_of(name: str) -> Path | None:
    """The Python file a model name points at (None for registered / torchvision names)."""
    if ":" not in name:
        return None
    path_text = name.rpartition(":")[0]
    return Path(path_text) if path_text.endswith(".py") else None


def model_file_identity(name: str) -> dict[str, str] | None:
    """``{"path": resolved path, "sha256": …}`` of a model file name (None when not a file
    or missing): what a run records at creation in run.yaml (``model_code``)."""
    path = model_file_of(name)
    if path is None or not path.is_file():
        return None
    return {"path": str(path.resolve()), "sha256": file_sha256(path)}


@dataclass(frozen=True)
class ModelCodePolicy:
    """Which model files may be imported: everything (``trusted``) or the listed identities."""

    trusted: bool = False
    allowed: tuple[tuple[str, str], ...] = ()
    command: str = "this command"
    refuse_hint: str | None = None

    def check(self, name: str, file: Path | None = None) -> None:
        """Raise :class:`UntrustedModelCodeError` unless ``name``'s file may be imported.

        ``file`` is the file that would really be imported when it is not the one
        ``name`` names (a copy found by content): it is that file's resolved path and
        sha256 that must be a recorded identity.
        """
        path = model_file_of(name)
        if path is None or self.trusted:
            return
        target = Path(file) if file is not None else path
        identity = (
            {"path": str(target.resolve()), "sha256": file_sha256(target)}
            if target.is_file()
            else None
        )
        if identity is not None and (identity["path"], identity["sha256"]) in self.allowed:
            return
        if self.refuse_hint is not None:
            hint = self.refuse_hint
        else:
            hint = f"Pass {TRUST_FLAG} if you trust this file and want {self.command} to run it."
        if identity is None:
            why = "which is not there"
        elif self.allowed:
            why = "which is not the file the run recorded at creation (path or sha256 differ)"
        else:
            why = "which this run did not record at creation"
        raise UntrustedModelCodeError(
            f"{self.command} would import the Python model file {str(path)!r} "
            f"(model {name!r}), {why}; it was not imported",
            hint=hint,
        )


_POLICY: contextvars.ContextVar[ModelCodePolicy | None] = contextvars.ContextVar(
    "autocompress_model_code_policy", default=None
)


def check_model_code(name: str, file: Path | None = None) -> None:
    """Called before a model file is imported (``file``: the file really imported, when
    it is a copy found by content): the active policy may refuse it."""
    policy = _POLICY.get()
    if policy is not None:
        policy.check(name, file)


@contextlib.contextmanager
def model_code_policy(
    *,
    trusted: bool = False,
    allowed: Iterable[tuple[str, str]] = (),
    command: str = "this command",
    refuse_hint: str | None = None,
) -> Iterator[ModelCodePolicy]:
    """Within this block, model files are imported only as the policy allows."""
    policy = ModelCodePolicy(
        trusted=trusted, allowed=tuple(allowed), command=command, refuse_hint=refuse_hint
    )
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)
