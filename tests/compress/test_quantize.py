"""Fake quantization: value grids, STE, BN folding, activation calibration, quant_params."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from autocompress.compress.fold import fold_batch_norms
from autocompress.compress.quantize import (
    LayerQuantization,
    QuantConv2d,
    QuantLinear,
    calibrate_activations,
    fake_quantize,
    fake_quantize_per_channel_no_sync,
    log_codes,
    log_decode,
    quantized_layers,
)
from autocompress.core.errors import ConfigError
from autocompress.hardware.spec import QuantGranularity, QuantizationScheme

torch.set_num_threads(1)


def _conv(quant: LayerQuantization) -> QuantConv2d:
    torch.manual_seed(0)
    return QuantConv2d.from_float(nn.Conv2d(16, 12, 3, padding=1), quant)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [True, False])
def test_per_channel_weights_take_at_most_2_pow_b_values_per_channel(bits, symmetric):
    layer = _conv(LayerQuantization(weight_bits=bits, weight_symmetric=symmetric))
    weight = layer.quantized_weight().detach()
    for channel in weight.reshape(weight.shape[0], -1):
        assert channel.unique().numel() <= 2**bits
    if bits == 8:  # fine grid: close to the float weight
        assert (weight - layer.weight).abs().max() < layer.weight.abs().max() / 100


@pytest.mark.parametrize(("qmin", "qmax"), [(-8, 7), (-128, 127), (0, 255)])
def test_the_sync_free_per_channel_fake_quant_equals_atens(qmin, qmax):
    """The CUDA path (no host read of the zero points) computes what ATen's op computes,
    values and gradient, ties on half steps and clipped values included."""
    torch.manual_seed(0)
    scale = torch.rand(12) * 0.05 + 1e-3
    zero = torch.randint(-3, 4, (12,), dtype=torch.int32)
    if qmin == 0:  # asymmetric: zero points inside 0..255
        zero = zero + 7
    halves = (torch.randint(-300, 300, (12, 5, 3, 3)).float() + 0.5) * scale.reshape(-1, 1, 1, 1)
    for x in (torch.randn(12, 5, 3, 3) * 2, halves):
        x = x.requires_grad_()
        expected = torch.fake_quantize_per_channel_affine(x, scale, zero, 0, qmin, qmax)
        got = fake_quantize_per_channel_no_sync(x, scale, zero, 0, qmin, qmax)
        assert torch.equal(got, expected)
        upstream = torch.randn_like(x)
        (g_expected,) = torch.autograd.grad(expected, x, upstream)
        (g_got,) = torch.autograd.grad(got, x, upstream)
        assert torch.equal(g_got, g_expected)
        assert (g_got == 0).any() and (g_got != 0).any()  # some values clip, some pass


def test_per_tensor_weights_share_one_grid():
    layer = _conv(LayerQuantization(weight_bits=4, per_channel=False, weight_symmetric=False))
    assert layer.quantized_weight().unique().numel() <= 16
    params = layer.quant_params()
    assert params["weight_granularity"] == "per_tensor"
    assert params["weight_scale"].shape == (1,)


def test_log_quantization_lands_on_the_log_grid():
    steps, bits = 16, 8
    layer = _conv(LayerQuantization(weight_bits=bits, logarithmic=True, log_steps_per_octave=steps))
    weight = layer.quantized_weight().detach()
    reference = layer.weight.detach().abs().reshape(12, -1).amax(1)[:, None, None, None]
    nonzero = weight != 0
    exponents = torch.log2((weight.abs() / reference)[nonzero]) * steps
    assert torch.allclose(exponents, exponents.round(), atol=1e-3)
    assert exponents.max() <= 1e-3 and exponents.min() >= -(2 ** (bits - 1) - 1) - 1e-3
    # coarse: 4 bits = 7 magnitudes per sign
    small = _conv(LayerQuantization(weight_bits=4, logarithmic=True, log_steps_per_octave=2))
    for channel in small.quantized_weight().detach().reshape(12, -1):
        assert channel.unique().numel() <= 15


def test_log_codes_round_trip():
    x = torch.tensor([0.0, 1.0, -0.5, 0.25, 1e-9, -1.0])
    ref = torch.tensor(1.0)
    codes = log_codes(x, ref, 8, 16)
    assert codes[0] == 0 and codes[4] == 0  # zero and underflow
    assert codes[1] == 127 and codes[5] == -127
    assert torch.allclose(log_decode(codes, ref, 8, 16), torch.tensor([0, 1, -0.5, 0.25, 0, -1]))


def test_straight_through_gradient_reaches_the_float_weights():
    layer = _conv(LayerQuantization(weight_bits=4, activation_bits=8))
    layer.train()
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    layer(x).square().mean().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_activation_ranges_calibrate_and_inputs_take_at_most_2_pow_b_values():
    layer = QuantLinear.from_float(nn.Linear(32, 4), LayerQuantization(activation_bits=3))
    images = torch.randn(512, 32) * 3 + 1
    calibrate_activations(layer, images, batch_size=128)
    assert layer.act_min < -5 and layer.act_max > 7
    seen = {}
    layer.register_forward_hook(lambda m, inp, out: seen.update(x=m.quantize_input(inp[0])))
    layer(images[:64])
    assert seen["x"].unique().numel() <= 8
    params = layer.quant_params()
    assert params["activation_scheme"] == "asymmetric"
    lo, hi = params["activation_qmin"], params["activation_qmax"]
    assert (lo, hi) == (0, 7) and lo <= params["activation_zero_point"] <= hi


def test_quant_params_dequantize_to_the_computed_weight():
    layer = _conv(LayerQuantization(weight_bits=4, weight_symmetric=True))
    params = layer.quant_params()
    scale = params["weight_scale"].reshape(-1, 1, 1, 1)
    zero = params["weight_zero_point"].reshape(-1, 1, 1, 1)
    assert params["weight_int"].min() >= params["weight_qmin"] == -8
    assert params["weight_int"].max() <= params["weight_qmax"] == 7
    assert torch.allclose((params["weight_int"] - zero) * scale, params["weight"], atol=1e-6)
    assert params["weight_scheme"] == "symmetric" and params["weight_bits"] == 4


def test_bn_folding_keeps_outputs_and_replaces_bn_by_identity():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 6 * 6, 5),
        nn.BatchNorm1d(5),
    )
    model.train()
    for _ in range(3):  # non-trivial running statistics
        model(torch.randn(16, 3, 8, 8) * 2 + 1)
    model.eval()
    folded = copy.deepcopy(model)
    pairs = fold_batch_norms(folded, torch.randn(1, 3, 8, 8))
    assert pairs == [("0", "1"), ("4", "5")]
    assert isinstance(folded[1], nn.Identity) and isinstance(folded[5], nn.Identity)
    x = torch.randn(4, 3, 8, 8)
    assert torch.allclose(model(x), folded(x), atol=1e-4)


def test_fake_quantize_replaces_layers_in_place_with_attributes():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    scheme = QuantizationScheme(weight_granularity=QuantGranularity.PER_CHANNEL)
    fake_quantize(model, scheme, {"0": 4}, {"0": 8, "3": 16})
    layers = dict(quantized_layers(model))
    assert set(layers) == {"0", "3"}
    assert (layers["0"].weight_bits, layers["0"].activation_bits) == (4, 8)
    assert (layers["3"].weight_bits, layers["3"].activation_bits) == (32, 16)
    assert layers["0"].sparsity_pattern is None
    with pytest.raises(ConfigError, match="between 2 and 16"):
        fake_quantize(nn.Sequential(nn.Linear(2, 2)), scheme, {"0": 1}, {})


def test_a_layer_gives_back_the_one_layer_quantization_it_was_built_from():
    """Export reads the scheme back from the layer: one record, float = 32 bits on both sides."""
    from autocompress.export.onnx_model import deploy_copy

    quant = LayerQuantization(
        weight_bits=4, activation_bits=32, weight_symmetric=False, per_channel=False
    )
    model = nn.Sequential(QuantConv2d.from_float(nn.Conv2d(4, 8, 3), quant))
    assert model[0].quantization == quant
    _float_model, layers, _raw = deploy_copy(model)
    assert layers["0"].quantization == quant
    assert (layers["0"].weight_bits, layers["0"].activation_bits) == (4, None)
