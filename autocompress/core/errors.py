"""Errors a user can act on.

Every error raised for bad input derives from :class:`AutocompressError`. The CLI
prints ``str(error)`` (what was wrong, where, and what would be right) and exits
with ``error.exit_code`` — never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AutocompressError(Exception):
    """Base class for errors caused by user input or environment, not by a bug.

    ``hint`` is an optional second sentence that tells the user what to do.
    """

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n{self.hint}"


class ConfigError(AutocompressError):
    """A configuration value (CLI flag, YAML field, Python argument) is invalid."""


class CalibrationFileError(ConfigError):
    """A calibration file (user folder, ``AUTOCOMPRESS_CALIBRATION``, explicit) cannot be used.

    Its hint speaks of the Python API and environment variables; the CLI adds the
    flags that write or skip calibration files (the hardware layer knows no CLI flags).
    """


class UnknownNameError(ConfigError):
    """A name (chip, model, dataset, sampler, search space …) is not known.

    The message lists the closest known names and how to list them all.
    """

    def __init__(self, kind: str, name: str, known: Iterable[str], *, list_hint: str) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        message = f"unknown {kind} {name!r}"
        if close:
            message += f"; did you mean {', '.join(repr(c) for c in close)}?"
        super().__init__(message, hint=list_hint)
        self.kind = kind
        self.name = name
        self.known = known


class PluginError(AutocompressError):
    """A plugin failed to load, raised inside a hook, or returned invalid data."""


class CheckpointError(AutocompressError):
    """A checkpoint is missing, corrupt, or does not match the architecture."""


class BudgetError(ConfigError):
    """A budget is malformed or cannot be met by any configuration."""


class RunDirectoryError(AutocompressError):
    """A run directory is missing, incomplete, or from an incompatible version."""


class ExportError(AutocompressError):
    """An export failed its checks (ONNX checker, onnxruntime, output agreement)."""


class TrainingError(AutocompressError):
    """Training could not produce a usable model (diverged even at a lower learning rate)."""


class RunInUseError(RunDirectoryError):
    """Another live process holds the run directory's lock."""


class OutputDirError(AutocompressError):
    """A destination folder holds files autocompress did not write; nothing was written."""


class WriteError(AutocompressError):
    """A file could not be written (full disk, no permission, read-only file system)."""


class UntrustedModelCodeError(ConfigError):
    """A run or checkpoint names a Python model file that was not trusted."""


class AutocompressWarning(UserWarning):
    """Something a user should know that does not stop the command (printed by the CLI)."""


class RunFileWarning(AutocompressWarning):
    """Lines of a run file were unreadable and skipped."""
