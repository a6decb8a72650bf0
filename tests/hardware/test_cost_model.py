"""The analytical cost model: hand-computed numbers on a tiny network, and monotonic properties."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from autocompress.core.errors import ConfigError
from autocompress.hardware.cost_model import cost_layers, effective_bits
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.layers import LayerDescriptor, LayerKind
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantizationScheme

torch.set_num_threads(1)


def make_chip(**changes) -> ChipSpec:
    """A hand-made chip with round figures (no plugin involved).

    At 8 bits: 1 TOPS = 0.5e12 MAC/s × 0.5 efficiency = 0.25e12 MAC/s; DRAM
    1 GB/s × 0.5 = 0.5e9 B/s; 2 KiB buffer; 10 µs per launch; 100 mW static.
    """
    spec = ChipSpec(
        chip_id="test/npu",
        vendor="Test",
        display_name="NPU",
        npu_clock_mhz=1000.0,
        peak_tops_by_bits={4: 2.0, 8: 1.0, 16: 0.25},
        weight_bits_supported=(4, 8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=2.0,
        dram_bandwidth_gbps=1.0,
        energy_per_mac_pj_by_bits={4: 0.05, 8: 0.2, 16: 0.8},
        sram_energy_pj_per_byte=1.0,
        dram_energy_pj_per_byte=100.0,
        static_power_mw=100.0,
        launch_overhead_us=10.0,
        quantization=QuantizationScheme(),
        budgets=ChipBudgets(memory_kb=64.0, power_mw=1000.0, latency_ms=1.0),
        compute_efficiency=0.5,
        bandwidth_efficiency=0.5,
        depthwise_efficiency=0.25,
    )
    return dataclasses.replace(spec, **changes)


def tiny_layers(bits: int = 8) -> list[LayerDescriptor]:
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 8 * 8, 10),
    )
    return extract_layers(model, (1, 8, 8), weight_bits=bits, activation_bits=bits)


def conv(
    cin: int = 32,
    cout: int = 32,
    hw: tuple[int, int] = (16, 16),
    *,
    k: int = 3,
    groups: int = 1,
    bits: tuple[int, int] = (8, 8),
    sparsity: str | None = None,
) -> LayerDescriptor:
    """A stride-1 'same' conv descriptor built by hand."""
    h, w = hw
    return LayerDescriptor(
        name="conv",
        kind=LayerKind.CONV,
        in_channels=cin,
        out_channels=cout,
        kernel_size=(k, k),
        stride=(1, 1),
        dilation=(1, 1),
        groups=groups,
        input_hw=hw,
        output_hw=hw,
        batch=1,
        macs=h * w * cout * k * k * cin // groups,
        weight_count=k * k * cin // groups * cout,
        input_elements=cin * h * w,
        output_elements=cout * h * w,
        weight_bits=bits[0],
        activation_bits=bits[1],
        sparsity_pattern=sparsity,
    )


def test_tiny_network_hand_computed():
    cost = cost_layers(tiny_layers(8), make_chip())
    conv_cost, linear_cost = cost.layers
    rate = 1.0e12 * 0.5 * 0.5  # MAC/s at 8 bits
    bandwidth = 1e9 * 0.5  # B/s
    # conv 1→16 3×3 on 8×8: 9216 MACs; the 9-tap reduction (1 channel × 3×3) is
    # unrolled and padded to 16 lanes (cheaper than 16 lanes per tap).
    assert conv_cost.compute_ms == pytest.approx(9216 * 16 / 9 / rate * 1e3)
    # activations 64 + 1024 B fit the 2 KiB buffer; the network input is read once.
    assert conv_cost.dram_bytes == 144 + 64
    assert conv_cost.memory_ms == pytest.approx(208 / bandwidth * 1e3)
    conv_s = max(9216 * 16 / 9 / rate, 208 / bandwidth) + 10e-6
    assert conv_cost.latency_ms == pytest.approx(conv_s * 1e3)
    conv_pj = 9216 * 0.2 + (144 + 64 + 1024) * 1.0 + 208 * 100.0
    assert conv_cost.energy_mj == pytest.approx((conv_pj * 1e-12 + 0.1 * conv_s) * 1e3)
    assert conv_cost.bound == "memory"  # 208 B of DRAM now outlast the padded compute
    # linear 1024→10: 10 outputs padded to 16 lanes; 10250 weight bytes; output written once.
    assert linear_cost.compute_ms == pytest.approx(10240 * 1.6 / rate * 1e3)
    assert linear_cost.dram_bytes == 10250 + 10
    linear_s = 10260 / bandwidth + 10e-6
    assert linear_cost.bound == "memory"
    assert linear_cost.latency_ms == pytest.approx(linear_s * 1e3)
    linear_pj = 10240 * 0.2 + (10250 + 1024 + 10) * 1.0 + 10260 * 100.0
    assert linear_cost.energy_mj == pytest.approx((linear_pj * 1e-12 + 0.1 * linear_s) * 1e3)
    # totals
    assert cost.latency_ms == pytest.approx((conv_s + linear_s) * 1e3)
    assert cost.energy_mj == pytest.approx(conv_cost.energy_mj + linear_cost.energy_mj)
    assert cost.power_mw == pytest.approx(cost.energy_mj / cost.latency_ms * 1e3)
    assert cost.model_size_kb == pytest.approx((144 + 10250) / 1024)
    assert cost.peak_memory_kb == pytest.approx((144 + 10250 + 64 + 1024) / 1024)
    assert cost.macs == 9216 + 10240
    assert cost.chip_id == "test/npu"


def test_activations_spill_to_dram_when_the_buffer_is_too_small():
    cost = cost_layers(tiny_layers(8), make_chip(onchip_buffer_kb=0.5))
    conv_cost, linear_cost = cost.layers
    assert conv_cost.dram_bytes == 144 + 64 + 1024  # in and out cross DRAM
    assert linear_cost.dram_bytes == 10250 + 1024 + 10


def test_unsupported_widths_cost_as_the_next_width_up():
    chip = make_chip()
    as_int8 = cost_layers([conv(bits=(8, 8))], chip)
    for bits in [(5, 8), (8, 6), (7, 7)]:
        assert cost_layers([conv(bits=bits)], chip) == as_int8
    float_cost = cost_layers([conv(bits=(32, 32))], chip)
    assert float_cost == cost_layers([conv(bits=(16, 16))], chip)
    assert float_cost.layers[0].weight_bits == 16
    assert effective_bits(3, (8, 16)) == 8 and effective_bits(32, (8, 16)) == 16


def test_energy_table_gap_is_scaled_by_operand_widths():
    chip = make_chip(energy_per_mac_pj_by_bits={8: 0.2, 16: 0.8}, sram_energy_pj_per_byte=0.0)
    chip = dataclasses.replace(chip, dram_energy_pj_per_byte=0.0, static_power_mw=0.0)
    layer = conv(bits=(4, 8), cin=16, cout=16)
    layer = dataclasses.replace(layer, activation_bits=8)
    four = dataclasses.replace(chip, activation_bits_supported=(4, 8, 16))
    cost = cost_layers([dataclasses.replace(layer, activation_bits=4)], four)
    # the 4-bit width has a peak entry but no energy entry: 0.2 pJ × (4·4)/(8·8)
    assert cost.energy_mj == pytest.approx(layer.macs * 0.2 * 16 / 64 * 1e-9)


def test_bad_bits_in_a_descriptor_are_reported():
    with pytest.raises(ConfigError, match=r"bit-widths must be 1\.\.32"):
        cost_layers([conv(bits=(0, 8))], make_chip())


def test_misaligned_channels_cost_more_than_aligned_ones_of_the_same_macs():
    chip = make_chip(onchip_buffer_kb=4096.0, dram_bandwidth_gbps=1000.0)
    aligned = conv(cin=32, cout=32, hw=(12, 16))
    misaligned = conv(cin=32, cout=24, hw=(16, 16))
    assert aligned.macs == misaligned.macs
    assert cost_layers([misaligned], chip).latency_ms > cost_layers([aligned], chip).latency_ms


def test_depthwise_costs_more_per_mac():
    chip = make_chip(onchip_buffer_kb=4096.0, dram_bandwidth_gbps=1000.0)
    depthwise = cost_layers([conv(cin=64, cout=64, groups=64)], chip).layers[0]
    regular = cost_layers([conv(cin=64, cout=64)], chip).layers[0]
    assert depthwise.compute_ms / depthwise.macs > regular.compute_ms / regular.macs


def test_sparsity_helps_only_where_the_chip_supports_it():
    sparse_chip = make_chip(sparsity_patterns=("2:4",), sparsity_speedup=2.0)
    dense_chip = make_chip()
    dense, sparse = conv(), conv(sparsity="2:4")
    assert cost_layers([sparse], dense_chip) == cost_layers([dense], dense_chip)
    with_support = cost_layers([sparse], sparse_chip)
    without = cost_layers([dense], sparse_chip)
    assert with_support.layers[0].compute_ms == pytest.approx(without.layers[0].compute_ms / 2)
    assert with_support.energy_mj < without.energy_mj
    assert with_support.model_size_kb == pytest.approx(without.model_size_kb * 0.5 * (1 + 2 / 8))
    assert with_support.layers[0].sparsity_pattern == "2:4"
    assert cost_layers([sparse], dense_chip).layers[0].sparsity_pattern is None


channels = st.integers(min_value=1, max_value=96)
sizes = st.integers(min_value=1, max_value=24)
chips = st.builds(
    make_chip,
    channel_alignment=st.sampled_from([1, 4, 8, 16, 32]),
    onchip_buffer_kb=st.floats(0.25, 512.0),
    dram_bandwidth_gbps=st.floats(0.1, 100.0),
    launch_overhead_us=st.floats(0.0, 50.0),
)


@settings(max_examples=150, deadline=None)
@given(chip=chips, cin=channels, cout=channels, fewer=st.integers(0, 95), hw=sizes)
def test_fewer_channels_never_slower(chip, cin, cout, fewer, hw):
    smaller = max(cout - fewer, 1)
    wide = cost_layers([conv(cin=cin, cout=cout, hw=(hw, hw))], chip)
    narrow = cost_layers([conv(cin=cin, cout=smaller, hw=(hw, hw))], chip)
    assert narrow.latency_ms <= wide.latency_ms
    narrow_in = cost_layers([conv(cin=max(cin - fewer, 1), cout=cout, hw=(hw, hw))], chip)
    assert narrow_in.latency_ms <= wide.latency_ms


widths = st.sampled_from([2, 4, 6, 8, 12, 16, 32])


@settings(max_examples=150, deadline=None)
@given(chip=chips, w=widths, a=widths, w2=widths, a2=widths, cin=channels, cout=channels)
def test_lower_bit_width_never_costs_more_energy(chip, w, a, w2, a2, cin, cout):
    low = (min(w, w2), min(a, a2))
    high = (max(w, w2), max(a, a2))
    cheap = cost_layers([conv(cin=cin, cout=cout, bits=low)], chip)
    dear = cost_layers([conv(cin=cin, cout=cout, bits=high)], chip)
    assert cheap.energy_mj <= dear.energy_mj * (1 + 1e-12)
    assert cheap.latency_ms <= dear.latency_ms * (1 + 1e-12)
    assert cheap.model_size_kb <= dear.model_size_kb


@settings(max_examples=150, deadline=None)
@given(chip=chips, factor=st.floats(1.0, 100.0), cin=channels, cout=channels, hw=sizes)
def test_more_bandwidth_never_slower(chip, factor, cin, cout, hw):
    layers = [conv(cin=cin, cout=cout, hw=(hw, hw)), conv(cin=cout, cout=cin, hw=(hw, hw), k=1)]
    faster = dataclasses.replace(chip, dram_bandwidth_gbps=chip.dram_bandwidth_gbps * factor)
    assert cost_layers(layers, faster).latency_ms <= cost_layers(layers, chip).latency_ms


@settings(max_examples=60, deadline=None)
@given(chip=chips, cin=channels, cout=channels, hw=sizes)
def test_totals_are_consistent(chip, cin, cout, hw):
    layers = [conv(cin=cin, cout=cout, hw=(hw, hw)), conv(cin=cout, cout=cout, hw=(hw, hw), k=1)]
    cost = cost_layers(layers, chip)
    assert cost.latency_ms == pytest.approx(sum(layer.latency_ms for layer in cost.layers))
    assert cost.energy_mj == pytest.approx(sum(layer.energy_mj for layer in cost.layers))
    for layer in cost.layers:
        assert layer.latency_ms >= max(layer.compute_ms, layer.memory_ms)
        assert math.isfinite(layer.energy_mj) and layer.energy_mj > 0
    assert cost.peak_memory_kb >= cost.model_size_kb > 0


def test_chip_figures_are_cached_per_chip_object():
    chip = make_chip()
    first = cost_layers(tiny_layers(), chip)
    changed = dataclasses.replace(chip, launch_overhead_us=1000.0)
    assert cost_layers(tiny_layers(), changed).latency_ms > first.latency_ms + 1.9
    assert cost_layers(tiny_layers(), chip) == first


def test_layer_costs_are_ordinary_equal_dataclasses():
    from autocompress.hardware.cost import LayerCost

    for item in cost_layers(tiny_layers(), make_chip()).layers:
        rebuilt = LayerCost(**dataclasses.asdict(item))
        assert item == rebuilt and hash(item) == hash(rebuilt) and repr(item) == repr(rebuilt)
        with pytest.raises(dataclasses.FrozenInstanceError):
            item.latency_ms = 0.0  # type: ignore[misc]
