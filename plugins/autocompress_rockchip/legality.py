"""What RKNN-Toolkit 1.x (RV1126 / RV1109) cannot compile, as per-layer verdicts.

RKNN-Toolkit 1.x quantizes each layer with one ``quantized_dtype`` that covers
its weights and its activations together (``asymmetric_affine-u8``,
``dynamic_fixed_point-i8``, ``dynamic_fixed_point-i16``; hybrid quantization
picks one of them per layer). A layer whose weights and activations have
different widths (w8/a16, w16/a8) is not a mode the toolkit has.
"""

from __future__ import annotations

from collections.abc import Sequence

from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.legality import LayerIssue

RKNN1_CHIPS = frozenset({"rockchip/rv1126", "rockchip/rv1109"})


def rknn1_issues(layers: Sequence[LayerDescriptor]) -> list[LayerIssue]:
    """Layers RKNN-Toolkit 1.x cannot quantize as configured."""
    issues = []
    for layer in layers:
        if layer.kind not in (LayerKind.CONV, LayerKind.LINEAR):
            continue
        if layer.weight_bits != layer.activation_bits:
            issues.append(
                LayerIssue(
                    layer=layer.name,
                    reason=(
                        f"w{layer.weight_bits}/a{layer.activation_bits}: RKNN-Toolkit 1.x "
                        "quantizes a layer's weights and activations with one dtype "
                        "(u8/i8 or i16); give both the same width"
                    ),
                )
            )
    return issues
