"""Shared fixtures of the compression tests: a test chip, digits, a trained teacher."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme


def make_chip(**changes) -> ChipSpec:
    chip = ChipSpec(
        chip_id="test/npu",
        vendor="Test",
        display_name="NPU",
        npu_clock_mhz=1000.0,
        peak_tops_by_bits={8: 2.0, 16: 0.5, 32: 0.1},
        weight_bits_supported=(2, 4, 8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=512.0,
        dram_bandwidth_gbps=10.0,
        energy_per_mac_pj_by_bits={8: 0.2, 16: 0.8, 32: 3.0},
        sram_energy_pj_per_byte=1.0,
        dram_energy_pj_per_byte=100.0,
        static_power_mw=100.0,
        launch_overhead_us=5.0,
        quantization=QuantizationScheme(),
        budgets=ChipBudgets(memory_kb=1000.0, power_mw=1000.0, latency_ms=10.0),
        sparsity_patterns=("2:4",),
    )
    return dataclasses.replace(chip, **changes)


@pytest.fixture(scope="session")
def chip() -> ChipSpec:
    return make_chip()


@pytest.fixture(scope="session")
def log_chip() -> ChipSpec:
    return make_chip(
        chip_id="test/log",
        quantization=QuantizationScheme(logarithmic=True, log_steps_per_octave=16),
        sparsity_patterns=(),
    )


@pytest.fixture(scope="session")
def asymmetric_chip() -> ChipSpec:
    return make_chip(
        chip_id="test/asym",
        quantization=QuantizationScheme(
            weight_symmetric=False,
            activation_symmetric=False,
            weight_granularity=QuantGranularity.PER_TENSOR,
        ),
    )


@pytest.fixture(scope="session")
def digits():
    from autocompress.core.data import load_dataset

    return load_dataset("digits", seed=0)


@pytest.fixture(scope="session")
def digits_teacher(digits):
    """small_cnn trained on digits for 10 epochs on the CPU (~5 s)."""
    from autocompress.compress.teacher import train_teacher

    torch.set_num_threads(1)
    return train_teacher("small_cnn", digits, epochs=10, device="cpu", seed=0)
