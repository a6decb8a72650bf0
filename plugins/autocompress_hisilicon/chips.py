"""HiSilicon NNIE chips (Hi3519A V100, Hi3559A V100) as :class:`ChipSpec` data.

NNIE (Neural Network Inference Engine) runs models compiled by ``nnie_mapper``.
It quantizes per layer on a **logarithmic** grid (sign + 7-bit log2 magnitude in
steps of 1/16 octave) and reads and writes feature maps in DDR: there is no large
on-chip buffer, so the cost model sees a small one. Peak figures are not in a
public datasheet; see ``docs/chips.md``.
"""

from __future__ import annotations

from autocompress.hardware.figures import (
    dram_bandwidth_gbps,
    dram_energy_pj_per_byte,
    energy_sources,
    mac_energy_table,
    macs_per_cycle,
    sram_energy_pj_per_byte,
)
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme

NNIE_CORE_INT8_TOPS = 2.0
"""One NNIE core, int8 (HiSilicon marketing figure for Hi3519A; unverified)."""
NNIE_INT16_OVER_INT8 = 0.5

NNIE_SCHEME = QuantizationScheme(
    weight_symmetric=True,
    activation_symmetric=True,
    weight_granularity=QuantGranularity.PER_TENSOR,
    logarithmic=True,
    log_steps_per_octave=16,
)


def _nnie_chip(
    chip_id: str,
    display_name: str,
    clock_mhz: float,
    bus_width_bits: int,
    transfer_rate_mts: float,
    budgets: ChipBudgets,
    notes: str,
) -> ChipSpec:
    node_nm = 12.0
    buffer_kb = 64.0
    return ChipSpec(
        chip_id=chip_id,
        vendor="HiSilicon",
        display_name=display_name,
        npu_clock_mhz=clock_mhz,
        peak_tops_by_bits={8: NNIE_CORE_INT8_TOPS, 16: NNIE_CORE_INT8_TOPS * NNIE_INT16_OVER_INT8},
        weight_bits_supported=(8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=buffer_kb,
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(bus_width_bits, transfer_rate_mts), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(buffer_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4"),
        static_power_mw=150.0,
        launch_overhead_us=40.0,
        quantization=NNIE_SCHEME,
        budgets=budgets,
        compute_efficiency=0.55,
        bandwidth_efficiency=0.55,
        depthwise_efficiency=0.15,
        sources={
            "npu_clock_mhz": "HiSilicon product brief (NNIE clock; unverified)",
            "peak_tops_by_bits": (
                "int8: ~2 TOPS per NNIE core (HiSilicon product brief, unverified); "
                "int16 at half the int8 rate (estimate)"
            ),
            "weight_bits_supported": "nnie_mapper: compile_mode 8-bit (log) and 16-bit",
            "activation_bits_supported": "nnie_mapper: 8-bit (log) and 16-bit feature maps",
            "channel_alignment": "estimate: NNIE processes channels in groups of 16",
            "onchip_buffer_kb": "NNIE reads/writes DDR only; 64 KB line buffers (estimate)",
            "dram_bandwidth_gbps": "HiSilicon product brief: DDR4/LPDDR4 bus width; speed assumed",
            "static_power_mw": "estimate",
            "launch_overhead_us": "estimate: NNIE segment/layer setup",
            "quantization": "HiSilicon NNIE user guide: sign + 7-bit log2 magnitude, 1/16 octave",
            "budgets": "IP-camera class device: model lives in the MMZ carve-out of DDR, 30 fps",
            "process_node": "HiSilicon: 12 nm",
            **energy_sources(),
        },
        unverified=(
            "npu_clock_mhz",
            "peak_tops_by_bits",
            "channel_alignment",
            "onchip_buffer_kb",
            "dram_bandwidth_gbps",
            "static_power_mw",
            "launch_overhead_us",
        ),
        notes=notes,
    )


def hisilicon_chips() -> list[ChipSpec]:
    """Every HiSilicon chip this plugin contributes."""
    return [
        _nnie_chip(
            "hisilicon/hi3519a",
            "Hi3519A V100 (NNIE)",
            clock_mhz=700.0,
            bus_width_bits=32,
            transfer_rate_mts=2400.0,
            budgets=ChipBudgets(memory_kb=16384.0, power_mw=1500.0, latency_ms=33.3),
            notes=(
                "One NNIE core (~2 TOPS int8, unverified); per-layer logarithmic quantization; "
                f"~{macs_per_cycle(NNIE_CORE_INT8_TOPS, 700.0):.0f} MACs/cycle derived. "
                "Feature maps go through DDR; depthwise layers map poorly."
            ),
        ),
        _nnie_chip(
            "hisilicon/hi3559a",
            "Hi3559A V100 (NNIE, one of two cores)",
            clock_mhz=840.0,
            bus_width_bits=64,
            transfer_rate_mts=3200.0,
            budgets=ChipBudgets(memory_kb=65536.0, power_mw=2500.0, latency_ms=33.3),
            notes=(
                "Two NNIE cores (~4 TOPS int8 together, unverified); a model runs on one core "
                "(HI_SVP_NNIE_ID_0/1), so it is costed as one. Logarithmic quantization."
            ),
        ),
    ]
