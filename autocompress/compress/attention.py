"""Attention whose projection weights are read functionally, routed through quantized layers.

``nn.MultiheadAttention`` (ViT's encoder) multiplies by ``in_proj_weight`` and
``out_proj.weight`` inside ``F.multi_head_attention_forward``, so replacing
``out_proj`` by a fake-quantized twin changes nothing it computes.
:func:`route_attention` gives every such module a forward that computes the same
attention with ``out_proj`` called as a layer (weights and input fake-quantized)
and ``in_proj_weight`` fake-quantized in ``out_proj``'s scheme and bits (one bit-width
per attention block; the input of the q/k/v projection stays float).

Swin's ``ShiftedWindowAttention`` (V1 and V2) passes ``qkv.weight`` and ``proj.weight``
to ``shifted_window_attention``; routed, it passes their deployed (fake-quantized)
weights and quantizes the block's input with ``qkv``'s activation quantizer (the input
of ``proj`` inside the function stays float).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autocompress.compress.quantize import QuantMixin


class RoutedMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` computing through its (quantized) projection layers.

    Same parameters and state dict; falls back to the original computation for
    what it does not cover (separate q/k/v weights, attention weights requested,
    masks other than a boolean or float ``attn_mask``).
    """

    def forward(  # type: ignore[override]
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if (
            need_weights
            or key_padding_mask is not None
            or not self._qkv_same_embed_dim
            or self.in_proj_weight is None
            or self.bias_k is not None
            or query.dim() != 3
        ):
            return super().forward(
                query,
                key,
                value,
                key_padding_mask=key_padding_mask,
                need_weights=need_weights,
                attn_mask=attn_mask,
                average_attn_weights=average_attn_weights,
                is_causal=is_causal,
            )
        if not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        weight = self.in_proj_weight
        if isinstance(self.out_proj, QuantMixin):
            weight = self.out_proj.quantize_weight(weight)
        bias = self.in_proj_bias
        w_q, w_k, w_v = weight.chunk(3)
        b_q, b_k, b_v = bias.chunk(3) if bias is not None else (None, None, None)
        batch, length, embed = query.shape
        heads, depth = self.num_heads, embed // self.num_heads

        def split(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return F.linear(x, w, b).reshape(batch, x.shape[1], heads, depth).transpose(1, 2)

        q, k, v = split(query, w_q, b_q), split(key, w_k, b_k), split(value, w_v, b_v)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, embed))
        if not self.batch_first:
            out = out.transpose(0, 1)
        return out, None


def _deployed(layer: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(layer, QuantMixin):
        return layer.deployed_weight_bias()
    return layer.weight, layer.bias  # type: ignore[return-value]


_SWIN_CLASSES: dict[type, type] = {}


def _swin_classes() -> dict[type, type]:
    """torchvision's window-attention classes -> their routed subclasses (built once)."""
    if _SWIN_CLASSES:
        return _SWIN_CLASSES
    from torchvision.models import swin_transformer as swin  # seconds: only for Swin models

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
        if isinstance(self.qkv, QuantMixin):
            x = self.qkv.quantize_input(x)
        qkv_weight, qkv_bias = _deployed(self.qkv)
        proj_weight, proj_bias = _deployed(self.proj)
        extra = {"logit_scale": self.logit_scale} if hasattr(self, "logit_scale") else {}
        return swin.shifted_window_attention(
            x,
            qkv_weight,
            proj_weight,
            self.get_relative_position_bias(),
            self.window_size,
            self.num_heads,
            shift_size=self.shift_size,
            attention_dropout=self.attention_dropout,
            dropout=self.dropout,
            qkv_bias=qkv_bias,
            proj_bias=proj_bias,
            training=self.training,
            **extra,
        )

    for base in (swin.ShiftedWindowAttention, swin.ShiftedWindowAttentionV2):
        _SWIN_CLASSES[base] = type(f"Routed{base.__name__}", (base,), {"forward": forward})
    return _SWIN_CLASSES


def route_attention(model: nn.Module) -> int:
    """Give every ``nn.MultiheadAttention`` and Swin window attention of ``model`` the
    routed forward (in place). Returns how many modules were routed."""
    count = 0
    swin = None
    for module in model.modules():
        if type(module) is nn.MultiheadAttention:
            module.__class__ = RoutedMultiheadAttention
            count += 1
        elif type(module).__name__ in ("ShiftedWindowAttention", "ShiftedWindowAttentionV2"):
            swin = swin or _swin_classes()
            if type(module) in swin:
                module.__class__ = swin[type(module)]
                count += 1
    return count


__all__ = ["RoutedMultiheadAttention", "route_attention"]
