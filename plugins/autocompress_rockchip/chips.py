"""Rockchip NPU chips as :class:`ChipSpec` data, derived from published figures.

RV1126/RV1109 carry the NPU generation of the RK3399Pro/RK1808 (deployed with
RKNN-Toolkit 1.x); RK3566 and RK3588 carry RKNPU2 (RKNN-Toolkit2). How each
figure was derived, and how far to trust it: ``docs/chips.md``.
"""

from __future__ import annotations

from autocompress.hardware.figures import (
    dram_bandwidth_gbps,
    dram_energy_pj_per_byte,
    energy_sources,
    mac_energy_table,
    macs_per_cycle,
    peak_tops,
    sram_energy_pj_per_byte,
)
from autocompress.hardware.spec import ChipBudgets, ChipSpec, QuantGranularity, QuantizationScheme

# RK3399Pro NPU (same family as RV1126/RV1109): 1920 int8 / 192 int16 / 64 fp16 MACs per cycle.
RK3399PRO_INT16_OVER_INT8 = 192 / 1920
RK3399PRO_FP16_OVER_INT8 = 64 / 1920
RV1126_PEAK_INT8_TOPS = 2.0
RV1126_NPU_CLOCK_MHZ = 934.0
RV1109_NPU_CLOCK_MHZ = 594.0

_RKNN1_SCHEME = QuantizationScheme(
    weight_symmetric=False,
    activation_symmetric=False,
    weight_granularity=QuantGranularity.PER_TENSOR,
)
_RKNN2_SCHEME = QuantizationScheme(
    weight_symmetric=False,
    activation_symmetric=False,
    weight_granularity=QuantGranularity.PER_CHANNEL,
)

_ENERGY_SOURCES = energy_sources()


def _rv11xx(chip_id: str, display_name: str, clock_mhz: float, power_budget_mw: float) -> ChipSpec:
    """RV1126 and RV1109 share one NPU design; only the clock differs."""
    mac_units = macs_per_cycle(RV1126_PEAK_INT8_TOPS, RV1126_NPU_CLOCK_MHZ)
    int8_tops = round(peak_tops(mac_units, clock_mhz), 3)
    node_nm = 14.0
    buffer_kb = 512.0
    return ChipSpec(
        chip_id=chip_id,
        vendor="Rockchip",
        display_name=display_name,
        npu_clock_mhz=clock_mhz,
        peak_tops_by_bits={8: int8_tops, 16: round(int8_tops * RK3399PRO_INT16_OVER_INT8, 4)},
        weight_bits_supported=(8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=buffer_kb,
        # 32-bit DDR4/LPDDR4 bus; 2112 MT/s is the top speed grade boards use.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(32, 2112.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(buffer_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4"),
        static_power_mw=150.0,
        launch_overhead_us=30.0,
        quantization=_RKNN1_SCHEME,
        budgets=ChipBudgets(memory_kb=16384.0, power_mw=power_budget_mw, latency_ms=33.3),
        compute_efficiency=0.6,
        bandwidth_efficiency=0.6,
        depthwise_efficiency=0.2,
        npu_family="rockchip/rknpu1",
        sources={
            "npu_clock_mhz": (
                "RV1126: Rockchip RV1126 datasheet / RKNN-Toolkit 1.x benchmark notes (934 MHz)"
                if chip_id.endswith("rv1126")
                else "RV1109: 594 MHz NPU clock from Rockchip RV1109 product notes (unverified)"
            ),
            "peak_tops_by_bits": (
                "int8: RV1126 product brief 2.0 TOPS, scaled by clock for RV1109; int16: "
                "RK3399Pro NPU ratio 192/1920 MACs per cycle (same NPU family)"
            ),
            "weight_bits_supported": (
                "RKNN-Toolkit 1.x: asymmetric_affine-u8, dynamic_fixed_point-i16"
            ),
            "activation_bits_supported": "RKNN-Toolkit 1.x quantized_dtype options",
            "channel_alignment": "estimate: NPU processes channels in groups of 16",
            "onchip_buffer_kb": "estimate: NPU-internal buffer, not published",
            "dram_bandwidth_gbps": "RV1126 datasheet: 32-bit DDR3/4, LPDDR3/4; 2112 MT/s assumed",
            "static_power_mw": "estimate: share of the ~1.5-2.5 W SoC power while the NPU runs",
            "launch_overhead_us": "estimate from RKNN per-layer profiling of small layers (~30 us)",
            "quantization": "RKNN-Toolkit 1.x user guide: asymmetric_affine-u8 per tensor",
            "budgets": "camera-module class device: 16 MB of shared DDR for the model, 30 fps",
            "process_node": "Rockchip: 14 nm",
            **_ENERGY_SOURCES,
        },
        unverified=(
            "channel_alignment",
            "onchip_buffer_kb",
            "dram_bandwidth_gbps",
            "static_power_mw",
            "launch_overhead_us",
            *(("npu_clock_mhz", "peak_tops_by_bits") if chip_id.endswith("rv1109") else ()),
        ),
        notes=(
            "RKNN-Toolkit 1.x NPU (RK3399Pro/RK1808 family). int16 runs ~10x slower than int8, "
            f"fp16 ~{1 / RK3399PRO_FP16_OVER_INT8:.0f}x slower (costed as int16). Depthwise "
            "convolutions map poorly. DDR is shared with the ISP and the video encoder."
        ),
    )


def _rk3588() -> ChipSpec:
    node_nm = 8.0
    buffer_kb = 384.0
    clock_mhz = 1000.0
    core_int8_tops = 2.0
    return ChipSpec(
        chip_id="rockchip/rk3588",
        vendor="Rockchip",
        display_name="RK3588 (one NPU core)",
        npu_clock_mhz=clock_mhz,
        peak_tops_by_bits={8: core_int8_tops, 16: core_int8_tops / 2},
        weight_bits_supported=(4, 8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=16,
        onchip_buffer_kb=buffer_kb,
        # LPDDR4X, 4 x 16-bit channels = 64-bit bus at 4224 MT/s.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(64, 4224.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm, float_widths=(16,)),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(buffer_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4X"),
        static_power_mw=250.0,
        launch_overhead_us=20.0,
        quantization=_RKNN2_SCHEME,
        budgets=ChipBudgets(memory_kb=131072.0, power_mw=2500.0, latency_ms=33.3),
        compute_efficiency=0.65,
        bandwidth_efficiency=0.65,
        depthwise_efficiency=0.3,
        sources={
            "npu_clock_mhz": "RK3588 datasheet: NPU up to 1.0 GHz",
            "peak_tops_by_bits": (
                "RK3588 datasheet: 6 TOPS int8 = 3 cores x 2 TOPS; one model runs on one core by "
                "default (RKNN core_mask); int16/fp16 at half the int8 rate"
            ),
            "weight_bits_supported": "RK3588 datasheet: int4/int8/int16/fp16 mixed operation",
            "activation_bits_supported": "RKNN-Toolkit2: int8 and fp16 activations",
            "channel_alignment": "RKNN API native layout NC1HWC2, C2 = 16 for int8 on RK3588",
            "onchip_buffer_kb": "estimate: per-core NPU buffer, not published",
            "dram_bandwidth_gbps": "RK3588 datasheet: LPDDR4/4x/5, 4 x 16-bit; LPDDR4X-4224",
            "static_power_mw": "estimate",
            "launch_overhead_us": "estimate from RKNN-Toolkit2 per-layer profiling",
            "quantization": "RKNN-Toolkit2: asymmetric_quantized-8, quantized_method='channel'",
            "budgets": "SBC/edge-box class device: 128 MB for the model, 30 fps, 2.5 W NPU share",
            "process_node": "Rockchip: 8 nm (Samsung 8LPP)",
            **_ENERGY_SOURCES,
        },
        unverified=(
            "onchip_buffer_kb",
            "static_power_mw",
            "launch_overhead_us",
            "channel_alignment",
        ),
        notes=(
            "Costed as a single NPU core (2 TOPS), which is how RKNN runs one model by default; "
            "3-core splitting speeds only some layers. int4 weights save memory and bandwidth "
            "but compute at the int8 rate. No sparse-weight acceleration (that is RK3576)."
        ),
    )


def _rk3566() -> ChipSpec:
    node_nm = 22.0
    buffer_kb = 256.0
    return ChipSpec(
        chip_id="rockchip/rk3566",
        vendor="Rockchip",
        display_name="RK3566",
        npu_clock_mhz=800.0,
        peak_tops_by_bits={8: 0.8, 16: 0.4},
        weight_bits_supported=(8, 16),
        activation_bits_supported=(8, 16),
        channel_alignment=8,
        onchip_buffer_kb=buffer_kb,
        # 32-bit LPDDR4/4X at 3200 MT/s.
        dram_bandwidth_gbps=round(dram_bandwidth_gbps(32, 3200.0), 2),
        energy_per_mac_pj_by_bits=mac_energy_table((8, 16), node_nm, float_widths=(16,)),
        sram_energy_pj_per_byte=sram_energy_pj_per_byte(buffer_kb, node_nm),
        dram_energy_pj_per_byte=dram_energy_pj_per_byte("LPDDR4"),
        static_power_mw=120.0,
        launch_overhead_us=30.0,
        quantization=_RKNN2_SCHEME,
        budgets=ChipBudgets(memory_kb=32768.0, power_mw=1000.0, latency_ms=33.3),
        compute_efficiency=0.6,
        bandwidth_efficiency=0.6,
        depthwise_efficiency=0.25,
        sources={
            "npu_clock_mhz": "estimate: ~800 MHz NPU clock (derived MACs/cycle ~ 500)",
            "peak_tops_by_bits": "RK3566 datasheet: 0.8 TOPS int8; int16/fp16 at half (estimate)",
            "weight_bits_supported": "RK3566 datasheet: INT8/INT16/FP16 operation",
            "activation_bits_supported": "RKNN-Toolkit2: int8 and fp16 activations",
            "channel_alignment": "RKNN API native layout NC1HWC2 on RK356x (C2 = 8, estimate)",
            "onchip_buffer_kb": "estimate: NPU buffer, not published",
            "dram_bandwidth_gbps": "RK3566 datasheet: 32-bit DDR3/DDR4/LPDDR3/LPDDR4/4X; 3200 MT/s",
            "static_power_mw": "estimate",
            "launch_overhead_us": "estimate from RKNN-Toolkit2 per-layer profiling",
            "quantization": "RKNN-Toolkit2: asymmetric_quantized-8, quantized_method='channel'",
            "budgets": "tablet/SBC class device: 32 MB for the model, 30 fps, 1 W NPU share",
            "process_node": "Rockchip: 22 nm",
            **_ENERGY_SOURCES,
        },
        unverified=(
            "npu_clock_mhz",
            "onchip_buffer_kb",
            "static_power_mw",
            "launch_overhead_us",
            "channel_alignment",
        ),
        notes="RKNPU2 (RKNN-Toolkit2), one core, 0.8 TOPS int8; RK3568 has the same NPU.",
    )


def rockchip_chips() -> list[ChipSpec]:
    """Every Rockchip chip this plugin contributes."""
    return [
        _rv11xx("rockchip/rv1126", "RV1126", RV1126_NPU_CLOCK_MHZ, 1500.0),
        _rv11xx("rockchip/rv1109", "RV1109", RV1109_NPU_CLOCK_MHZ, 1200.0),
        _rk3588(),
        _rk3566(),
    ]
