"""Files for the RKNN toolchain next to an exported ONNX model.

RV1126/RV1109 are converted with RKNN-Toolkit 1.x, RK3566/RK3588 with
RKNN-Toolkit2. Both take ``mean_values``/``std_values`` on the 0..255 pixel
scale, a ``target_platform`` and a ``quantized_dtype``; layers the search kept at
16 bits go into the toolkit's hybrid-quantization table
(``customized_quantize_layers`` in Toolkit 1.x, ``custom_quantize_layers`` in
Toolkit2).

Card keys read (all optional): ``chip_id``, ``layers`` [{``name``,
``weight_bits``, ``activation_bits``}], ``input_shape`` [C, H, W],
``normalization`` {``mean``, ``std``} on the 0..1 scale (ImageNet's if absent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from autocompress.hardware.onnx_names import (
    card_compute_layers,
    map_modules_to_nodes,
    read_graph_names,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# chip id -> (toolkit, target_platform, quantized_dtype, hybrid dtype for 16-bit layers)
TOOLKIT_BY_CHIP: dict[str, tuple[str, str, str, str]] = {
    "rockchip/rv1126": (
        "rknn-toolkit",
        "rv1126",
        "asymmetric_affine-u8",
        "dynamic_fixed_point-i16",
    ),
    "rockchip/rv1109": (
        "rknn-toolkit",
        "rv1109",
        "asymmetric_affine-u8",
        "dynamic_fixed_point-i16",
    ),
    "rockchip/rk3588": ("rknn-toolkit2", "rk3588", "asymmetric_quantized-8", "float16"),
    "rockchip/rk3566": ("rknn-toolkit2", "rk3566", "asymmetric_quantized-8", "float16"),
}

CONVERT_SCRIPT = '''\
"""Convert model.onnx for {target} with {toolkit}: python rknn_convert.py calib.txt"""
import sys

import yaml
from rknn.api import RKNN

config = yaml.safe_load(open("rknn_config.yaml"))
dataset = sys.argv[1] if len(sys.argv) > 1 else "calib.txt"  # one image path per line
rknn = RKNN()
rknn.config(**config["config"])
assert rknn.load_onnx(model=config["onnx"]) == 0
keep_qdq = config["onnx_has_qdq"] and config["toolkit"] == "rknn-toolkit2"
assert rknn.build(do_quantization=not keep_qdq, dataset=None if keep_qdq else dataset) == 0
# Layers kept at 16 bits are listed in config["hybrid_quantization"]; apply them with
# rknn.hybrid_quantization_step1/2 and that table if the list is not empty.
assert rknn.export_rknn(config["output"]) == 0
'''


def _normalization_255(card: dict[str, Any], channels: int) -> tuple[list[float], list[float]]:
    norm = card.get("normalization") or {}
    mean = list(norm.get("mean") or IMAGENET_MEAN)
    std = list(norm.get("std") or IMAGENET_STD)
    if len(mean) != channels:
        mean = (mean * channels)[:channels] if len(mean) == 1 else [0.0] * channels
    if len(std) != channels:
        std = (std * channels)[:channels] if len(std) == 1 else [1.0] * channels
    return [round(m * 255.0, 4) for m in mean], [round(s * 255.0, 4) for s in std]


def hybrid_table(card: dict[str, Any], onnx_path: Path, hybrid_dtype: str) -> dict[str, str]:
    """Layer (ONNX node name, else module name) -> dtype, for layers the card keeps above 8 bits."""
    layers = card_compute_layers(card)
    nodes = map_modules_to_nodes([str(x["name"]) for x in layers], read_graph_names(onnx_path))
    table: dict[str, str] = {}
    for layer in layers:
        bits = max(int(layer.get("weight_bits") or 8), int(layer.get("activation_bits") or 8))
        if bits > 8:
            node = nodes.get(str(layer["name"]))
            table[node.name if node else str(layer["name"])] = hybrid_dtype
    return table


def write_rknn_files(
    chip_id: str, export_dir: Path, onnx_path: Path, card: dict[str, Any]
) -> list[Path]:
    """Write ``rknn_config.yaml`` and ``rknn_convert.py`` into ``export_dir``; their paths."""
    toolkit, target, dtype, hybrid_dtype = TOOLKIT_BY_CHIP[chip_id]
    shape = list(card.get("input_shape") or [3, 224, 224])
    mean, std = _normalization_255(card, int(shape[0]))
    prequantized = "QuantizeLinear" in read_graph_names(Path(onnx_path)).op_types
    config: dict[str, Any] = {
        "toolkit": toolkit,
        "onnx": str(Path(onnx_path).name),
        # A Q/DQ graph carries its own quantization: RKNN-Toolkit2 keeps it when built with
        # do_quantization=False. RKNN-Toolkit 1.x needs the float graph and a calibration set.
        "onnx_has_qdq": prequantized,
        "output": "model.rknn",
        "input_shape": shape,
        "config": {
            "mean_values": [mean],
            "std_values": [std],
            "target_platform": target if toolkit == "rknn-toolkit2" else [target],
            "quantized_dtype": dtype,
        },
        "hybrid_quantization": hybrid_table(card, Path(onnx_path), hybrid_dtype),
    }
    if toolkit == "rknn-toolkit2":
        config["config"]["quantized_method"] = "channel"
        config["config"]["quantized_algorithm"] = "normal"
    else:
        config["config"]["quantized_algorithm"] = "normal"
    export_dir.mkdir(parents=True, exist_ok=True)
    config_path = export_dir / "rknn_config.yaml"
    config_path.write_text(
        f"# {toolkit} conversion settings for {chip_id}, written by autocompress\n"
        + yaml.safe_dump(config, sort_keys=False)
    )
    script_path = export_dir / "rknn_convert.py"
    script_path.write_text(CONVERT_SCRIPT.format(target=target, toolkit=toolkit))
    return [config_path, script_path]
