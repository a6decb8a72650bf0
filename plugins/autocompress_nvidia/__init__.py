"""autocompress chip plugin for NVIDIA Jetson (Orin Nano), deployed through TensorRT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.spec import ChipSpec
from autocompress_nvidia.chips import nvidia_chips
from autocompress_nvidia.tensorrt_export import write_tensorrt_files

__all__ = ["autocompress_chips", "autocompress_export_step"]

CHIP_IDS = frozenset({"nvidia/orin-nano"})


@hookimpl
def autocompress_chips() -> list[ChipSpec]:
    """The NVIDIA chips."""
    return nvidia_chips()


@hookimpl
def autocompress_export_step(
    chip: ChipSpec, export_dir: Path, onnx_path: Path, card: dict[str, Any]
) -> list[Path] | None:
    """A TensorRT ``trtexec`` build command, calibration plan and dynamic ranges."""
    if chip.chip_id not in CHIP_IDS:
        return None
    return write_tensorrt_files(Path(export_dir), Path(onnx_path), card)
