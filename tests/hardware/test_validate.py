"""validate_chip_spec: every way a spec can be wrong is named by field."""

from __future__ import annotations

import dataclasses

import pytest

from autocompress.hardware.plugins import ChipRegistry
from autocompress.hardware.spec import ChipBudgets, QuantizationScheme
from autocompress.hardware.validate import validate_chip_spec


@pytest.fixture(scope="module")
def good():
    return ChipRegistry(autoload=True).get_chip("rockchip/rv1126")


def test_every_bundled_chip_is_valid():
    registry = ChipRegistry(autoload=True)
    for chip in registry.chips():
        assert validate_chip_spec(chip) == [], chip.chip_id


def test_not_a_spec():
    assert validate_chip_spec({"chip_id": "a/b"}) == ["expected a ChipSpec, got dict"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"chip_id": "RockChip/RV1126"}, "chip_id: 'RockChip/RV1126' must look like 'vendor/name'"),
        ({"chip_id": "rv1126"}, "chip_id: 'rv1126' must look like"),
        ({"vendor": ""}, "vendor: must be a non-empty string"),
        ({"display_name": "  "}, "display_name: must be a non-empty string"),
        ({"dram_bandwidth_gbps": -1.0}, "dram_bandwidth_gbps: must be > 0, got -1.0"),
        ({"dram_bandwidth_gbps": float("nan")}, "dram_bandwidth_gbps: must be > 0"),
        ({"npu_clock_mhz": 0}, "npu_clock_mhz: must be > 0"),
        ({"channel_alignment": 0}, "channel_alignment: must be > 0"),
        ({"channel_alignment": 2.5}, "channel_alignment: must be a whole number"),
        ({"static_power_mw": -5.0}, "static_power_mw: must be >= 0"),
        ({"dram_energy_pj_per_byte": -1.0}, "dram_energy_pj_per_byte: must be >= 0"),
        ({"launch_overhead_us": -1.0}, "launch_overhead_us: must be >= 0"),
        ({"weight_bits_supported": ()}, "weight_bits_supported: must be a non-empty tuple"),
        ({"weight_bits_supported": (1, 8)}, "bit-width 1 is outside 2..32"),
        ({"activation_bits_supported": (8, 64)}, "bit-width 64 is outside 2..32"),
        ({"peak_tops_by_bits": {8: 2.0, 16: -0.2}}, "peak_tops_by_bits[16]: must be a positive"),
        ({"peak_tops_by_bits": {}}, "peak_tops_by_bits: must be a non-empty mapping"),
        ({"peak_tops_by_bits": {8: 2.0}}, "16-bit has no peak_tops_by_bits entry that covers it"),
        (
            {"energy_per_mac_pj_by_bits": {8: 0.3}},
            "energy_per_mac_pj_by_bits: no entry for compute width(s) 16",
        ),
        ({"energy_per_mac_pj_by_bits": {8: 0.3, 16: -1}}, "energy_per_mac_pj_by_bits[16]"),
        ({"compute_efficiency": 1.5}, "compute_efficiency: efficiency knob must be in (0, 1]"),
        ({"bandwidth_efficiency": 0.0}, "bandwidth_efficiency: efficiency knob must be in (0, 1]"),
        ({"depthwise_efficiency": -0.1}, "depthwise_efficiency: efficiency knob"),
        ({"sparsity_patterns": ("2of4",)}, "sparsity_patterns: '2of4' is not like 'N:M'"),
        ({"sparsity_patterns": ("4:2",)}, "sparsity_patterns: '4:2' is not like 'N:M'"),
        ({"sparsity_speedup": 2.0}, "sparsity_speedup: > 1 but the chip lists no"),
        ({"sparsity_speedup": 0.5}, "sparsity_speedup: must be >= 1"),
        (
            {"budgets": ChipBudgets(memory_kb=0.0, power_mw=1.0, latency_ms=1.0)},
            "budgets.memory_kb: must be > 0",
        ),
        ({"budgets": None}, "budgets: must be a ChipBudgets"),
        (
            {"quantization": QuantizationScheme(logarithmic=True, log_steps_per_octave=0)},
            "quantization.log_steps_per_octave: must be >= 1",
        ),
        ({"unverified": ("npu_clock",)}, "unverified: 'npu_clock' is not a ChipSpec field"),
        ({"sources": {"npu_clock_mhz": ""}}, "sources['npu_clock_mhz']: must be a non-empty"),
    ],
)
def test_each_problem_is_named(good, changes, expected):
    problems = validate_chip_spec(dataclasses.replace(good, **changes))
    assert any(expected in problem for problem in problems), problems


def test_several_problems_are_all_reported(good):
    bad = dataclasses.replace(good, dram_bandwidth_gbps=-1.0, compute_efficiency=2.0, vendor="")
    assert len(validate_chip_spec(bad)) == 3


def test_supported_sparsity_pattern_is_valid(good):
    sparse = dataclasses.replace(good, sparsity_patterns=("2:4", "1:4"), sparsity_speedup=2.0)
    assert validate_chip_spec(sparse) == []
