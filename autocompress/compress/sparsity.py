"""Semi-structured N:M sparsity (2:4): in every group of M consecutive weights
along the input dimension, only the N largest in magnitude are kept.

The mask is chosen once from the (folded) weights and stored on the layer as
the ``sparsity_mask`` buffer; the quantized layer multiplies it into its
weight in every forward, so fine-tuning keeps the pattern. The layer's
``sparsity_pattern`` attribute tells the cost model the layer is sparse.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import torch
from torch import nn

from autocompress.compress.quantize import QuantMixin, quantized_layers
from autocompress.core.errors import ConfigError
from autocompress.core.sparsity_pattern import parse_nm as parse_pattern

SUPPORTED_PATTERNS = ("2:4",)


def _input_major(weight: torch.Tensor) -> torch.Tensor:
    """The weight as (out, positions, inputs): groups run along the input dim."""
    if weight.dim() == 2:
        return weight.unsqueeze(1)
    out, inputs = weight.shape[:2]
    return weight.reshape(out, inputs, -1).transpose(1, 2)


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """A 0/1 mask keeping the ``n`` largest |w| of every ``m`` along the input dim.

    The input dim (dim 1) must be a multiple of ``m``.
    """
    view = _input_major(weight.detach().abs().float())
    out, positions, inputs = view.shape
    groups = view.reshape(out, positions, inputs // m, m)
    keep = groups.topk(n, dim=-1).indices
    mask = torch.zeros_like(groups).scatter_(-1, keep, 1.0)
    mask = mask.reshape(out, positions, inputs)
    if weight.dim() == 2:
        return mask.squeeze(1).to(weight.dtype)
    return mask.transpose(1, 2).reshape(weight.shape).to(weight.dtype)


def can_sparsify(layer: nn.Module, m: int) -> bool:
    """A layer whose per-group input count is a multiple of ``m`` (depthwise never is)."""
    weight = getattr(layer, "weight", None)
    return weight is not None and weight.dim() >= 2 and weight.shape[1] % m == 0


def apply_sparsity(
    model: nn.Module, patterns: Mapping[str, str], chip_patterns: Collection[str]
) -> dict[str, str]:
    """Mask the layers named in ``patterns`` (name -> ``"2:4"``) in place.

    Applies a pattern only where the chip lists it (``chip_patterns``) and the
    layer's input dim is a multiple of M; other layers stay dense
    (``sparsity_pattern`` None). Returns the layers made sparse.
    """
    layers = dict(quantized_layers(model))
    applied: dict[str, str] = {}
    for name, pattern in sorted(patterns.items()):
        if not pattern or pattern in ("dense", "none"):
            continue
        if pattern not in SUPPORTED_PATTERNS:
            raise ConfigError(
                f"sparsity pattern {pattern!r} for layer {name!r} is not supported "
                f"(supported: {', '.join(SUPPORTED_PATTERNS)})"
            )
        if pattern not in chip_patterns:
            continue
        layer: QuantMixin | None = layers.get(name)
        if layer is None:
            raise ConfigError(f"sparsity given for {name!r}, which is not a conv/linear layer")
        n, m = parse_pattern(pattern)
        if not can_sparsify(layer, m):  # type: ignore[arg-type]
            continue
        layer.sparsity_mask = nm_mask(layer.weight, n, m)
        layer.sparsity_pattern = pattern
        applied[name] = pattern
    return applied


__all__ = ["SUPPORTED_PATTERNS", "apply_sparsity", "can_sparsify", "nm_mask", "parse_pattern"]
