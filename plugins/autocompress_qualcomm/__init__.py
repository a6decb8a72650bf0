"""autocompress chip plugin for Qualcomm Hexagon NPUs (QCS6490, Snapdragon 8 Gen 2)."""

from __future__ import annotations

from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.spec import ChipSpec
from autocompress_qualcomm.chips import qualcomm_chips

__all__ = ["autocompress_chips"]


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The Qualcomm chips."""
    return qualcomm_chips()
