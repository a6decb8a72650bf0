"""Qualcomm Hexagon NPU chips (QCS6490, Snapdragon 8 Gen 2) as :class:`ChipSpec` data.

Models reach the Hexagon Tensor Processor through QNN/SNPE; AIMET does QAT and
AdaRound. Quantization is per-tensor asymmetric min/max (w8a8, or w8a16 with
16-bit activations). Qualcomm quotes "AI TOPS" for the whole SoC, so every
throughput figure here is a third-party or derived estimate (``docs/chips.md``).
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

HEXAGON_SCHEME = QuantizationScheme(
    weight_symmetric=False,
    activation_symmetric=False,
    weight_granularity=QuantGranularity.PER_TENSOR,
)
HTP_16_OVER_8 = 0.5
"""w8a16 / fp16 throughput relative to w8a8 (estimate)."""


def _qcs6490() -> ChipSpec:
    node_nm = 6.0
    vtcm_kb = 4096.0
    int8_tops = 12.0
    return ChipSpec(
        chip_id="qualcomm/qcs6490",
        vendor="Qualcomm",
        display_name="QCS6490 (Hexagon 770)",
        npu_clock_mhz=1000.0,
        peak_tops_by_bits={8: int8_tops, 16: int8_tops * HTP_16_OVER_8},
        weight_bits_supported=(8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=32,
        onchip_buffer_kb=vtcm_kb,
        # LPDDR4X, 4 x 16-bit channels at 4266 MT/s.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(64, 4266.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm, float_widths=(16,)),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(vtcm_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4X"),
        static_power_mw=200.0,
        launch_overhead_us=10.0,
        quantization=HEXAGON_SCHEME,
        budgets=ChipBudgets(memory_kb=131072.0, power_mw=3000.0, latency_ms=33.3),
        compute_efficiency=0.5,
        bandwidth_efficiency=0.65,
        depthwise_efficiency=0.3,
        sources={
            "npu_clock_mhz": "estimate (HTP clock not published)",
            "peak_tops_by_bits": (
                "12 int8 TOPS: third-party figure for the QCS6490 Hexagon NPU (Qualcomm quotes "
                "12 TOPS for the SoC); 16-bit at half rate (estimate)"
            ),
            "weight_bits_supported": "Qualcomm QNN HTP: w8a8, w8a16, fp16",
            "activation_bits_supported": "Qualcomm QNN HTP: 8- and 16-bit activations",
            "channel_alignment": "estimate: HVX/HTP tiles of 32 channels at 8 bits",
            "onchip_buffer_kb": "estimate: Hexagon VTCM",
            "dram_bandwidth_gbps": "estimate: LPDDR4X 4 x 16-bit at 4266 MT/s",
            "static_power_mw": "estimate",
            "launch_overhead_us": "estimate: QNN HTP op dispatch",
            "quantization": "Qualcomm QNN/AIMET: per-tensor asymmetric min/max",
            "budgets": "IoT/robotics module: 128 MB for the model, 30 fps, 3 W NPU share",
            "process_node": "TSMC 6 nm",
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
        notes=(
            "Hexagon NPU through QNN/SNPE; AIMET for QAT. 12 TOPS is a third-party figure. "
            "16-bit activations (w8a16) run at about half the w8a8 rate (estimate)."
        ),
    )


def _sm8550() -> ChipSpec:
    node_nm = 4.0
    vtcm_kb = 8192.0
    int8_tops = 26.0
    return ChipSpec(
        chip_id="qualcomm/sm8550",
        vendor="Qualcomm",
        display_name="Snapdragon 8 Gen 2 (Hexagon NPU)",
        npu_clock_mhz=1100.0,
        peak_tops_by_bits={8: int8_tops, 16: int8_tops * HTP_16_OVER_8},
        weight_bits_supported=(4, 8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=32,
        onchip_buffer_kb=vtcm_kb,
        # LPDDR5X, 4 x 16-bit channels at 8533 MT/s.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(64, 8533.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm, float_widths=(16,)),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(vtcm_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR5X"),
        static_power_mw=250.0,
        launch_overhead_us=8.0,
        quantization=HEXAGON_SCHEME,
        budgets=ChipBudgets(memory_kb=262144.0, power_mw=2500.0, latency_ms=33.3),
        compute_efficiency=0.5,
        bandwidth_efficiency=0.7,
        depthwise_efficiency=0.3,
        sources={
            "npu_clock_mhz": "estimate (HTP clock not published)",
            "peak_tops_by_bits": (
                "estimate: ~26 int8 TOPS from third-party analyses (Qualcomm publishes no TOPS "
                "for 8 Gen 2, only '4.35x AI performance' over 8 Gen 1); 16-bit at half rate"
            ),
            "weight_bits_supported": "Qualcomm: 8 Gen 2 adds INT4 (w4a8/w4a16) on the Hexagon NPU",
            "activation_bits_supported": "Qualcomm QNN HTP: 8- and 16-bit activations",
            "channel_alignment": "estimate: HTP tiles of 32 channels at 8 bits",
            "onchip_buffer_kb": "estimate: Hexagon VTCM",
            "dram_bandwidth_gbps": "Qualcomm product brief: LPDDR5X 4200 MHz (8533 MT/s), 64-bit",
            "static_power_mw": "estimate",
            "launch_overhead_us": "estimate: QNN HTP op dispatch",
            "quantization": "Qualcomm QNN/AIMET: per-tensor asymmetric min/max",
            "budgets": "phone: 256 MB for the model, 30 fps, 2.5 W sustained NPU share",
            "process_node": "TSMC N4",
            **energy_sources(),
        },
        unverified=(
            "npu_clock_mhz",
            "peak_tops_by_bits",
            "channel_alignment",
            "onchip_buffer_kb",
            "static_power_mw",
            "launch_overhead_us",
        ),
        notes=(
            "Phone SoC. Qualcomm publishes no NPU TOPS; ~26 int8 TOPS is a third-party estimate. "
            "INT4 weights save memory and bandwidth; they compute at the int8 rate here."
        ),
    )


def qualcomm_chips() -> list[ChipSpec]:
    """Every Qualcomm chip this plugin contributes."""
    return [_qcs6490(), _sm8550()]
