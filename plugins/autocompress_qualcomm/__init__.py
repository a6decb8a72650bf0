"""autocompress chip plugin for Qualcomm Hexagon NPUs (QCS6490, Snapdragon 8 Gen 2)."""

from __future__ import annotations

from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.legality import LayerIssue
from autocompress.hardware.spec import ChipSpec
from autocompress_qualcomm.chips import qualcomm_chips
from autocompress_qualcomm.legality import htp_issues

__all__ = ["autocompress_check_layers", "autocompress_chips"]


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The Qualcomm chips."""
    return qualcomm_chips()


@hookimpl
def autocompress_check_layers(
    chip: ChipSpec, layers: list[LayerDescriptor]
) -> list[LayerIssue] | None:
    """QNN HTP precisions: no 16-bit weights with 8-bit activations."""
    if chip.chip_id.startswith("qualcomm/"):
        return htp_issues(layers)
    return None
