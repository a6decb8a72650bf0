"""autocompress chip plugin for Rockchip NPUs (RV1126, RV1109, RK3588, RK3566).

Registered through the ``autocompress.chips`` entry point, exactly as a
third-party plugin would be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.spec import ChipSpec
from autocompress_rockchip.chips import rockchip_chips
from autocompress_rockchip.rknn_export import TOOLKIT_BY_CHIP, write_rknn_files

__all__ = ["autocompress_chips", "autocompress_default_chip", "autocompress_export_step"]

DEFAULT_CHIP = "rockchip/rv1126"


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The Rockchip chips."""
    return rockchip_chips()


@hookimpl
def autocompress_default_chip() -> str:
    """The RV1126 is autocompress's default chip (the first target it was built for)."""
    return DEFAULT_CHIP


@hookimpl
def autocompress_export_step(
    chip: ChipSpec, export_dir: Path, onnx_path: Path, card: dict[str, Any]
) -> list[Path] | None:
    """RKNN-Toolkit (1.x or 2) conversion config and script for Rockchip chips."""
    if chip.chip_id not in TOOLKIT_BY_CHIP:
        return None
    return write_rknn_files(chip.chip_id, Path(export_dir), Path(onnx_path), card)
