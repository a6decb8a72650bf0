"""Semi-structured ``N:M`` sparsity patterns (``"2:4"``): the one parser.

A pattern keeps N of every M consecutive weights; it is well formed when both are
whole numbers and ``0 < N < M``. Chip specs, search spaces, the compression engine,
the cost model and ``autocompress cost --sparsity`` all read patterns through here.
"""

from __future__ import annotations

import re

from autocompress.core.errors import ConfigError

_NM = re.compile(r"(\d+):(\d+)")


def parse_nm(pattern: str) -> tuple[int, int]:
    """``"2:4"`` -> ``(2, 4)``.

    Raises:
        ConfigError: not ``N:M`` with whole numbers ``0 < N < M`` (names the pattern).
    """
    match = _NM.fullmatch(pattern.strip()) if isinstance(pattern, str) else None
    if match is None:
        raise ConfigError(f"sparsity pattern {pattern!r} is not of the form N:M, e.g. 2:4")
    n, m = int(match[1]), int(match[2])
    if not 0 < n < m:
        raise ConfigError(f"sparsity pattern {pattern!r} needs 0 < N < M, e.g. 2:4")
    return n, m


def is_nm(pattern: object) -> bool:
    """``pattern`` is a well-formed ``N:M`` string (see :func:`parse_nm`)."""
    try:
        parse_nm(pattern)  # type: ignore[arg-type]
    except ConfigError:
        return False
    return True


__all__ = ["is_nm", "parse_nm"]
