"""What QNN's HTP backend cannot run, as per-layer verdicts.

The Hexagon NPU runs the precisions ``w8a8``, ``w8a16`` and ``fp16`` (the 8 Gen 2
adds ``w4a8``/``w4a16``): a 16-bit weight with 8-bit activations (``w16a8``) is
not one of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.legality import LayerIssue


def htp_issues(layers: Sequence[LayerDescriptor]) -> list[LayerIssue]:
    """Layers whose weight/activation widths are not an HTP precision."""
    issues = []
    for layer in layers:
        if layer.kind not in (LayerKind.CONV, LayerKind.LINEAR):
            continue
        if layer.weight_bits >= 16 and layer.activation_bits <= 8:
            issues.append(
                LayerIssue(
                    layer=layer.name,
                    reason=(
                        f"w{layer.weight_bits}/a{layer.activation_bits}: QNN HTP runs w8a8, "
                        "w8a16, w4a8/w4a16 and fp16, not wider weights than activations"
                    ),
                )
            )
    return issues
