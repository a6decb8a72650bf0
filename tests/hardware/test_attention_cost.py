"""Functional attention is costed by its matmuls, not as one element-wise op."""

from __future__ import annotations

import warnings

import pytest
import torch
import torchvision
from torch import nn

from autocompress.core.models import build_model
from autocompress.hardware.extract import extract_layers

torch.set_num_threads(1)


@pytest.mark.parametrize("name", ["swin_t", "maxvit_t"])
def test_window_attention_and_einsum_macs_match_torchvision(name):
    weights = torchvision.models.get_model_weights(name).DEFAULT
    published = weights.meta["_ops"] * 1e9  # torchvision's GMACs at 224x224
    layers = extract_layers(build_model(name).eval(), (3, 224, 224))
    macs = sum(layer.macs for layer in layers)
    assert abs(macs - published) / published < 0.02, (macs, published)  # swin_t was 2.97e9


def mystery_block(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return x @ w


torch.fx.wrap("mystery_block")


def test_an_unknown_wrapped_function_is_reported_by_name():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(8, 8))
            self.fc = nn.Linear(8, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(mystery_block(x, self.w))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extract_layers(Net(), (4, 8))
    assert any("mystery_block" in str(w.message) for w in caught)
