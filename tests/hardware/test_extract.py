"""Layer extraction: real shapes, fusion, precision, liveness, and the model left untouched."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from autocompress.core.errors import ConfigError
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.layers import LayerKind

torch.set_num_threads(1)


def tiny_net() -> nn.Sequential:
    """conv 1→16 3×3 + bn + relu, flatten, linear 1024→10 (on 1×8×8)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )


def weight_macs(layers) -> int:
    return sum(layer.macs for layer in layers if layer.kind in (LayerKind.CONV, LayerKind.LINEAR))


def test_tiny_net_descriptors_match_hand_computed_shapes():
    conv, linear = extract_layers(tiny_net(), (1, 8, 8))
    assert (conv.name, conv.kind, conv.fused_ops) == ("0", LayerKind.CONV, ("bn", "relu"))
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (1, 16, (3, 3))
    assert conv.macs == 8 * 8 * 16 * 3 * 3 * 1
    assert conv.weight_count == 16 * 9
    assert (conv.input_elements, conv.output_elements) == (64, 1024)
    assert conv.live_elements == 64 + 1024
    assert (linear.name, linear.kind, linear.fused_ops) == ("4", LayerKind.LINEAR, ())
    assert linear.macs == 1024 * 10
    assert linear.weight_count == 1024 * 10 + 10
    assert linear.live_elements == 1024 + 10  # the network input is dead by then
    assert conv.weight_bits == conv.activation_bits == 32


def test_resnet18_macs_fusion_and_residual_liveness():
    layers = extract_layers(torchvision.models.resnet18(), (3, 224, 224))
    assert weight_macs(layers) == pytest.approx(1.814e9, rel=0.01)  # torchvision: 1.81 GFLOPS
    assert sum("add" in layer.fused_ops for layer in layers) == 8  # every residual add fused
    assert all(layer.kind is not LayerKind.ELTWISE for layer in layers)
    assert all(layer.kind is not LayerKind.ACTIVATION for layer in layers)
    by_name = {layer.name: layer for layer in layers}
    assert "layer1.0.bn1" not in by_name  # folded into its conv
    # the block input (64×56×56) stays alive for the residual add while conv1 and conv2 run
    assert by_name["layer1.0.conv1"].live_elements == 2 * 64 * 56 * 56
    assert by_name["layer1.0.conv2"].live_elements == 3 * 64 * 56 * 56
    assert by_name["layer1.0.conv2"].extra_input_elements == 64 * 56 * 56
    assert by_name["layer1.0.conv2"].fused_ops == ("bn", "add", "relu")
    assert by_name["conv1"].stride == (2, 2)


def test_mobilenet_v2_macs_and_depthwise():
    layers = extract_layers(torchvision.models.mobilenet_v2(), (3, 224, 224))
    assert weight_macs(layers) == pytest.approx(300e6, rel=0.01)  # paper: 300 M MACs
    depthwise = [layer for layer in layers if layer.is_depthwise]
    assert len(depthwise) == 17
    assert sum("add" in layer.fused_ops for layer in layers) == 10
    assert all("relu6" in layer.fused_ops for layer in depthwise)


def test_mobilenet_v3_small_macs_and_squeeze_excite():
    layers = extract_layers(torchvision.models.mobilenet_v3_small(), (3, 224, 224))
    assert weight_macs(layers) == pytest.approx(56.5e6, rel=0.02)  # paper: 56 M MACs
    muls = [layer for layer in layers if layer.kind is LayerKind.ELTWISE]
    assert len(muls) == 9  # the squeeze-excite scaling of 9 blocks
    assert any("hardswish" in layer.fused_ops for layer in layers)


def test_grouped_strided_dilated_conv_geometry():
    model = nn.Sequential(
        nn.Conv2d(8, 16, 3, stride=2, padding=2, dilation=2, groups=4),
        nn.Conv2d(16, 16, 3, padding=1, groups=16),
    )
    grouped, depthwise = extract_layers(model, (2, 8, 16, 16))
    assert grouped.output_hw == (8, 8) and grouped.batch == 2
    assert (grouped.stride, grouped.dilation, grouped.groups) == ((2, 2), (2, 2), 4)
    assert grouped.macs == 2 * 8 * 8 * 16 * 9 * (8 // 4)
    assert not grouped.is_depthwise and depthwise.is_depthwise
    assert depthwise.macs == 2 * 8 * 8 * 16 * 9


class _Branchy(nn.Module):
    """A relu whose producer has two users cannot fuse; cat is a copy."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 1)
        self.act = nn.ReLU()

    def forward(self, x):
        y = self.conv(x)
        return torch.cat([self.act(y), y], dim=1)


def test_unfusable_activation_and_concat():
    conv, act, cat = extract_layers(_Branchy(), (3, 4, 4))
    assert conv.fused_ops == ()
    assert act.kind is LayerKind.ACTIVATION and act.name == "act"
    assert cat.kind is LayerKind.ELTWISE and cat.output_elements == 16 * 16
    assert cat.input_elements + cat.extra_input_elements == 16 * 16


class _QuantConv(nn.Conv2d):
    """Like the compression engine's quantized conv: a Conv2d subclass carrying bits."""

    def __init__(self, *args, weight_bits=4, activation_bits=8, sparsity_pattern=None, **kw):
        super().__init__(*args, **kw)
        self.weight_bits = weight_bits
        self.activation_bits = activation_bits
        self.sparsity_pattern = sparsity_pattern


class _QuantWrapper(nn.Module):
    """A wrapper around a plain conv, carrying the attributes itself."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv
        self.weight_bits, self.activation_bits, self.sparsity_pattern = 8, 16, "2:4"

    def forward(self, x):
        return self.conv(torch.round(x * 4) / 4)  # fake quant of the input: not a layer


def _quantized_model() -> nn.Sequential:
    return nn.Sequential(
        _QuantConv(3, 8, 3, padding=1, sparsity_pattern="2:4"),
        nn.ReLU(),
        _QuantWrapper(nn.Conv2d(8, 8, 3, padding=1)),
        nn.AdaptiveAvgPool2d(1),
    )


def test_precision_from_module_attributes_subclass_and_wrapper():
    first, second, pool = extract_layers(_quantized_model(), (3, 8, 8))
    assert (first.name, first.weight_bits, first.activation_bits) == ("0", 4, 8)
    assert first.sparsity_pattern == "2:4" and first.fused_ops == ("relu",)
    assert (second.name, second.kind, second.weight_bits, second.activation_bits) == (
        "2",
        LayerKind.CONV,
        8,
        16,
    )
    assert second.sparsity_pattern == "2:4" and second.macs == 8 * 8 * 8 * 9 * 8
    assert pool.kind is LayerKind.POOL and pool.activation_bits == 16  # inherits its input


def test_explicit_arguments_win_over_attributes():
    layers = extract_layers(
        _quantized_model(),
        (3, 8, 8),
        weight_bits={"0": 8},
        activation_bits=16,
        sparsity={"2": None},
    )
    assert (layers[0].weight_bits, layers[0].activation_bits) == (8, 16)
    assert layers[1].weight_bits == 8 and layers[1].sparsity_pattern is None
    assert layers[0].sparsity_pattern == "2:4"  # not named: attribute kept


def test_uniform_bits_apply_to_every_layer():
    layers = extract_layers(tiny_net(), (1, 8, 8), weight_bits=8, activation_bits=8)
    assert {(layer.weight_bits, layer.activation_bits) for layer in layers} == {(8, 8)}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight_bits": {"0.conv": 8}}, "does not have"),
        ({"weight_bits": 0}, "between 1 and 32"),
        ({"activation_bits": {"0": 64}}, "between 1 and 32"),
    ],
)
def test_bad_precision_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        extract_layers(tiny_net(), (1, 8, 8), **kwargs)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((0, 8, 8), "positive"),
        ((8,), "too short"),
        ((1.5, 8, 8), "integers"),
        ((3, 8, 8), "failed"),
    ],
)
def test_bad_input_shapes(shape, message):
    with pytest.raises(ConfigError, match=message):
        extract_layers(tiny_net(), shape)


def test_model_left_as_it_was():
    model = tiny_net()
    model.train()
    model[1].eval()  # mixed modes must come back exactly
    before = {k: v.clone() for k, v in model.state_dict().items()}
    extract_layers(model, (1, 8, 8))
    assert model.training and model[0].training and not model[1].training
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN stats untouched


class _Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it; hooks must."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.relu(self.bn(self.conv(x)))
        if y.sum() >= 0:
            y = y.mean(dim=(2, 3))
        return self.fc(y)


def test_hook_fallback_for_untraceable_models():
    conv, fc = extract_layers(_Untraceable(), (3, 8, 8))
    assert conv.fused_ops == ("bn", "relu") and conv.macs == 8 * 8 * 8 * 27
    assert fc.kind is LayerKind.LINEAR and fc.macs == 8 * 4


def test_descriptors_match_the_compression_engines_quantized_layers():
    from autocompress.compress.quantize import fake_quantize, quantized_layers, set_calibrating
    from autocompress.compress.sparsity import apply_sparsity
    from autocompress.hardware.spec import QuantizationScheme

    model = torchvision.models.resnet18(num_classes=10)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    weight_bits = {name: 4 if i % 2 else 8 for i, name in enumerate(names)}
    fake_quantize(model, QuantizationScheme(), weight_bits, {n: 8 for n in names[1:]})
    apply_sparsity(model, {"layer1.0.conv2": "2:4"}, ("2:4",))
    set_calibrating(model, True)  # observers would record the zero input: must not stick
    buffers = [b.clone() for b in model.buffers()]
    layers = {layer.name: layer for layer in extract_layers(model, (3, 32, 32))}
    for name, module in quantized_layers(model):
        layer = layers[name]
        assert (layer.weight_bits, layer.activation_bits) == (
            module.weight_bits,
            module.activation_bits,
        )
        assert layer.out_channels == (
            module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        )
        assert layer.sparsity_pattern == module.sparsity_pattern
    assert layers["layer1.0.conv2"].sparsity_pattern == "2:4"
    assert all(torch.equal(a, b) for a, b in zip(buffers, model.buffers(), strict=True))


class _Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(32, 4, batch_first=True)

    def forward(self, x):  # (1, N, L, E): a (C, H, W) shape gets a batch of 1 prepended
        x = x.flatten(0, 1)
        out, _ = self.attention(x, x, x, need_weights=False)
        return out


def test_multihead_attention_counts_projections_and_attention():
    (layer,) = extract_layers(_Attention(), (2, 10, 32))
    assert layer.kind is LayerKind.LINEAR and layer.name == "attention"
    # q, k, v and output projections (4·L·E²) + scores and weighted sum (2·L²·E), per sequence
    assert layer.macs == 2 * (4 * 10 * 32 * 32 + 2 * 10 * 10 * 32)
    assert layer.output_elements == 2 * 10 * 32
    assert layer.weight_count == 4 * 32 * 32 + 4 * 32
