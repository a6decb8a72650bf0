"""Whether a network can be deployed on a chip: per-layer verdicts from the chip's plugin.

A plugin that knows its toolchain's limits (unsupported operators, channel
counts, kernel sizes, bit-width combinations) implements the hook
``autocompress_check_layers`` (:mod:`autocompress.hardware.hookspecs`) and
returns a :class:`LayerIssue` per layer that cannot be compiled
(``unsupported``) or that the toolchain would run on the CPU
(``cpu_fallback``). The search records such a configuration as ``infeasible``
with the reasons and trains nothing; ``autocompress cost`` and ``report``
show the reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from autocompress.hardware.layers import LayerDescriptor
from autocompress.hardware.spec import ChipSpec

UNSUPPORTED = "unsupported"
"""The toolchain cannot compile the layer for the NPU."""
CPU_FALLBACK = "cpu_fallback"
"""The toolchain compiles the layer but runs it on the CPU (slow, not what the cost model costs)."""
VERDICTS = (UNSUPPORTED, CPU_FALLBACK)


@dataclass(frozen=True)
class LayerIssue:
    """Why one layer cannot run on the chip's NPU as configured.

    Attributes:
        layer: the layer's name (as in the layer descriptors / PyTorch module names).
        reason: one sentence a user can act on, e.g. ``"RKNN-Toolkit 1.x quantizes a
            layer's weights and activations with one dtype; w8/a16 is not a mode"``.
        verdict: ``"unsupported"`` (cannot compile) or ``"cpu_fallback"``.
    """

    layer: str
    reason: str
    verdict: str = UNSUPPORTED

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "reason": self.reason, "verdict": self.verdict}


def check_layers(layers: Sequence[LayerDescriptor], chip: ChipSpec) -> list[LayerIssue]:
    """The issues the chip's own plugin reports for ``layers`` ([] when none or no hook)."""
    from autocompress.hardware.plugins import default_registry  # plugins imports this module

    return default_registry().check_layers(chip, layers)


def issues_text(chip_id: str, issues: Sequence[LayerIssue], *, limit: int = 3) -> str:
    """One line for a trial record / the CLI: ``not deployable on X: layer a: reason; …``."""
    if not issues:
        return ""
    shown = "; ".join(f"{i.layer}: {i.reason} ({i.verdict})" for i in issues[:limit])
    more = f"; and {len(issues) - limit} more layer(s)" if len(issues) > limit else ""
    return f"not deployable on {chip_id}: {shown}{more}"


__all__ = [
    "CPU_FALLBACK",
    "UNSUPPORTED",
    "VERDICTS",
    "LayerIssue",
    "check_layers",
    "issues_text",
]
