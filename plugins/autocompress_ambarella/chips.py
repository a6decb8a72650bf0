"""Ambarella CV22 (CVflow) as :class:`ChipSpec` data.

Ambarella does not publish CV22's TOPS; the figures here are order-of-magnitude
estimates (1–2 TOPS class) and are all listed as unverified. What is public:
CVflow runs int8 and int16 with *different* bit-widths for weights and
activations chosen per layer by the CNNGen toolchain, and the toolchain has a
pruning-aware flow that exploits structured sparsity.
"""

from __future__ import annotations

from autocompress.hardware.figures import (
    dram_bandwidth_gbps,
    dram_energy_pj_per_byte,
    energy_sources,
    mac_energy_table,
    sram_energy_pj_per_byte,
)
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme

CV22_INT8_TOPS = 1.0
CV22_CLOCK_MHZ = 800.0


def ambarella_chips() -> list[ChipSpec]:
    """Every Ambarella chip this plugin contributes."""
    node_nm = 10.0
    buffer_kb = 1024.0
    cv22 = ChipSpec(
        chip_id="ambarella/cv22",
        vendor="Ambarella",
        display_name="CV22 (CVflow)",
        npu_clock_mhz=CV22_CLOCK_MHZ,
        peak_tops_by_bits={8: CV22_INT8_TOPS, 16: CV22_INT8_TOPS / 2},
        weight_bits_supported=(8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=8,
        sparsity_patterns=("2:4",),
        sparsity_speedup=1.5,
        onchip_buffer_kb=buffer_kb,
        # 32-bit LPDDR4/4X at 3200 MT/s.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(32, 3200.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(buffer_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4X"),
        static_power_mw=120.0,
        launch_overhead_us=20.0,
        quantization=QuantizationScheme(
            weight_symmetric=True,
            activation_symmetric=True,
            weight_granularity=QuantGranularity.PER_TENSOR,
        ),
        budgets=ChipBudgets(memory_kb=32768.0, power_mw=1200.0, latency_ms=33.3),
        compute_efficiency=0.7,
        bandwidth_efficiency=0.7,
        depthwise_efficiency=0.3,
        sources={
            "npu_clock_mhz": "estimate (Ambarella does not publish the CVflow clock)",
            "peak_tops_by_bits": (
                "estimate: CV22 is in the 1-2 TOPS class (Ambarella publishes no TOPS for CV2x; "
                "CV52S is 6 eTOPS < 3 W); int16 at half the int8 rate"
            ),
            "weight_bits_supported": "Ambarella CNNGen: int8/int16, per-layer weight bit-width",
            "activation_bits_supported": "Ambarella CNNGen: per-layer activation bit-width",
            "channel_alignment": "estimate",
            "sparsity_patterns": "Ambarella CVflow: pruning-aware flow, sparse weights skipped",
            "sparsity_speedup": "estimate",
            "onchip_buffer_kb": "estimate: CVflow on-chip memory, not published",
            "dram_bandwidth_gbps": "estimate: 32-bit LPDDR4/4X at 3200 MT/s",
            "static_power_mw": "estimate",
            "launch_overhead_us": "estimate",
            "quantization": "Ambarella CNNGen: per-layer choice of weight/activation bit-width",
            "budgets": "camera SoC (< ~2.5 W total): 32 MB for the model, 30 fps",
            "process_node": "Ambarella: 10 nm (Samsung)",
            **energy_sources(),
        },
        unverified=(
            "npu_clock_mhz",
            "peak_tops_by_bits",
            "channel_alignment",
            "sparsity_speedup",
            "onchip_buffer_kb",
            "dram_bandwidth_gbps",
            "static_power_mw",
            "launch_overhead_us",
        ),
        notes=(
            "TOPS are not published: every throughput figure is an estimate. Weight and "
            "activation bit-widths are chosen per layer (8 or 16). Structured sparsity helps "
            "through the pruning-aware toolchain (speed-up estimated)."
        ),
    )
    return [cv22]
