"""autocompress chip plugin for Ambarella CVflow chips (CV22)."""

from __future__ import annotations

from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.spec import ChipSpec
from autocompress_ambarella.chips import ambarella_chips

__all__ = ["autocompress_chips"]


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The Ambarella chips."""
    return ambarella_chips()
