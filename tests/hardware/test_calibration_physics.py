"""What the calibrated model must keep: sub-linear pruning, resident weights, legality verdicts."""

from __future__ import annotations

import dataclasses
import functools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autocompress.core.errors import PluginError
from autocompress.core.models import small_cnn
from autocompress.hardware.calibration_store import ENV_CALIBRATION, calibrated_spec
from autocompress.hardware.cost_model import cost_layers
from autocompress.hardware.extract import extract_layers
from autocompress.hardware.hookspecs import hookimpl
from autocompress.hardware.legality import LayerIssue, check_layers
from autocompress.hardware.plugins import ChipRegistry, get_chip, list_chips

torch.set_num_threads(1)


@functools.lru_cache(maxsize=64)
def _layers(width: int, bits: int = 8):
    return tuple(
        extract_layers(
            small_cnn(num_classes=10, in_channels=3, width=width),
            (3, 32, 32),
            weight_bits=bits,
            activation_bits=bits,
        )
    )


@settings(max_examples=25, deadline=None)
@given(
    keep=st.sampled_from([8, 12, 16, 20, 24, 28]),
    chip_index=st.integers(min_value=0, max_value=50),
)
def test_pruning_speeds_up_less_than_it_cuts_operations(keep, chip_index):
    """Published: a 3.1x cut in operations gave 1.8x on a DPU. Fixed per-layer costs and
    memory-bound layers make latency fall sub-linearly with pruning, on every bundled
    chip, calibrated or not."""
    chips = list_chips()
    chip = chips[chip_index % len(chips)]
    if 8 not in chip.weight_bits_supported:
        return
    for spec in (chip, calibrated_spec(chip)):
        full, pruned = cost_layers(_layers(32), spec), cost_layers(_layers(keep), spec)
        op_cut = full.macs / pruned.macs
        speed_up = full.latency_ms / pruned.latency_ms
        assert 1.0 <= speed_up <= op_cut


def _hailo_like(**changes):
    chip = get_chip("rockchip/rk3588")
    fields = {"weights_on_chip": True, "onchip_weight_kb": 32 * 1024.0, "context_switch_us": 500.0}
    return dataclasses.replace(chip, **{**fields, **changes})


def test_resident_weights_never_cross_dram():
    layers = _layers(32)
    streaming = cost_layers(layers, get_chip("rockchip/rk3588"))
    resident = cost_layers(layers, _hailo_like())
    weight_bytes = streaming.model_size_kb * 1024
    assert sum(item.dram_bytes for item in streaming.layers) - sum(
        item.dram_bytes for item in resident.layers
    ) == pytest.approx(weight_bytes)
    assert resident.latency_ms <= streaming.latency_ms
    assert resident.model_size_kb == streaming.model_size_kb


def test_weights_that_do_not_fit_stream_and_pay_context_switches():
    layers = _layers(64)
    streaming = cost_layers(layers, get_chip("rockchip/rk3588"))
    weights_kb = streaming.model_size_kb
    spilled = cost_layers(layers, _hailo_like(onchip_weight_kb=weights_kb / 2.5))
    extra_ms = spilled.latency_ms - streaming.latency_ms
    switches = round(extra_ms / 0.5)
    assert switches >= 2 and extra_ms == pytest.approx(switches * 0.5)
    assert sum(i.dram_bytes for i in spilled.layers) == sum(i.dram_bytes for i in streaming.layers)


def test_old_positional_chip_specs_still_work():
    chip = get_chip("rockchip/rv1126")
    assert chip.weights_on_chip is False and chip.onchip_weight_kb == 0.0


# -- legality --------------------------------------------------------------------------------


def test_qnn_rejects_16_bit_weights_with_8_bit_activations():
    layers = extract_layers(
        small_cnn(num_classes=10, in_channels=1), (1, 8, 8), weight_bits=16, activation_bits=8
    )
    issues = check_layers(layers, get_chip("qualcomm/qcs6490"))
    assert issues and all(i.verdict == "unsupported" and "QNN HTP" in i.reason for i in issues)
    assert {i.layer for i in issues} == {
        layer.name for layer in layers if layer.kind.value in ("conv", "linear")
    }
    assert check_layers(_layers(32), get_chip("qualcomm/qcs6490")) == []
    assert check_layers(layers, get_chip("rockchip/rk3588")) == []  # no hook: no verdict


class _BadPlugin:
    @hookimpl
    def autocompress_chips(self):
        return [dataclasses.replace(get_chip("rockchip/rk3588"), chip_id="bad/npu", vendor="Bad")]

    @hookimpl
    def autocompress_check_layers(self, chip, layers):
        return ["not a LayerIssue"] if chip.chip_id == "bad/npu" else None


def test_facade_rejects_a_malformed_verdict():
    registry = ChipRegistry(autoload=False)
    assert registry.register(_BadPlugin(), "bad")
    chip = registry.get_chip("bad/npu")
    with pytest.raises(PluginError, match="autocompress_check_layers must return a list"):
        registry.check_layers(chip, list(_layers(32)))
    assert LayerIssue("x", "y").to_dict() == {"layer": "x", "reason": "y", "verdict": "unsupported"}


def test_no_calibration_env_is_respected(monkeypatch):
    monkeypatch.setenv(ENV_CALIBRATION, "none")
    chip = get_chip("rockchip/rv1126")
    assert calibrated_spec(chip) is chip
