"""Files for TensorRT next to an exported ONNX model: a ``trtexec`` command and its inputs.

Written into the export directory:

- ``trtexec.sh``: builds ``model.engine`` with ``--int8``/``--fp16`` as the
  card's bit-widths need, ``--sparsity=enable`` when a layer uses 2:4 sparsity,
  per-layer precisions (``--layerPrecisions``, ``--precisionConstraints=obey``)
  for layers the search kept at 16 or 32 bits, and ``--calib`` when dynamic
  ranges are known.
- ``calibration.cache`` (only when the card's layers carry ``activation_amax``):
  per-tensor dynamic ranges in TensorRT's calibration-cache format (tensor name ->
  big-endian hex of the float32 scale ``amax / 127``).
- ``calibration_plan.json``: what an int8 calibration run needs when no ranges
  are given (input shape, normalization, calibrator), or that the ONNX graph
  already carries explicit Q/DQ nodes and no calibration is needed.

Card keys read (all optional): ``layers`` [{``name``, ``weight_bits``,
``activation_bits``, ``sparsity_pattern``, ``activation_amax``}],
``input_shape`` [C, H, W], ``normalization`` {``mean``, ``std``}.
"""

from __future__ import annotations

import json
import shlex
import struct
from pathlib import Path
from typing import Any

from autocompress.hardware.onnx_names import (
    card_compute_layers,
    map_modules_to_nodes,
    read_graph_names,
)

CALIBRATION_CACHE_HEADER = "TRT-8601-EntropyCalibration2"
_PRECISION_NAME = {8: "int8", 16: "fp16", 32: "fp32"}


def _bits(layer: dict[str, Any]) -> int:
    return max(int(layer.get("weight_bits") or 32), int(layer.get("activation_bits") or 32))


def scale_hex(amax: float) -> str:
    """TensorRT calibration-cache value: big-endian hex of the float32 scale amax/127."""
    return struct.pack(">f", float(amax) / 127.0).hex()


def write_tensorrt_files(export_dir: Path, onnx_path: Path, card: dict[str, Any]) -> list[Path]:
    """Write the trtexec command, calibration plan and (if ranges are known) cache."""
    export_dir.mkdir(parents=True, exist_ok=True)
    layers = card_compute_layers(card)
    graph = read_graph_names(onnx_path)
    nodes = map_modules_to_nodes([str(layer["name"]) for layer in layers], graph)
    widths = {_bits(layer) for layer in layers} or {8}
    shape = [int(v) for v in card.get("input_shape") or [3, 224, 224]]
    input_name = graph.inputs[0] if graph.inputs else "input"
    explicit_qdq = "QuantizeLinear" in graph.op_types

    flags = [
        "trtexec",
        f"--onnx={Path(onnx_path).name}",
        "--saveEngine=model.engine",
        f"--shapes={input_name}:1x{'x'.join(map(str, shape))}",
    ]
    if min(widths) <= 8:
        flags.append("--int8")
    if any(bits > 8 for bits in widths) or min(widths) <= 8:
        flags.append("--fp16")  # lets TensorRT fall back to fp16 where int8 has no kernel
    if any(layer.get("sparsity_pattern") == "2:4" for layer in layers):
        flags.append("--sparsity=enable")
    wide = [
        f"{nodes[str(layer['name'])].name}:{_PRECISION_NAME.get(_bits(layer), 'fp16')}"
        for layer in layers
        if _bits(layer) > 8 and str(layer["name"]) in nodes
    ]
    if wide and min(widths) <= 8:
        flags += ["--precisionConstraints=obey", "--layerPrecisions=" + ",".join(wide)]

    written: list[Path] = []
    ranges = {
        (
            nodes[str(layer["name"])].output if str(layer["name"]) in nodes else str(layer["name"])
        ): float(layer["activation_amax"])
        for layer in layers
        if isinstance(layer.get("activation_amax"), (int, float)) and layer["activation_amax"] > 0
    }
    if ranges and not explicit_qdq:
        cache = export_dir / "calibration.cache"
        lines = [CALIBRATION_CACHE_HEADER] + [
            f"{name}: {scale_hex(a)}" for name, a in ranges.items()
        ]
        cache.write_text("\n".join(lines) + "\n")
        flags.append("--calib=calibration.cache")
        written.append(cache)

    plan = {
        "chip_id": card.get("chip_id", "nvidia/orin-nano"),
        "explicit_quantization": explicit_qdq,
        "dynamic_ranges_from_card": len(ranges),
        "calibrator": None if explicit_qdq or ranges else "IInt8EntropyCalibrator2",
        "calibration_images": None if explicit_qdq or ranges else 500,
        "input_name": input_name,
        "input_shape": [1, *shape],
        "normalization": card.get("normalization") or {},
        "per_layer_precision": wide,
    }
    plan_path = export_dir / "calibration_plan.json"
    plan_path.write_text(json.dumps(plan, indent=2) + "\n")
    script = export_dir / "trtexec.sh"
    script.write_text(
        "#!/bin/sh\n# TensorRT engine build written by autocompress; run it on the Jetson.\n"
        f'cd "$(dirname "$0")"\n{shlex.join(flags)}\n'
    )
    script.chmod(0o755)
    return [script, plan_path, *written]
