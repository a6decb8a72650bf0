"""autocompress chip plugin for HiSilicon NNIE chips (Hi3519A, Hi3559A)."""

from __future__ import annotations

from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.spec import ChipSpec
from autocompress_hisilicon.chips import hisilicon_chips

__all__ = ["autocompress_chips"]


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The HiSilicon chips."""
    return hisilicon_chips()
