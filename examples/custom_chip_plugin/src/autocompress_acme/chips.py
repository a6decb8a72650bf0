"""The Acme NPU1 as data. Every figure names its source; guesses are listed as unverified."""

from __future__ import annotations

from autocompress.hardware.figures import (
    dram_bandwidth_gbps,
    dram_energy_pj_per_byte,
    energy_sources,
    mac_energy_table,
    peak_tops,
    sram_energy_pj_per_byte,
)
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme

NPU1_MACS_PER_CYCLE_INT8 = 512
NPU1_CLOCK_MHZ = 1000.0
NPU1_POOL_ELEMENTS_PER_US = 2000.0
"""Pooling unit: 2 output elements per cycle at 1 GHz (Acme NPU1 TRM, section 4.2)."""


def acme_npu1() -> ChipSpec:
    """Acme NPU1: 512 int8 MACs/cycle at 1 GHz, 16 nm, 32-bit LPDDR4X-4266."""
    node_nm = 16.0
    buffer_kb = 256.0
    int8_tops = peak_tops(NPU1_MACS_PER_CYCLE_INT8, NPU1_CLOCK_MHZ)  # 1.024 TOPS
    return ChipSpec(
        chip_id="acme/npu1",
        vendor="Acme",
        display_name="Acme NPU1",
        npu_clock_mhz=NPU1_CLOCK_MHZ,
        peak_tops_by_bits={4: 2 * int8_tops, 8: int8_tops, 16: int8_tops / 4},
        weight_bits_supported=(4, 8, 16),
        activation_bits_supported=(4, 8, 16),
        channel_alignment=16,
        sparsity_patterns=("2:4",),
        sparsity_speedup=1.8,
        onchip_buffer_kb=buffer_kb,
        dram_bandwidth_gbps=dram_bandwidth_gbps(32, 4266.0),
        energy_per_mac_pj_by_bits=mac_energy_table((4, 8, 16), node_nm),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(buffer_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4X"),
        static_power_mw=80.0,
        launch_overhead_us=15.0,
        quantization=QuantizationScheme(
            weight_symmetric=True,
            activation_symmetric=False,
            weight_granularity=QuantGranularity.PER_CHANNEL,
        ),
        budgets=ChipBudgets(memory_kb=8192.0, power_mw=800.0, latency_ms=20.0),
        compute_efficiency=0.75,
        bandwidth_efficiency=0.7,
        depthwise_efficiency=0.3,
        sources={
            "npu_clock_mhz": "Acme NPU1 datasheet rev 1.2, table 1",
            "peak_tops_by_bits": "derived: 512 int8 MACs/cycle (datasheet table 1) x 2 x 1 GHz; "
            "int4 2x, int16 1/4 of int8 (TRM section 3)",
            "weight_bits_supported": "Acme NPU toolkit 2.1 user guide",
            "activation_bits_supported": "Acme NPU toolkit 2.1 user guide",
            "channel_alignment": "TRM section 3: 16-channel MAC groups",
            "sparsity_patterns": "TRM section 3.4: 2:4 weight sparsity",
            "sparsity_speedup": "Acme application note AN-7 (measured on ResNet-50)",
            "onchip_buffer_kb": "datasheet table 1",
            "dram_bandwidth_gbps": "derived: 32-bit LPDDR4X at 4266 MT/s (datasheet table 2)",
            "static_power_mw": "our estimate from idle measurements on the EVB",
            "launch_overhead_us": "our estimate from toolkit profiler traces",
            "quantization": "Acme NPU toolkit 2.1: symmetric per-channel weights, uint8 acts",
            "budgets": "product requirement: 8 MB model, 50 fps, 0.8 W",
            **energy_sources(),
        },
        unverified=("static_power_mw", "launch_overhead_us"),
        notes="Fictional chip: the worked example of docs/writing-a-chip-plugin.md.",
    )
