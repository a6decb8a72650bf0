"""nn.MultiheadAttention computes through its quantized projection layers in a student."""

from __future__ import annotations

import torch
from torch import nn

from autocompress.compress.attention import RoutedMultiheadAttention, route_attention
from autocompress.compress.quantize import fake_quantize
from autocompress.hardware.plugins import get_chip

torch.set_num_threads(1)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.attn(x, x, x, need_weights=False)
        return self.head(out.mean(1))


def test_routed_attention_computes_the_same_in_float():
    torch.manual_seed(0)
    block = Block().eval()
    x = torch.randn(2, 5, 16)
    reference = block(x)
    assert route_attention(block) == 1 and isinstance(block.attn, RoutedMultiheadAttention)
    assert torch.allclose(block(x), reference, atol=1e-5)
    assert set(block.state_dict()) == set(Block().state_dict())  # same parameters and names


def test_quantized_attention_uses_quantized_projection_weights():
    torch.manual_seed(0)
    block = Block().eval()
    x = torch.randn(2, 5, 16)
    scheme = get_chip("rockchip/rv1126").quantization
    bits = {"attn.out_proj": 4, "head": 8}
    fake_quantize(block, scheme, bits, {})
    float_out = block(x)  # out_proj.weight is read functionally: bits have no effect
    route_attention(block)
    ran = []
    block.attn.out_proj.register_forward_hook(lambda *_: ran.append(True))
    routed = block(x)
    assert ran, "out_proj did not run as a layer"
    assert not torch.allclose(routed, float_out, atol=1e-4)  # 4-bit weights now count


def test_swin_window_attention_is_routed_through_its_quantized_layers():
    import copy

    from autocompress.core.models import build_model

    torch.manual_seed(0)
    model = build_model("swin_t", num_classes=4).eval()
    x = torch.randn(1, 3, 64, 64)
    reference = model(x)
    routed = copy.deepcopy(model)
    assert route_attention(routed) == 12
    assert torch.allclose(routed(x), reference, atol=1e-5)  # same function in float
    scheme = get_chip("rockchip/rv1126").quantization
    qkv = [n for n, _ in model.named_modules() if n.endswith("attn.qkv")]
    fake_quantize(routed, scheme, dict.fromkeys(qkv, 4), {})
    assert not torch.allclose(routed(x), reference, atol=1e-4)  # 4-bit qkv weights count
