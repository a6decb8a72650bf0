"""A tiny real ONNX model and deploy card for the vendor export steps."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """(path of a real ONNX file, a deploy card whose layers name its modules)."""
    import torch
    from torch import nn

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)
            )
            self.head = nn.Linear(8, 4)

        def forward(self, x):
            return self.head(self.body(x).mean(dim=(2, 3)))

    # The default (dynamo) exporter, as `autocompress export` uses: its node names do not
    # carry the module path of a conv fused with batch-norm, so the mapping is tested for real.
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    torch.onnx.export(Tiny().eval(), (torch.zeros(1, 3, 16, 16),), str(path), input_names=["input"])
    card = {
        "layers": [
            {"name": "body.0", "kind": "conv", "weight_bits": 8, "activation_bits": 8},
            {"name": "body.2", "kind": "conv", "weight_bits": 16, "activation_bits": 16},
            # not a compute node: export steps must skip it when pairing layers with nodes
            {"name": "mean", "kind": "pool", "weight_bits": 32, "activation_bits": 32},
            {"name": "head", "kind": "linear", "weight_bits": 8, "activation_bits": 8},
        ],
        "input_shape": [3, 16, 16],
        "normalization": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
    }
    return path, card
