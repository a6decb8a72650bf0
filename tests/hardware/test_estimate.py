"""estimate_cost / estimate_costs: names resolved, precision checked, plugin overrides honoured."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import autocompress
from autocompress.core.errors import ConfigError, UnknownNameError
from autocompress.hardware import plugins
from autocompress.hardware.cost import Cost, LayerCost
from autocompress.hardware.cost_model import cost_layers
from autocompress.hardware.estimate import (
    estimate_cost,
    estimate_costs,
    normalize_input_shape,
)
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantizationScheme

torch.set_num_threads(1)


def make_chip(chip_id: str = "test/npu", **changes) -> ChipSpec:
    spec = ChipSpec(
        chip_id=chip_id,
        vendor="Test",
        display_name="NPU",
        npu_clock_mhz=1000.0,
        peak_tops_by_bits={8: 1.0, 16: 0.25},
        weight_bits_supported=(8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=256.0,
        dram_bandwidth_gbps=4.0,
        energy_per_mac_pj_by_bits={8: 0.2, 16: 0.8},
        sram_energy_pj_per_byte=1.0,
        dram_energy_pj_per_byte=100.0,
        static_power_mw=100.0,
        launch_overhead_us=10.0,
        quantization=QuantizationScheme(),
        budgets=ChipBudgets(memory_kb=4096.0, power_mw=1000.0, latency_ms=10.0),
    )
    return dataclasses.replace(spec, **changes)


def test_estimate_by_name_equals_extract_then_cost():
    chip = make_chip()
    cost = estimate_cost(
        "small_cnn", (1, 8, 8), chip, weight_bits=8, activation_bits=8, num_classes=10
    )
    from autocompress.core.models import build_model

    layers = extract_layers(
        build_model("small_cnn", num_classes=10, in_channels=1),
        (1, 8, 8),
        weight_bits=8,
        activation_bits=8,
    )
    assert cost == cost_layers(layers, chip)
    assert cost.layers[-1].name == "12" and cost.layers[-1].kind == "linear"


def test_public_api_and_installed_chip():
    cost = autocompress.estimate_cost(
        "mobilenet_v2", 224, "rockchip/rv1126", weight_bits=8, activation_bits=8
    )
    float_cost = autocompress.estimate_cost("mobilenet_v2", 224, "rockchip/rv1126")
    assert cost.chip_id == "rockchip/rv1126"
    assert cost.macs == pytest.approx(300.8e6, rel=0.01)
    assert 0 < cost.latency_ms < float_cost.latency_ms
    assert cost.model_size_kb == pytest.approx(float_cost.model_size_kb / 2)  # int8 vs int16


def test_bits_the_chip_cannot_run_are_refused_with_its_widths():
    with pytest.raises(ConfigError, match=r"cannot run 4-bit weights.*8, 16"):
        estimate_cost("small_cnn", (1, 8, 8), make_chip(), weight_bits=4)
    with pytest.raises(ConfigError, match="activation"):
        estimate_cost("small_cnn", (1, 8, 8), make_chip(), activation_bits={"0": 4})
    with pytest.raises(ConfigError, match="sparsity pattern '2:4'"):
        estimate_cost("small_cnn", (1, 8, 8), make_chip(), sparsity={"0": "2:4"})


def test_unknown_names_and_bad_shapes():
    with pytest.raises(UnknownNameError, match="resnet18"):
        estimate_cost("resnt18", 224, make_chip())
    with pytest.raises(UnknownNameError, match="rockchip/rv1126"):
        estimate_cost("resnet18", 224, "rockchip/rv1127")
    for bad in [(3, 224), (0, 8, 8), "abc", True]:
        with pytest.raises(ConfigError):
            normalize_input_shape(bad)
    assert normalize_input_shape(32) == (3, 32, 32)


def test_estimate_costs_on_every_installed_chip():
    chips = autocompress.list_chips()
    assert chips, "the bundled plugins provide chips"
    layers = extract_layers(
        torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.ReLU()),
        (3, 32, 32),
        weight_bits=8,
        activation_bits=8,
    )
    costs = estimate_costs(layers, [*chips, make_chip()])
    assert list(costs) == [chip.chip_id for chip in chips] + ["test/npu"]
    for cost in costs.values():
        assert isinstance(cost, Cost) and cost.latency_ms > 0 and cost.energy_mj > 0


class _OverridingVendor:
    """A plugin that costs its own chips itself: one whole-model, one per layer."""

    @hookimpl
    def autocompress_chips(self):
        return [make_chip("acme/whole"), make_chip("acme/layer")]

    @hookimpl
    def autocompress_estimate_cost(self, chip, layers):
        if chip.chip_id != "acme/whole":
            return None
        return Cost(chip.chip_id, 1.0, 2.0, 2000.0, 3.0, 4.0, sum(x.macs for x in layers))

    @hookimpl
    def autocompress_layer_cost(self, chip, layer):
        if chip.chip_id != "acme/layer" or layer.kind.value != "conv":
            return None
        return LayerCost(layer.name, "conv", layer.macs, 0, 0, 5.0, 1.0, 0, "compute", 8, 8)


def test_plugin_overrides_are_asked_first(monkeypatch):
    registry = plugins.ChipRegistry(autoload=False)
    assert registry.register(_OverridingVendor(), "acme")
    monkeypatch.setattr(plugins, "_default", registry)
    layers = extract_layers(
        torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3), torch.nn.Flatten(), torch.nn.Linear(16, 2)),
        (3, 3, 3),
        weight_bits=8,
        activation_bits=8,
    )
    costs = estimate_costs(layers, ["acme/whole", "acme/layer", make_chip()])
    assert costs["acme/whole"].latency_ms == 1.0
    analytical = cost_layers(layers, make_chip("acme/layer"))
    per_layer = costs["acme/layer"]
    assert per_layer.layers[0].latency_ms == 5.0
    assert per_layer.layers[1] == analytical.layers[1]
    assert per_layer.latency_ms == pytest.approx(5.0 + analytical.layers[1].latency_ms)
    assert costs["test/npu"] == cost_layers(layers, make_chip())  # not a plugin's chip


def test_sparsify_everywhere_puts_the_pattern_where_it_fits_and_only_on_chips_that_run_it():
    from autocompress.hardware.estimate import estimate_with_layers, sparsify_everywhere
    from autocompress.hardware.plugins import get_chip

    orin = get_chip("nvidia/orin-nano")
    layers, _cost = estimate_with_layers("small_cnn", (1, 8, 8), orin, num_classes=10)
    sparse = {
        layer.name: layer.sparsity_pattern for layer in sparsify_everywhere(layers, "2:4", orin)
    }
    first = layers[0].name  # one input channel: no whole block of 4
    assert sparse[first] is None and "2:4" in sparse.values()
    with pytest.raises(ConfigError, match="does not accelerate"):
        sparsify_everywhere(layers, "2:4", get_chip("rockchip/rv1126"))
    with pytest.raises(ConfigError, match="sparsity pattern"):
        sparsify_everywhere(layers, "4:2", orin)
