"""Input sizes as users write them (``224``, ``224x192``, ``3x32x32``): the one parser.

``autocompress cost --input-size``, ``spaces show --input-shape``, the search's
``--input-size`` / ``input_size:`` and the ``input_size`` column of a calibration CSV
all read sizes here: whole positive numbers separated by ``x``, ``×`` or ``,``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from autocompress.core.errors import ConfigError

DEFAULT_CHANNELS = 3
_SIZES = re.compile(r"\d+(x\d+)*")


def parse_sizes(
    value: str | int | Sequence[int], *, what: str, counts: Collection[int], forms: str
) -> tuple[int, ...]:
    """The whole numbers of ``value`` (text, one number or a list of numbers).

    Args:
        what: names the value in messages, e.g. ``"--input-size"``.
        counts: how many numbers are allowed.
        forms: the accepted forms, for the hint (``"224, HxW or CxHxW"``).

    Raises:
        ConfigError: not ``counts`` whole numbers, or one of them is not positive.
    """
    text = "x".join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
    cleaned = text.strip().lower().replace("×", "x").replace(",", "x").replace(" ", "")
    if not _SIZES.fullmatch(cleaned) or cleaned.count("x") + 1 not in counts:
        raise ConfigError(f"{what} {value!r} is malformed", hint=f"Give {forms}.")
    sizes = tuple(int(part) for part in cleaned.split("x"))
    if any(size <= 0 for size in sizes):
        raise ConfigError(f"{what} {value!r}: every size must be positive")
    return sizes


def parse_image_shape(
    value: str | int | Sequence[int], *, what: str = "input size", allow_batch: bool = False
) -> tuple[int, ...]:
    """``224`` -> (3, 224, 224); ``HxW`` -> (3, H, W); ``CxHxW``; ``NxCxHxW`` if ``allow_batch``."""
    counts = (1, 2, 3, 4) if allow_batch else (1, 2, 3)
    forms = "one size (224 = 3x224x224), HxW, CxHxW (1x28x28)" + (
        " or NxCxHxW" if allow_batch else ""
    )
    sizes = parse_sizes(value, what=what, counts=counts, forms=forms)
    if len(sizes) == 1:
        return (DEFAULT_CHANNELS, sizes[0], sizes[0])
    if len(sizes) == 2:
        return (DEFAULT_CHANNELS, *sizes)
    return sizes


def parse_hw(value: str | int | Sequence[int], *, what: str = "input size") -> tuple[int, int]:
    """``32`` -> (32, 32); ``224x192`` / ``[224, 192]`` -> (224, 192) as (H, W)."""
    sizes = parse_sizes(value, what=what, counts=(1, 2), forms="N (square) or HxW such as 224x192")
    return (sizes[0], sizes[0]) if len(sizes) == 1 else (sizes[0], sizes[1])


__all__ = ["DEFAULT_CHANNELS", "parse_hw", "parse_image_shape", "parse_sizes"]
