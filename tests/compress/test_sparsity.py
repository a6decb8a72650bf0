"""2:4 semi-structured sparsity."""

from __future__ import annotations

import torch
from torch import nn

from autocompress.compress.quantize import LayerQuantization, QuantConv2d, QuantLinear
from autocompress.compress.sparsity import apply_sparsity, nm_mask

torch.set_num_threads(1)


def test_nm_mask_keeps_the_two_largest_of_every_four_inputs():
    torch.manual_seed(0)
    weight = torch.randn(6, 16, 3, 3)
    mask = nm_mask(weight, 2, 4)
    groups = mask.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.all(groups.sum(1) == 2)
    kept = (weight.abs() * mask).permute(0, 2, 3, 1).reshape(-1, 4)
    dropped = (weight.abs() * (1 - mask)).permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.all(kept.topk(2, 1).values.min(1).values >= dropped.max(1).values)


def test_apply_sparsity_masks_only_supported_and_compatible_layers():
    torch.manual_seed(0)
    q = LayerQuantization(weight_bits=8)
    model = nn.Sequential(
        QuantConv2d.from_float(nn.Conv2d(3, 16, 3), q),  # 3 inputs: not a multiple of 4
        QuantConv2d.from_float(nn.Conv2d(16, 16, 3, groups=16), q),  # depthwise
        QuantConv2d.from_float(nn.Conv2d(16, 8, 1), q),
        nn.Flatten(),
        QuantLinear.from_float(nn.Linear(8 * 4 * 4, 4), q),
    )
    everything = {"0": "2:4", "1": "2:4", "2": "2:4", "4": "2:4"}
    assert apply_sparsity(model, everything, chip_patterns=()) == {}
    applied = apply_sparsity(model, everything, chip_patterns=("2:4",))
    assert applied == {"2": "2:4", "4": "2:4"}
    assert model[0].sparsity_pattern is None and model[1].sparsity_pattern is None
    weight = model[2].quantized_weight().detach().reshape(8, -1)
    assert torch.all((weight.reshape(8, 4, 4) != 0).sum(-1) <= 2)
    linear = model[4].quantized_weight().detach()
    assert torch.all((linear.reshape(4, -1, 4) != 0).sum(-1) <= 2)
    assert model[4].quant_params()["sparsity_pattern"] == "2:4"
